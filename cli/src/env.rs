//! Every environment variable wasmoci reads, in one place.

use std::path::PathBuf;

/// Root of wasmoci's own files; the embedded store is `$WASMOCI_HOME/store`.
/// Default: the platform data directory (`~/.local/share/wasmoci` on Linux).
pub const WASMOCI_HOME: &str = "WASMOCI_HOME";

/// Seconds since the epoch to use as the build time, for reproducible builds
/// (<https://reproducible-builds.org/specs/source-date-epoch/>).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// wasmoci's home directory: `$WASMOCI_HOME`, else `<data dir>/wasmoci`.
pub fn home() -> Option<PathBuf> {
    match std::env::var_os(WASMOCI_HOME) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::data_dir().map(|d| d.join("wasmoci")),
    }
}

/// The embedded store: an OCI image layout at `<home>/store`.
pub fn store_dir() -> Option<PathBuf> {
    home().map(|h| h.join("store"))
}

/// Compiled artifacts: `<home>/cache/compiled`.
pub fn compile_cache_dir() -> Option<PathBuf> {
    home().map(|h| h.join("cache").join("compiled"))
}
