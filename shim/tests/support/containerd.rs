//! A private containerd for tests: its own root, state and sockets under a temporary
//! directory, the CRI plugin off (these tests drive tasks with `ctr`), and the shim under
//! test on its PATH. Needs root (containerd, and the shim's sockets in /run/containerd/s).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A running containerd, stopped on drop.
#[derive(Debug)]
pub(crate) struct TestContainerd {
    child: Child,
    /// The gRPC socket.
    pub(crate) address: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for TestContainerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestContainerd {
    /// Starts containerd with `shim_dir` first on its PATH; `None` when containerd is not
    /// installed (and this is not CI).
    pub(crate) fn start(shim_dir: &Path) -> Option<TestContainerd> {
        if !wasmoci_testdata::registry::require("/usr/bin/containerd")
            || !wasmoci_testdata::registry::require("/usr/bin/ctr")
        {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let address = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{address}\"\n[ttrpc]\n  address = \"{address}.ttrpc\"\n",
                root = dir.path().join("root").display(),
                state = dir.path().join("state").display(),
                address = address.display(),
            ),
        )
        .unwrap();
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(&config)
            .env("PATH", path)
            .env("WASMOCI_HOME", dir.path().join("wasmoci"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start containerd");
        let containerd = TestContainerd {
            child,
            address,
            dir,
        };
        for _ in 0..100 {
            if containerd.ctr(&["version"]).status.success() {
                return Some(containerd);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("containerd did not start");
    }

    /// Runs `ctr` against this containerd.
    pub(crate) fn ctr(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/ctr")
            .arg("--address")
            .arg(&self.address)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("failed to run ctr")
    }

    /// A scratch directory of this containerd (for root filesystems).
    /// SIGKILLs containerd (a crash that it never comes back from).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}
