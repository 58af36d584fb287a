//! containerd with its CRI plugin, driven the way kubelet drives it.
//!
//! [`CriContainerd`] starts a private containerd (own root, state, sockets and CNI config
//! under a temporary directory) with the CRI plugin on, the `native` snapshotter, the
//! `wasmoci` runtime pointing at the shim under test (and `runc`, which containerd needs
//! once any runtime is defined), `wasmoci.dev/*` annotations passed through to the shim,
//! `restrict_oom_score_adj` (these machines lack CAP_SYS_RESOURCE), a sandbox image the
//! test pushed to its own registry, a mirror entry for plain-HTTP pulls from that
//! registry, and a CNI network of its own (`ptp`, a private subnet). [`Cri`] is a CRI client over its socket.
//!
//! Two containerds: Debian trixie's 1.7.24 (which can pull Wasm artifacts), unpacked by
//! `.ci/containerd-1.7` under `target/tools/`, and the system's (Debian bookworm's
//! 1.6.20, which can pull only the image-compat format). Needs root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

/// Where `.ci/containerd-1.7` unpacks Debian trixie's containerd 1.7.24.
pub(crate) fn containerd_1_7() -> PathBuf {
    tool("WASMOCI_CONTAINERD_1_7", "containerd-1.7")
}

/// Where `.ci/containerd-2.1` unpacks Debian sid's containerd 2.1.
pub(crate) fn containerd_2_1() -> PathBuf {
    tool("WASMOCI_CONTAINERD_2_1", "containerd-2.1")
}

/// containerd unpacked under target/tools/`dir`, or where `var` says.
fn tool(var: &str, dir: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || {
            wasmoci_testdata::root()
                .parent()
                .expect("testdata/ is in the workspace")
                .join("target/tools")
                .join(dir)
                .join("usr/bin/containerd")
        },
        PathBuf::from,
    )
}

/// Debian bookworm's containerd 1.6.20 (the `containerd` package).
pub(crate) const CONTAINERD_1_6: &str = "/usr/bin/containerd";

/// Where Debian's `containernetworking-plugins` puts the CNI plugins.
pub(crate) const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// What a [`CriContainerd`] needs from the test.
#[derive(Debug, Clone)]
pub(crate) struct CriSetup {
    /// The containerd binary.
    pub(crate) containerd: PathBuf,
    /// The shim under test.
    pub(crate) shim: PathBuf,
    /// `127.0.0.1:PORT` of the test registry (pulled over plain HTTP).
    pub(crate) registry: String,
    /// The pause image, already in that registry.
    pub(crate) sandbox_image: String,
    /// `WASMOCI_HOME` for the shim (its compile cache and store).
    pub(crate) wasmoci_home: PathBuf,
    /// More runtimes: (handler, runtime type, shim path), e.g. a peer's shim to compare.
    pub(crate) other_runtimes: Vec<(String, String, PathBuf)>,
    /// containerd and the shims log at debug level (the shims' timing marks).
    pub(crate) debug: bool,
    /// More of containerd's environment, which the shims inherit (the node policy's path,
    /// `DOCKER_CONFIG`).
    pub(crate) env: Vec<(String, String)>,
    /// The `wasmoci` runtime's `options` (CRI sends them to the shim at Create as
    /// `runtimeoptions.v1.Options`: `ConfigPath`, `ConfigBody`, `TypeUrl`).
    pub(crate) runtime_options: Vec<(String, String)>,
}

/// What both config versions start with: where containerd keeps its state and listens
/// (all under `dir`), and the plugins a test node does without.
fn common(version: u32, dir: &Path) -> String {
    let p = |name: &str| dir.join(name).display().to_string();
    let disabled = [
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.blockfile",
        "io.containerd.snapshotter.v1.erofs",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.internal.v1.tracing",
        "io.containerd.nri.v1.nri",
    ];
    format!(
        "version = {version}\nroot = {:?}\nstate = {:?}\ndisabled_plugins = {disabled:?}\n[grpc]\n  address = {address:?}\n[ttrpc]\n  address = \"{address}.ttrpc\"\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = {:?}\n",
        p("root"),
        p("state"),
        p("opt"),
        address = p("containerd.sock"),
    )
}

