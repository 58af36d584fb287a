//! Harnesses: a private containerd driven with `ctr`, one with CRI, and images to push.

pub(crate) mod containerd;
pub(crate) mod cri;
pub(crate) mod images;

/// How many of our shims serve the containerd at `address` (its socket path appears in
/// their command lines).
pub(crate) fn shims_running(address: &std::path::Path) -> usize {
    let out = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("failed to run `ps`");
    let address = address.display().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(wasmoci_runtime::containerd::SHIM_BINARY) && l.contains(&address))
        .count()
}

/// The pid of the shim serving the pod `sandbox` for the containerd at `address` (its
/// command line names both).
pub(crate) fn shim_pid(address: &std::path::Path, sandbox: &str) -> Option<u32> {
    let out = std::process::Command::new("ps")
        .args(["-eo", "pid=,args="])
        .output()
        .expect("failed to run `ps`");
    let address = address.display().to_string();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (pid, args) = l.trim().split_once(' ')?;
        (args.contains(wasmoci_runtime::containerd::SHIM_BINARY)
            && args.contains(&address)
            && args.contains(&format!("-id {sandbox}")))
        .then(|| pid.parse().ok())?
    })
}
