//! Every environment variable wasmoci reads, in one place. Where wasmoci keeps its files
//! (`$WASMOCI_HOME`) is [`wasmoci_fs::Home`].

use wasmoci_fs::Home;

pub use wasmoci_fs::WASMOCI_HOME;

/// Seconds since the epoch to use as the build time, for reproducible builds
/// (<https://reproducible-builds.org/specs/source-date-epoch/>).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// Neither `$WASMOCI_HOME` nor a home directory.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "failed to find a home directory for wasmoci's files: set `{}`",
    WASMOCI_HOME
)]
pub struct NoHome;

/// The command line's home, or an error saying how to set one.
pub fn home() -> Result<Home, NoHome> {
    Home::user().ok_or(NoHome)
}

/// `SOURCE_DATE_EPOCH`, when set.
pub fn source_date_epoch() -> Option<String> {
    std::env::var(SOURCE_DATE_EPOCH).ok()
}

/// wkg's configuration file, as wkg finds it: `$XDG_CONFIG_HOME/wasm-pkg/config.toml`,
/// else `~/.config/wasm-pkg/config.toml`.
pub fn wkg_config_file() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("wasm-pkg").join("config.toml"))
}