/// containerd 1.x's config (`version = 2`) for a test node in `dir`.
fn config_v2(setup: &CriSetup, dir: &Path) -> String {
    let p = |name: &str| dir.join(name);
    let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
    let config = format!(
        r#"{common}[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[{cri}.containerd]
  snapshotter = "native"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.{runtime_name}]
  runtime_type = "{runtime_type}"
  runtime_path = "{shim}"
  pod_annotations = ["wasmoci.dev/*"]
  container_annotations = ["wasmoci.dev/*"]
[{cri}.cni]
  bin_dir = "{cni_bin}"
  conf_dir = "{cni_conf}"
[{cri}.registry.mirrors."{registry}"]
  endpoint = ["http://{registry}"]
"#,
        common = common(2, dir),
        sandbox_image = setup.sandbox_image,
        shim = setup.shim.display(),
        runtime_name = wasmoci_runtime::containerd::RUNTIME_NAME,
        runtime_type = wasmoci_runtime::containerd::RUNTIME_TYPE,
        cni_bin = CNI_BIN_DIR,
        cni_conf = p("cni").display(),
        registry = setup.registry,
    );
    let mut config = config;
    runtimes(&mut config, cri, setup);
    config
}

/// containerd 2.x's config (`version = 3`, as deploy/containerd/config-v3.toml): CRI's
/// runtime and image plugins split, the pause image pinned, the test registry reached in
/// plain HTTP through a `hosts.toml`. CRI pulls through the transfer service, which
/// unpacks only for the snapshotters its `unpack_config` names (else "no unpack
/// platforms defined"): `native` is named.
fn config_v3(setup: &CriSetup, dir: &Path) -> String {
    let p = |name: &str| dir.join(name);
    let hosts = p("certs.d").join(&setup.registry);
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"http://{r}\"\n[host.\"http://{r}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            r = setup.registry
        ),
    )
    .unwrap();
    let runtime = r#"plugins."io.containerd.cri.v1.runtime""#;
    let mut config = format!(
        r#"{common}[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "native"
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{sandbox_image}"
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "{certs}"
[plugins."io.containerd.transfer.v1.local"]
  config_path = "{certs}"
[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = "linux/{arch}"
  snapshotter = "native"
[{runtime}]
  restrict_oom_score_adj = true
[{runtime}.containerd]
  default_runtime_name = "runc"
[{runtime}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{runtime}.containerd.runtimes.{runtime_name}]
  runtime_type = "{runtime_type}"
  runtime_path = "{shim}"
  sandboxer = "podsandbox"
  pod_annotations = ["wasmoci.dev/*"]
  container_annotations = ["wasmoci.dev/*"]
[{runtime}.cni]
  bin_dirs = ["{cni_bin}"]
  conf_dir = "{cni_conf}"
"#,
        common = common(3, dir),
        sandbox_image = setup.sandbox_image,
        certs = p("certs.d").display(),
        shim = setup.shim.display(),
        runtime_name = wasmoci_runtime::containerd::RUNTIME_NAME,
        runtime_type = wasmoci_runtime::containerd::RUNTIME_TYPE,
        cni_bin = CNI_BIN_DIR,
        cni_conf = p("cni").display(),
        arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        },
    );
    runtimes(&mut config, runtime, setup);
    config
}

/// The `wasmoci` runtime's options and the other runtimes, under the CRI runtime plugin
/// `cri`.
fn runtimes(config: &mut String, cri: &str, setup: &CriSetup) {
    if !setup.runtime_options.is_empty() {
        config.push_str(&format!(
            "[{cri}.containerd.runtimes.{}.options]\n",
            wasmoci_runtime::containerd::RUNTIME_NAME
        ));
        for (key, value) in &setup.runtime_options {
            config.push_str(&format!("  {key} = {value:?}\n"));
        }
    }
    for (handler, runtime_type, path) in &setup.other_runtimes {
        config.push_str(&format!(
            "[{cri}.containerd.runtimes.{handler}]\n  runtime_type = \"{runtime_type}\"\n  runtime_path = \"{}\"\n",
            path.display()
        ));
    }
}

