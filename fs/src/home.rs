//! `$WASMOCI_HOME` and what lives under it.

use std::path::{Path, PathBuf};

/// Root of wasmoci's own files. Default: the platform data directory
/// (`~/.local/share/wasmoci` on Linux) for a user, `/var/lib/wasmoci` on a node.
pub const WASMOCI_HOME: &str = "WASMOCI_HOME";

/// The node's home when `$WASMOCI_HOME` is not set: where the shim keeps direct pulls and
/// compiled code.
const NODE_HOME: &str = "/var/lib/wasmoci";

/// wasmoci's home directory and its sub-paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The command line's home: `$WASMOCI_HOME`, else `<data dir>/wasmoci`; `None` when
    /// neither is known (no `$HOME`).
    pub fn user() -> Option<Self> {
        Self::from_env().or_else(|| dirs::data_dir().map(|d| Self::at(d.join("wasmoci"))))
    }

    /// The node's home (the containerd shim): `$WASMOCI_HOME`, else `/var/lib/wasmoci`.
    pub fn node() -> Self {
        Self::from_env().unwrap_or_else(|| Self::at(NODE_HOME))
    }

    fn from_env() -> Option<Self> {
        match std::env::var_os(WASMOCI_HOME) {
            Some(dir) if !dir.is_empty() => Some(Self::at(dir)),
            _ => None,
        }
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The embedded store: an OCI image layout at `<home>/store`.
    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Compiled code, keyed by digest and engine: `<home>/cache/compiled`.
    pub fn compile_cache(&self) -> PathBuf {
        self.root.join("cache").join("compiled")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_hang_off_the_root() {
        let home = Home::at("/h");
        assert_eq!(home.store(), Path::new("/h/store"));
        assert_eq!(home.compile_cache(), Path::new("/h/cache/compiled"));
    }
}
