//! Through CRI, as kubelet drives it, on a real containerd: Debian trixie's 1.7.24 (which
//! pulls Wasm artifacts) and bookworm's 1.6.20 (which pulls only the image-compat format).

use super::*;
use crate::support::cri::{
    CONTAINERD_1_6, ContainerSpec, Cri, CriContainerd, CriSetup, Pod, PodSpec, log_messages,
};
use crate::support::images::{created, push_artifact, push_image, push_native};
use std::collections::HashMap;
use wasmoci_spec::{ArtifactInput, build_artifact};
use wasmoci_testdata::registry::TestRegistry;

/// A registry, a containerd with CRI using it, and a CRI client.
pub(crate) struct Node {
    pub(crate) registry: TestRegistry,
    pub(crate) containerd: CriContainerd,
    pub(crate) cri: Cri,
    pub(crate) home: tempfile::TempDir,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) pods: usize,
}

impl Node {
    pub(crate) fn start(containerd: PathBuf) -> Option<Node> {
        Node::start_with(containerd, Vec::new(), Vec::new())
    }

    /// [`Node::start`], with more of containerd's environment (which the shims inherit)
    /// and options for the `wasmoci` runtime.
    pub(crate) fn start_with(
        containerd: PathBuf,
        env: Vec<(String, String)>,
        runtime_options: Vec<(String, String)>,
    ) -> Option<Node> {
        let registry = TestRegistry::start(None)?;
        // The pause image: the shim holds the sandbox and never runs it.
        let sandbox_image = push_image(
            &registry,
            "wasmoci-test/pause",
            &std::fs::read(fixtures().join("loop.wasm")).unwrap(),
            "/pause.wasm",
        );
        let home = tempfile::tempdir().unwrap();
        let containerd = CriContainerd::start(&CriSetup {
            containerd,
            shim: PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-wasmoci-v1")),
            registry: registry.addr.clone(),
            sandbox_image,
            wasmoci_home: home.path().to_owned(),
            other_runtimes: Vec::new(),
            debug: std::env::var_os("WASMOCI_TEST_DEBUG").is_some(),
            env,
            runtime_options,
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cri = rt.block_on(Cri::connect(&containerd.address)).unwrap();
        Some(Node {
            registry,
            containerd,
            cri,
            home,
            rt,
            pods: 0,
        })
    }

    pub(crate) fn pull(&mut self, image: &str) -> Result<String, containerd_client::tonic::Status> {
        let mut cri = self.cri.clone();
        self.rt.block_on(cri.pull(image))
    }

    pub(crate) fn new_pod(&mut self, annotations: &[(&str, &str)], host_network: bool) -> Pod {
        self.pods += 1;
        let name = format!("pod-{}", self.pods);
        let spec = PodSpec {
            log_directory: self.containerd.dir().join("logs").join(&name),
            name,
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            host_network,
            handler: String::new(),
            cgroup_parent: format!("/{}/pod-{}", self.cgroup_root(), self.pods),
        };
        let mut cri = self.cri.clone();
        self.rt
            .block_on(cri.run_pod(&spec))
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", self.containerd.log()))
    }

    /// Runs one container to its end in a new pod, then removes the pod: its exit and
    /// its log.
    pub(crate) fn run(
        &mut self,
        annotations: &[(&str, &str)],
        container: ContainerSpec,
    ) -> (crate::support::cri::Exited, String) {
        let pod = self.new_pod(annotations, true);
        let mut cri = self.cri.clone();
        let log = Path::new(&pod.config.log_directory).join(format!("{}.log", container.name));
        let exited = self.rt.block_on(async {
            let id = cri
                .create(&pod, &container)
                .await
                .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
            cri.start(&id)
                .await
                .unwrap_or_else(|e| panic!("StartContainer: {e}"));
            let exited = cri.wait_exited(&id, Duration::from_secs(60)).await;
            cri.remove(&id).await.unwrap();
            cri.remove_pod(&pod).await.unwrap();
            exited
        });
        (exited, log_messages(&log))
    }
}

impl Node {
    /// The cgroup (relative to each hierarchy's root) under which this node's pods are,
    /// as kubelet's `kubepods`.
    pub(crate) fn cgroup_root(&self) -> String {
        let dir = self.containerd.dir().file_name().unwrap().to_string_lossy();
        format!("wasmoci-test/{}", dir.trim_start_matches('.'))
    }
}

impl Drop for Node {
    /// Removes the pods' cgroups (kubelet's part: the shim removes the containers').
    fn drop(&mut self) {
        crate::support::cri::remove_cgroups(Path::new(&self.cgroup_root()));
    }
}

impl Node {
    /// The `http-hello` component serving in a new pod (its own network namespace) with
    /// `annotations`, as container `http`: the pod, the container and the pod's status.
    pub(crate) fn serve_hello(
        &mut self,
        annotations: &[(&str, &str)],
    ) -> (Pod, String, k8s_cri::v1::PodSandboxStatusResponse) {
        let http = push_artifact(&self.registry, "http-hello", &fixture("http-hello.wasm"));
        self.pull(&http).unwrap();
        let pod = self.new_pod(annotations, false);
        let mut cri = self.cri.clone();
        let (id, status) = self.rt.block_on(async {
            let id = cri
                .create(&pod, &container("http", &http, &["http-hello.wasm"]))
                .await
                .unwrap();
            cri.start(&id).await.unwrap();
            (id, cri.pod_status(&pod).await.unwrap())
        });
        (pod, id, status)
    }

    /// Creates and starts a container that must fail to start: CRI's message.
    pub(crate) fn start_error(
        &mut self,
        annotations: &[(&str, &str)],
        container: ContainerSpec,
    ) -> String {
        let pod = self.new_pod(annotations, true);
        let mut cri = self.cri.clone();
        self.rt.block_on(async {
            let id = cri.create(&pod, &container).await.unwrap();
            let error = cri.start(&id).await.expect_err("StartContainer succeeded");
            cri.remove_pod(&pod).await.unwrap();
            error.message().to_owned()
        })
    }
}

pub(crate) fn container(name: &str, image: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: image.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        ..ContainerSpec::default()
    }
}

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn compiled_entries(home: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut entries: Vec<_> = std::fs::read_dir(home.join("cache/compiled"))
        .map(|d| {
            d.map(|e| {
                let e = e.unwrap();
                (e.path(), e.metadata().unwrap().modified().unwrap())
            })
            .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}

fn artifacts_run_through_cri(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd.clone()) else {
        return;
    };
    let hello = push_artifact(&node.registry, "hello", &fixture("hello.wasm"));
    let exit3 = push_artifact(&node.registry, "exit3", &fixture("exit3.wasm"));
    let membomb = push_artifact(&node.registry, "membomb", &fixture("membomb.wasm"));
    let cat = push_artifact(&node.registry, "cat", &fixture("cat.wasm"));
    let compat = push_image(
        &node.registry,
        "hello-image",
        &fixture("hello.wasm"),
        "/app/hello.wasm",
    );
    for image in [&hello, &exit3, &membomb, &cat, &compat] {
        node.pull(image)
            .unwrap_or_else(|e| panic!("PullImage `{image}`: {e}"));
    }

    // A CNCF artifact: the wasm comes from containerd's content store; `command:` only
    // names it.
    let (exited, log) = node.run(&[], container("hello", &hello, &["hello.wasm"]));
    assert_eq!(exited.exit_code, 0, "{exited:?} {log}");
    assert_eq!(log, "hello from wasi:cli/run\n");
    let cache = compiled_entries(node.home.path());
    assert!(
        !cache.is_empty(),
        "the first start compiled into the node's cache"
    );

    // The second start of the same digest, in another pod, loads what the first
    // compiled.
    let (exited, log) = node.run(&[], container("hello", &hello, &["hello.wasm"]));
    assert_eq!(
        (exited.exit_code, log.as_str()),
        (0, "hello from wasi:cli/run\n")
    );
    assert_eq!(
        compiled_entries(node.home.path()),
        cache,
        "the second start compiled"
    );

    // The exit code reaches ContainerStatus.
    let (exited, _) = node.run(&[], container("exit3", &exit3, &["exit3.wasm"]));
    assert_eq!(exited.exit_code, 3, "{exited:?}");

    // The pod's memory limit stops a memory bomb; the log says why, CRI says OOMKilled.
    let mut bomb = container("bomb", &membomb, &["membomb.wasm"]);
    bomb.memory_limit = 32 << 20;
    let (exited, log) = node.run(&[], bomb);
    assert_eq!(exited.exit_code, 137, "{exited:?} {log}");
    assert_eq!(exited.reason, "OOMKilled", "{exited:?}");
    assert!(log.contains("wasmoci: the guest was stopped"), "{log}");
    assert!(log.contains("memory"), "{log}");

    // Only what the pod mounts is visible: a hostPath volume is, the host is not.
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("hello.txt"), "from a volume\n").unwrap();
    let mut mounted = container("cat", &cat, &["cat.wasm"]);
    mounted.mounts = vec![("/data".into(), volume.path().display().to_string(), true)];
    let (exited, log) = node.run(&[], mounted);
    assert_eq!(
        (exited.exit_code, log.as_str()),
        (0, "from a volume\n"),
        "{exited:?}"
    );
    let (exited, log) = node.run(&[], container("cat", &cat, &["cat.wasm"]));
    assert_eq!(exited.exit_code, 2, "read a file it was not given: {log}");
    // A hostPath of the node's `/proc` (another pod's `environ`) is refused, whatever the
    // path the pod mounts it at.
    let mut hostproc = container("cat", &cat, &["cat.wasm"]);
    hostproc.mounts = vec![("/hostproc".into(), "/proc".into(), true)];
    let error = node.start_error(&[], hostproc);
    assert!(
        error.contains("failed to mount the volume `/proc` at `/hostproc`")
            && error.contains("`proc` filesystem"),
        "{error}"
    );

    // The image-compat format: the wasm is a file in the root filesystem; the image's
    // Entrypoint names it, so no `command:`.
    let (exited, log) = node.run(&[], container("compat", &compat, &[]));
    assert_eq!(
        (exited.exit_code, log.as_str()),
        (0, "hello from wasi:cli/run\n"),
        "{exited:?}"
    );

    // `path#func`: a core module started at another export than `_start`, as runwasi.
    let entry = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "entry") (call $exit (i32.const 7))))"#,
    )
    .unwrap();
    let entry = push_artifact(&node.registry, "entry", &entry);
    node.pull(&entry).unwrap();
    let (exited, log) = node.run(&[], container("entry", &entry, &["app.wasm#entry"]));
    assert_eq!(exited.exit_code, 7, "{exited:?} {log}");

    // A direct pull, pinned by digest, for nodes whose containerd cannot pull artifacts:
    // the pod's image is any image containerd can pull (here the image-compat one).
    let exit3_wasm = fixture("exit3.wasm");
    let artifact = build_artifact(ArtifactInput::new(&exit3_wasm, created())).unwrap();
    let pinned = format!("{exit3}@{}", artifact.manifest_digest);
    let (exited, log) = node.run(
        &[("wasmoci.dev/image", pinned.as_str())],
        container("direct", &compat, &["exit3.wasm"]),
    );
    assert_eq!(exited.exit_code, 3, "{exited:?} {log}");
    // Errors reach CRI as messages a person can act on.
    let unpinned = node.start_error(
        &[("wasmoci.dev/image", exit3.as_str())],
        container("direct", &compat, &["exit3.wasm"]),
    );
    assert!(unpinned.contains("must pin a digest"), "{unpinned}");
    // A pod cannot point the node at itself: a loopback registry the node does not name.
    let port = node.registry.addr.rsplit(':').next().unwrap();
    let elsewhere = format!(
        "127.0.0.2:{port}/wasmoci-test/exit3@{}",
        artifact.manifest_digest
    );
    let refused = node.start_error(
        &[("wasmoci.dev/image", elsewhere.as_str())],
        container("direct", &compat, &["exit3.wasm"]),
    );
    assert!(
        refused.contains("failed to pull") && refused.contains("is loopback"),
        "{refused}"
    );
    let native = push_native(
        &node.registry,
        "native",
        "bin/server",
        b"\x7fELF\x02\x01\x01",
        None,
    );
    node.pull(&native).unwrap();
    let refused = node.start_error(&[], container("native", &native, &["/bin/server"]));
    assert!(
        refused.contains("`/bin/server` is not WebAssembly; wasmoci runs Wasm components and modules, not native containers"),
        "{refused}"
    );
    let missing = node.start_error(&[], container("missing", &compat, &["/nope.wasm"]));
    assert!(
        missing.contains("failed to read the component `/nope.wasm`"),
        "{missing}"
    );
    // Tasks that could not be created left no root filesystem mounted (containerd
    // unmounts too when Create fails; the shim does not count on it).
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = node.containerd.dir().display().to_string();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&dir)).collect();
    assert!(left.is_empty(), "mounts left behind: {left:#?}");
}
on_each_containerd!(artifacts_run_through_cri);

