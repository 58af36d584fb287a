//! The names containerd and Kubernetes know wasmoci by, for the shim and for
//! `wasmoci node install` alike.

/// The CRI runtime name, which is the RuntimeClass `handler`.
pub const RUNTIME_NAME: &str = "wasmoci";
/// The containerd runtime type: containerd runs [`SHIM_BINARY`] for it.
pub const RUNTIME_TYPE: &str = "io.containerd.wasmoci.v1";
/// The shim binary's name (containerd derives it from [`RUNTIME_TYPE`]).
pub const SHIM_BINARY: &str = "containerd-shim-wasmoci-v1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_binary_is_the_one_containerd_derives_from_the_type() {
        // containerd: `io.containerd.NAME.vN` → `containerd-shim-NAME-vN`.
        let mut parts = RUNTIME_TYPE.rsplitn(2, '.');
        let version = parts.next().unwrap();
        let name = parts.next().unwrap().rsplit('.').next().unwrap();
        assert_eq!(SHIM_BINARY, format!("containerd-shim-{name}-{version}"));
    }
}
