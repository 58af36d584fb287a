//! The work of the commands, callable without the command line: each operation takes a
//! request, returns a report (`Serialize`, for `--json`), and never prints.
//!
//! - [`artifact`]: load an artifact wherever it is named, the store's naming rule for
//!   pulled artifacts, and pulling what the store lacks.
//! - [`build`]: a file or project into a Wasm OCI artifact in a layout.
//! - [`carry`]: referrers and signatures carried along a copy (`--referrers`).
//! - [`check`]: the one validation (`validate`, `publish`, `build`'s policy gate).
//! - [`componentize`]: a module or component into the bytes that go into an artifact.
//! - [`convert`]: an artifact into the image-compat format.
//! - [`copy`]: an artifact between registries and layouts, keeping its digest.
//! - [`deps`]: component dependencies: `[dependencies]`, resolution.
//! - [`inspect`]: what an artifact is, and a component's WIT.
//! - [`node_policy`]: the node policy's rules on an artifact, from a workstation.
//! - [`publish`]: checking what `publish` built, and its receipt.
//! - [`referrers`]: `attach` and `discover`: what points at a manifest.
//! - [`signatures`]: `sign` and `verify`, as cosign does with a key.
//! - [`store`]: the embedded store's everyday commands: list, remove, collect garbage.

pub mod artifact;
pub mod build;
pub mod carry;
pub mod check;
pub mod componentize;
pub mod compose;
pub mod convert;
pub mod copy;
pub mod deps;
mod embed;
mod error;
pub mod inspect;
pub mod node_policy;
pub mod publish;
pub mod referrers;
pub mod semver;
pub mod signatures;
pub mod store;

pub use error::{Cause, Error, Result};
use serde::Serialize;
use wasmoci_spec::Digest;

/// A blob a transfer moved or skipped, in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Blob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

impl Blob {
    /// The blobs of a registry report (`(digest, size)` pairs).
    pub fn list(pairs: &[(Digest, u64)]) -> Vec<Blob> {
        pairs
            .iter()
            .map(|&(digest, size)| Blob { digest, size })
            .collect()
    }
}

/// How many threads CPU-bound work (validating function bodies) may use: the CPUs this
/// process may run on.
pub fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}