#[test]
fn image_compat_runs_through_cri_on_containerd_1_6() {
    let Some(mut node) = Node::start(PathBuf::from(CONTAINERD_1_6)) else {
        return;
    };
    let compat = push_image(
        &node.registry,
        "hello-image",
        &fixture("hello.wasm"),
        "/hello.wasm",
    );
    node.pull(&compat)
        .unwrap_or_else(|e| panic!("PullImage `{compat}`: {e}"));
    // skopeo reads what `build_image` made as an ordinary image.
    if wasmoci_testdata::registry::require("/usr/bin/skopeo") {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--config", "--tls-verify=false"])
            .arg(format!("docker://{compat}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["config"]["Entrypoint"][0], "/hello.wasm");
    }
    let (exited, log) = node.run(&[], container("compat", &compat, &[]));
    assert_eq!(
        (exited.exit_code, log.as_str()),
        (0, "hello from wasi:cli/run\n"),
        "{exited:?}"
    );
    // What 1.6.20 cannot pull, as the research found: say so rather than pass by luck.
    let artifact = push_artifact(&node.registry, "hello", &fixture("hello.wasm"));
    let refused = node
        .pull(&artifact)
        .expect_err("1.6.20 pulled a Wasm artifact");
    assert!(
        refused
            .message()
            .contains("mismatched image rootfs and manifest layers"),
        "{refused}"
    );
}

/// `GET /` on `127.0.0.1:port` from inside the network namespace at `netns`.
pub(crate) fn get_inside(netns: &Path, port: u16) -> std::io::Result<String> {
    inside(netns, move || get_inside_here(&format!("127.0.0.1:{port}")))
}

/// Runs `f` on a thread inside the network namespace `netns`.
pub(crate) fn inside<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsFd;
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).unwrap();
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A GET of `/` at `addr` from this thread's network namespace (the answer in 30 s).
pub(crate) fn get_inside_here(addr: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Starts `container` in `pod`, lets it run for `settle`, reads its `ContainerStats`,
/// and removes it.
/// Starts `container` and reads its stats until `ready` holds for them (the guest may
/// not have started when the task has): every 50 ms, for 5 s at most. The last stats.
async fn stats_while_running(
    cri: &mut Cri,
    pod: &Pod,
    container: &ContainerSpec,
    ready: impl Fn(&k8s_cri::v1::ContainerStats) -> bool,
) -> k8s_cri::v1::ContainerStats {
    let id = cri.create(pod, container).await.unwrap();
    cri.start(&id).await.unwrap();
    let started = std::time::Instant::now();
    let stats = loop {
        let stats = cri.stats(&id).await.expect("ContainerStats");
        if ready(&stats) || started.elapsed() > Duration::from_secs(5) {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    cri.remove(&id).await.unwrap();
    stats
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

fn http_component_serves_inside_the_pod_network_namespace(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd.clone()) else {
        return;
    };
    let (pod, id, status) = node.serve_hello(&[
        ("wasmoci.dev/timeout", "5s"),
        ("wasmoci.dev/allow-net", "true"),
    ]);
    let mut cri = node.cri.clone();
    let log = Path::new(&pod.config.log_directory).join("http.log");
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    let holder = info["pid"].as_u64().expect("the sandbox has a pid");
    let pod_netns = crate::support::cri::pod_netns(&info);
    // The shim's holder thread lives in the pod's network namespace, so the paths CRI
    // gives the pod's containers (`/proc/<pid>/ns/net`) name it.
    let holder_netns = PathBuf::from(format!("/proc/{holder}/ns/net"));
    assert_eq!(inode(&holder_netns), inode(&pod_netns));
    assert_ne!(inode(&holder_netns), inode(Path::new("/proc/self/ns/net")));

    let response = get_inside(&pod_netns, 8080).expect("the component answers in the pod");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("hello from wasi:http\n"), "{response}");

    // Stats decode (one task whose stats CRI cannot read fails the node's list).
    node.rt.block_on(async {
        cri.runtime
            .list_container_stats(k8s_cri::v1::ListContainerStatsRequest::default())
            .await
            .expect("ListContainerStats");
        cri.stats(&id).await.expect("ContainerStats");
    });

    // Stats report the guest's memory: a sleeping module's linear memory.
    let sleep = push_artifact(&node.registry, "sleep", &fixture("sleep.wasm"));
    node.pull(&sleep).unwrap();
    let memory = |s: &k8s_cri::v1::ContainerStats| {
        s.memory
            .as_ref()
            .and_then(|m| m.usage_bytes.as_ref())
            .map_or(0, |u| u.value)
    };
    let usage = memory(&node.rt.block_on(stats_while_running(
        &mut cri,
        &pod,
        &container("sleep", &sleep, &["sleep.wasm"]),
        |s| memory(s) >= 64 << 10,
    )));
    assert!(
        usage >= 64 << 10,
        "memory usage {usage} is not the guest's memory"
    );
    // …and the CPU time of a busy one.
    let busy = push_artifact(&node.registry, "loop", &fixture("loop.wasm"));
    node.pull(&busy).unwrap();
    let cpu_of = |s: &k8s_cri::v1::ContainerStats| {
        s.cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref())
            .map_or(0, |u| u.value)
    };
    let cpu = cpu_of(&node.rt.block_on(stats_while_running(
        &mut cri,
        &pod,
        &container("busy", &busy, &["loop.wasm"]),
        |s| cpu_of(s) > 0,
    )));
    assert!(cpu > 0, "a busy guest shows no CPU time");

    // A guest waiting for input (`stdin: true`, nothing written) still stops.
    let reader = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_read"
               (func $read (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "_start")
               (i32.store (i32.const 0) (i32.const 16))
               (i32.store (i32.const 4) (i32.const 64))
               (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap();
    let reader = push_artifact(&node.registry, "reader", &reader);
    node.pull(&reader).unwrap();
    let stopped = node.rt.block_on(async {
        let id = cri
            .create(
                &pod,
                &ContainerSpec {
                    stdin: true,
                    ..container("reader", &reader, &["reader.wasm"])
                },
            )
            .await
            .unwrap();
        cri.start(&id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            cri.status(&id).await.unwrap().state,
            k8s_cri::v1::ContainerState::ContainerRunning as i32,
            "the reader did not wait for input"
        );
        // Bounded: without a cancellable read, the shim cannot stop it and
        // StopContainer never returns.
        cri.stop(&id, 2).await
    });
    assert_eq!(stopped.exit_code, 143, "{stopped:?}");

    // Granted sockets are the pod's: a guest with `allow-net` in a pod reaches the
    // pod's loopback, not the node's; in a host-network pod it reaches the node's.
    let host_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host_listener.local_addr().unwrap().port().to_string();
    let connect = push_artifact(&node.registry, "connect", &fixture("connect.wasm"));
    node.pull(&connect).unwrap();
    let connector = ContainerSpec {
        args: vec![port.clone()],
        ..container("connect", &connect, &["connect.wasm"])
    };
    let in_pod = node.rt.block_on(async {
        let id = cri.create(&pod, &connector).await.unwrap();
        cri.start(&id).await.unwrap();
        cri.wait_exited(&id, Duration::from_secs(60)).await
    });
    assert_eq!(
        in_pod.exit_code, 1,
        "a pod's guest reached the node's loopback"
    );
    let (on_host, connect_log) = node.run(&[("wasmoci.dev/allow-net", "true")], connector.clone());
    assert_eq!(on_host.exit_code, 0, "{on_host:?} {connect_log}");
    drop(host_listener);

    // StopContainer: SIGTERM drains the server, which then exits 0.
    let exited = node.rt.block_on(async {
        cri.runtime
            .stop_container(k8s_cri::v1::StopContainerRequest {
                container_id: id.clone(),
                timeout: 10,
            })
            .await
            .unwrap();
        cri.wait_exited(&id, Duration::from_secs(30)).await
    });
    assert_eq!(exited.exit_code, 0, "{exited:?} {}", log_messages(&log));
    node.rt.block_on(cri.remove_pod(&pod)).unwrap();
    // The holder goes with the pod (bounded wait).
    let proc_dir = PathBuf::from(format!("/proc/{holder}"));
    for _ in 0..100 {
        if !proc_dir.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!proc_dir.exists(), "the holder outlived its pod");
}
on_each_containerd!(http_component_serves_inside_the_pod_network_namespace);
