//! What can go wrong with dependencies.

use std::path::PathBuf;

use wasmoci_registry::client::RegistryError;
use wasmoci_spec::deps::solve::SolveError;

use super::lock::{LOCK_FILE, LockError};
use crate::project::PROJECT_FILE;

/// What can go wrong with dependencies.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    /// No repository is known for a package.
    #[error(
        "no repository for `{package}` (line {line} of `{PROJECT_FILE}`): give it `oci = \"HOST/REPO\"`, or map its namespace in `[registries]`"
    )]
    NoRepository {
        /// The package.
        package: String,
        /// Its entry's line.
        line: usize,
    },
    /// Nothing says where a package is, and wkg's discovery found nothing either.
    #[error(
        "no repository for `{package}` (line {line} of `{PROJECT_FILE}`): it has no `oci` and no `[registries]` entry; tried {tried}. Give it `oci = \"HOST/REPO\"`, or map its namespace in `[registries]`"
    )]
    Discovery {
        /// The package.
        package: String,
        /// Its entry's line.
        line: usize,
        /// What was tried, in order.
        tried: String,
    },
    /// Two repositories for one package.
    #[error("`{package}` comes from two repositories, `{first}` and `{second}`")]
    TwoRepositories {
        /// The package.
        package: String,
        /// One.
        first: String,
        /// The other.
        second: String,
    },
    /// No set of versions satisfies every requirement: the solver's explanation, and
    /// the project's lines that asked.
    #[error("failed to resolve the dependencies:\n{explanation}{}", asked.iter().map(|a| format!("\n{a}")).collect::<String>())]
    NoSolution {
        /// Why, in words.
        explanation: String,
        /// `wasmoci.toml line 7: "acme:kv" = "^3"`, for each entry the explanation names.
        asked: Vec<String>,
    },
    /// The solver could not read the index.
    #[error(transparent)]
    Solve(#[from] SolveError),
    /// A registry request failed.
    #[error("failed to read `{reference}`")]
    Fetch {
        /// What was read.
        reference: String,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// A manifest that is not an OCI image manifest, or has a bad annotation.
    #[error("invalid `{reference}`: {reason}")]
    Manifest {
        /// The manifest.
        reference: String,
        /// Why.
        reason: String,
    },
    /// A local dependency that cannot be read.
    #[error("failed to read `{}` (line {line} of `{PROJECT_FILE}`)", path.display())]
    Path {
        /// The file.
        path: PathBuf,
        /// Its entry's line.
        line: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A local dependency changed since the lock was written.
    #[error("`{}` (line {line} of `{PROJECT_FILE}`) changed since `{LOCK_FILE}` was written: run `wasmoci dependency update`", path.display())]
    LocalChanged {
        /// The file, relative to the project.
        path: PathBuf,
        /// Its entry's line.
        line: usize,
    },
    /// Two entries became the same package at the same version.
    #[error("`{first}` and `{second}` resolve to the same package and version, `{package}`")]
    Twice {
        /// One key.
        first: String,
        /// The other.
        second: String,
        /// `name@version`.
        package: String,
    },
    /// No lock.
    #[error("no `{LOCK_FILE}` in `{}`: run `wasmoci dependency update`", dir.display())]
    NoLock {
        /// The project.
        dir: PathBuf,
    },
    /// `--locked`, and the lock would change.
    #[error(
        "`{LOCK_FILE}` would change ({0}) and `--locked` was given: run `wasmoci dependency update` without it, and commit the lock"
    )]
    WouldChange(String),
    /// The versions chosen would not compose with the project's component.
    #[error(
        "the update would break `[compose]`: the project's component does not compose with the versions chosen (nothing was written)"
    )]
    BreaksComposition(#[source] Box<crate::ops::Error>),
    /// `--offline`, and the store lacks what the lock pins.
    #[error(
        "`--offline`, and the store lacks {0}: run `wasmoci dependency build` with the network once"
    )]
    Offline(String),
    /// The lock does not match the project.
    #[error("`{LOCK_FILE}` is out of sync with `{PROJECT_FILE}`: run `wasmoci dependency update`")]
    OutOfSync,
    /// The lock cannot be read.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The lock cannot be read or written.
    #[error("failed to {action} `{}`", path.display())]
    LockFile {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--precise` with other than one package, or a package not in the lock.
    #[error("{0}")]
    Usage(String),
    /// Storing what was fetched failed.
    #[error(transparent)]
    Store(Box<crate::ops::Error>),
}