/// containerd's major version (`containerd --version`: `containerd <repo> 2.1.9 …`).
pub(crate) fn major_version(containerd: &Path) -> u32 {
    let out = std::process::Command::new(containerd)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("failed to run `{} --version`: {e}", containerd.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.trim_start_matches('v').split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("`{}` printed no version: {text}", containerd.display()))
}

/// A running containerd with CRI; on drop, the pods it still has are removed, then it is
/// stopped.
#[derive(Debug)]
pub(crate) struct CriContainerd {
    child: Option<Child>,
    /// The gRPC socket (containerd's API and CRI).
    pub(crate) address: PathBuf,
    dir: tempfile::TempDir,
    setup: CriSetup,
}

impl Drop for CriContainerd {
    fn drop(&mut self) {
        // Pods a failed test left: stop and remove them through CRI, so their shims,
        // holders, mounts and sockets go too (bounded: one pass, a short deadline).
        let address = self.address.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(20), async {
                    let mut cri = Cri::connect(&address).await.ok()?;
                    let pods = cri
                        .runtime
                        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
                        .await
                        .ok()?
                        .into_inner()
                        .items;
                    for pod in pods {
                        let id = pod.id;
                        let _ = cri
                            .runtime
                            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                                pod_sandbox_id: id.clone(),
                            })
                            .await;
                        let _ = cri
                            .runtime
                            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                            .await;
                    }
                    Some(())
                })
                .await
                .ok()
                .flatten()
            })
        })
        .join();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl CriContainerd {
    /// Starts containerd; `None` when it or the CNI plugins are missing (and this is not
    /// CI, where that fails).
    pub(crate) fn start(setup: &CriSetup) -> Option<CriContainerd> {
        let containerd = setup.containerd.to_str().expect("a UTF-8 path");
        if !wasmoci_testdata::registry::require(containerd)
            || !wasmoci_testdata::registry::require(&format!("{CNI_BIN_DIR}/ptp"))
        {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        let address = p("containerd.sock");
        std::fs::create_dir_all(p("cni")).unwrap();
        // CRI brings up each pod's `lo` itself and wants an `eth0` with an address from
        // the network (`loopback` alone reports only `lo`: "failed to find network info
        // for sandbox"). `ptp` gives each pod a veth pair and a host route on a private
        // /24 of its own per containerd, which nothing leaves the machine through; the
        // tests only talk to 127.0.0.1 inside the pod.
        static INSTANCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let instance = INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let subnet = format!(
            "10.{}.{}.0/24",
            200 + (std::process::id() % 50),
            instance % 250
        );
        std::fs::write(
            p("cni/10-wasmoci-test.conflist"),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"wasmoci-test","plugins":[{{"type":"ptp","ipMasq":false,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"{subnet}"}}]],"dataDir":"{ipam}"}}}}]}}"#,
                ipam = p("ipam").display()
            ),
        )
        .unwrap();
        let config = if major_version(&setup.containerd) >= 2 {
            config_v3(setup, dir.path())
        } else {
            config_v2(setup, dir.path())
        };
        std::fs::write(p("config.toml"), config).unwrap();
        let mut started = CriContainerd {
            child: None,
            address,
            dir,
            setup: setup.clone(),
        };
        started.spawn();
        started.wait_ready();
        Some(started)
    }

    /// Starts containerd with the config written, its log appended to.
    fn spawn(&mut self) {
        let setup = &self.setup;
        let p = |name: &str| self.dir.path().join(name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p("containerd.log"))
            .unwrap();
        let child = Command::new(&setup.containerd)
            .arg("--config")
            .arg(p("config.toml"))
            // 1.6.20 ignores `runtime_path` and looks the shim up on its PATH.
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    setup.shim.parent().expect("a file").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("WASMOCI_HOME", &setup.wasmoci_home)
            // The node allows direct pulls from the test registry on loopback (and only it).
            .env("WASMOCI_NODE_INSECURE_REGISTRIES", &setup.registry)
            .args(
                setup
                    .debug
                    .then_some(["--log-level", "debug"])
                    .into_iter()
                    .flatten(),
            )
            .env("RUST_LOG", if setup.debug { "debug" } else { "info" })
            .envs(setup.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("failed to start containerd");
        self.child = Some(child);
    }

    /// Waits (bounded) until CRI answers and its runtime is ready.
    fn wait_ready(&mut self) {
        for _ in 0..200 {
            if self.address.exists() {
                let ready = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let Ok(mut cri) = Cri::connect(&self.address).await else {
                            return false;
                        };
                        cri.runtime
                            .status(cri::StatusRequest::default())
                            .await
                            .is_ok_and(|s| {
                                s.into_inner().status.is_some_and(|s| {
                                    s.conditions
                                        .iter()
                                        .all(|c| c.status || c.r#type != "RuntimeReady")
                                })
                            })
                    });
                if ready {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("containerd exited ({status}) at start:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("containerd's CRI did not become ready:\n{}", self.log());
    }

    /// Restarts containerd as `systemctl restart` does (SIGTERM, then start it again with
    /// the same config and state): its shims, and so its pods, keep running.
    pub(crate) fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        self.start_again();
    }

    /// SIGKILLs containerd (a crash): its shims are left to themselves.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts containerd again after [`CriContainerd::kill`], on the same state.
    pub(crate) fn start_again(&mut self) {
        let _ = std::fs::remove_file(&self.address);
        self.spawn();
        self.wait_ready();
    }

    /// containerd's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// containerd's own log (for failure messages).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// A scratch directory of this containerd (pod logs go under it).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A CRI client: the calls kubelet makes.
#[derive(Debug, Clone)]
pub(crate) struct Cri {
    /// `runtime.v1.RuntimeService`.
    pub(crate) runtime: RuntimeServiceClient<Channel>,
    /// `runtime.v1.ImageService`.
    pub(crate) images: ImageServiceClient<Channel>,
}

/// A pod as the tests describe it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodSpec {
    /// `metadata.name` (also the uid, made unique by the caller).
    pub(crate) name: String,
    /// Pod annotations.
    pub(crate) annotations: HashMap<String, String>,
    /// `hostNetwork: true`.
    pub(crate) host_network: bool,
    /// Where CRI writes the containers' logs.
    pub(crate) log_directory: PathBuf,
    /// The RuntimeClass handler (`wasmoci` when empty).
    pub(crate) handler: String,
    /// The pod's cgroup (cgroupfs driver), as kubelet sets it: containerd puts each
    /// container's at `PARENT/ID` in its spec. None when empty.
    pub(crate) cgroup_parent: String,
}

/// A container as the tests describe it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerSpec {
    /// `name`.
    pub(crate) name: String,
    /// `image`.
    pub(crate) image: String,
    /// `command`.
    pub(crate) command: Vec<String>,
    /// `args`.
    pub(crate) args: Vec<String>,
    /// `resources.limits.memory` in bytes (0: none).
    pub(crate) memory_limit: i64,
    /// `resources.limits.cpu` as CFS quota and period in microseconds (0: none).
    pub(crate) cpu_quota: i64,
    /// (container path, host path, read-only) of hostPath volumes.
    pub(crate) mounts: Vec<(String, String, bool)>,
    /// `env`.
    pub(crate) env: Vec<(String, String)>,
    /// `stdin: true`.
    pub(crate) stdin: bool,
    /// `securityContext.runAsUser`.
    pub(crate) run_as_user: Option<i64>,
    /// The pod's `fsGroup` and `supplementalGroups`.
    pub(crate) supplemental_groups: Vec<i64>,
}

/// A started pod: its id and the config CRI wants again with every container.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    /// The sandbox id.
    pub(crate) id: String,
    /// Its config.
    pub(crate) config: cri::PodSandboxConfig,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exited {
    /// Its exit code.
    pub(crate) exit_code: i32,
    /// CRI's reason (`Completed`, `Error`, `OOMKilled`).
    pub(crate) reason: String,
    /// CRI's message.
    pub(crate) message: String,
}

impl Cri {
    /// Connects to containerd's socket.
    pub(crate) async fn connect(address: &Path) -> Result<Cri, tonic::transport::Error> {
        let channel = containerd_client::connect(address).await?;
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// `PullImage`: the image's id.
    pub(crate) async fn pull(&mut self, image: &str) -> Result<String, tonic::Status> {
        let response = self
            .images
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
        Ok(response.into_inner().image_ref)
    }

    /// `RunPodSandbox` with `runtime_handler = "wasmoci"`.
    pub(crate) async fn run_pod(&mut self, spec: &PodSpec) -> Result<Pod, tonic::Status> {
        std::fs::create_dir_all(&spec.log_directory).unwrap();
        let network = if spec.host_network {
            cri::NamespaceMode::Node
        } else {
            cri::NamespaceMode::Pod
        };
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: spec.name.clone(),
                uid: format!("uid-{}", spec.name),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: spec.name.clone(),
            log_directory: spec.log_directory.display().to_string(),
            annotations: spec.annotations.clone(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: network as i32,
                        pid: cri::NamespaceMode::Pod as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                cgroup_parent: spec.cgroup_parent.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let response = self
            .runtime
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: if spec.handler.is_empty() {
                    "wasmoci".into()
                } else {
                    spec.handler.clone()
                },
            })
            .await?;
        Ok(Pod {
            id: response.into_inner().pod_sandbox_id,
            config,
        })
    }

    /// `CreateContainer`: the container's id.
    pub(crate) async fn create(
        &mut self,
        pod: &Pod,
        spec: &ContainerSpec,
    ) -> Result<String, tonic::Status> {
        let resources = cri::LinuxContainerResources {
            memory_limit_in_bytes: spec.memory_limit,
            cpu_quota: spec.cpu_quota,
            cpu_period: if spec.cpu_quota > 0 { 100_000 } else { 0 },
            ..Default::default()
        };
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: spec.name.clone(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: spec.image.clone(),
                ..Default::default()
            }),
            command: spec.command.clone(),
            args: spec.args.clone(),
            envs: spec
                .env
                .iter()
                .map(|(key, value)| cri::KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            mounts: spec
                .mounts
                .iter()
                .map(|(container, host, readonly)| cri::Mount {
                    container_path: container.clone(),
                    host_path: host.clone(),
                    readonly: *readonly,
                    ..Default::default()
                })
                .collect(),
            log_path: format!("{}.log", spec.name),
            stdin: spec.stdin,
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(resources),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    run_as_user: spec.run_as_user.map(|value| cri::Int64Value { value }),
                    supplemental_groups: spec.supplemental_groups.clone(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let response = self
            .runtime
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.config.clone()),
            })
            .await?;
        Ok(response.into_inner().container_id)
    }

    /// `StartContainer`.
    pub(crate) async fn start(&mut self, id: &str) -> Result<(), tonic::Status> {
        self.runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// `ContainerStatus`.
    pub(crate) async fn status(&mut self, id: &str) -> Result<cri::ContainerStatus, tonic::Status> {
        let response = self
            .runtime
            .container_status(cri::ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: false,
            })
            .await?;
        Ok(response.into_inner().status.unwrap_or_default())
    }

    /// `ContainerStats`.
    pub(crate) async fn stats(&mut self, id: &str) -> Result<cri::ContainerStats, tonic::Status> {
        let response = self
            .runtime
            .container_stats(cri::ContainerStatsRequest {
                container_id: id.to_owned(),
            })
            .await?;
        Ok(response.into_inner().stats.unwrap_or_default())
    }

    /// Polls `ContainerStatus` until the container exits (at most `limit`).
    pub(crate) async fn wait_exited(&mut self, id: &str, limit: Duration) -> Exited {
        let start = std::time::Instant::now();
        loop {
            let status = self.status(id).await.expect("ContainerStatus");
            if status.state == cri::ContainerState::ContainerExited as i32 {
                return Exited {
                    exit_code: status.exit_code,
                    reason: status.reason,
                    message: status.message,
                };
            }
            assert!(
                start.elapsed() < limit,
                "container `{id}` still runs after {limit:?}: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `StopContainer` then `RemoveContainer`.
    /// StopContainer with `grace` seconds before SIGKILL (the call bounded at 30 s: a
    /// guest the shim cannot stop would keep it waiting), then how it ended.
    pub(crate) async fn stop(&mut self, id: &str, grace: i64) -> Exited {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.runtime.stop_container(cri::StopContainerRequest {
                container_id: id.to_owned(),
                timeout: grace,
            }),
        )
        .await
        .expect("StopContainer did not return: the guest was not stopped")
        .unwrap();
        self.wait_exited(id, Duration::from_secs(20)).await
    }

    pub(crate) async fn remove(&mut self, id: &str) -> Result<(), tonic::Status> {
        self.runtime
            .stop_container(cri::StopContainerRequest {
                container_id: id.to_owned(),
                timeout: 5,
            })
            .await?;
        self.runtime
            .remove_container(cri::RemoveContainerRequest {
                container_id: id.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// `StopPodSandbox` alone.
    pub(crate) async fn stop_pod(&mut self, pod: &Pod) -> Result<(), tonic::Status> {
        self.runtime
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            })
            .await?;
        Ok(())
    }

    /// `StopPodSandbox` then `RemovePodSandbox` (which removes its containers too).
    pub(crate) async fn remove_pod(&mut self, pod: &Pod) -> Result<(), tonic::Status> {
        self.stop_pod(pod).await?;
        self.runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            })
            .await?;
        Ok(())
    }

    /// `PodSandboxStatus`: the pod's network namespace path is in its `info`
    /// (verbose), its IP in `network`.
    pub(crate) async fn pod_status(
        &mut self,
        pod: &Pod,
    ) -> Result<cri::PodSandboxStatusResponse, tonic::Status> {
        Ok(self
            .runtime
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.id.clone(),
                verbose: true,
            })
            .await?
            .into_inner())
    }
}

