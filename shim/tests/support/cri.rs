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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_cri::v1 as cri;

/// The config files of a test node's containerd (`version = 2` and `version = 3`).
#[path = "cri_config.rs"]
mod config;
use config::{config_v2, config_v3, major_version};
/// The CRI calls kubelet makes, and what they take and give.
#[path = "cri_client.rs"]
mod client;
#[allow(
    unused_imports,
    reason = "the cold-start example uses part of the harness"
)]
pub(crate) use client::{ContainerSpec, Cri, Exited, Pod, PodSpec};

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