/// The network namespace of a pod, from its `PodSandboxStatus` info (`runtimeSpec`).
pub(crate) fn pod_netns(info: &serde_json::Value) -> std::path::PathBuf {
    info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str())
        .map(std::path::PathBuf::from)
        .expect("a pod network namespace")
}

/// The messages of a CRI container log file (`TIME STREAM TAG MESSAGE` lines), joined by
/// newlines where a line ended (`F`).
pub(crate) fn log_messages(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (_, _, tag, message) = (parts.next(), parts.next(), parts.next(), parts.next());
        out.push_str(message.unwrap_or_default());
        if tag == Some("F") {
            out.push('\n');
        }
    }
    out
}

/// Removes the cgroup at `relative` and every one below it, in every hierarchy (v2, or
/// each v1 controller), deepest first; what is still in use stays.
pub(crate) fn remove_cgroups(relative: &Path) {
    fn remove_tree(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut bases = vec![root.to_owned()];
    if let Ok(hierarchies) = std::fs::read_dir(root) {
        bases.extend(hierarchies.flatten().map(|h| h.path()));
    }
    for base in bases {
        remove_tree(&base.join(relative));
        // Its parents too, once empty (the tests' top cgroup, when no other test uses it).
        for parent in relative.ancestors().skip(1) {
            if !parent.as_os_str().is_empty() {
                let _ = std::fs::remove_dir(base.join(parent));
            }
        }
    }
}
