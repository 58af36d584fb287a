//! What can go wrong in an operation: one variant per failure, each naming the file,
//! reference or digest, with the underlying error as its source.

use std::path::PathBuf;
use std::process::ExitStatus;

use wasmoci_registry::Reference;
use wasmoci_registry::client::RegistryError;
use wasmoci_spec::Digest;

use crate::env::NoHome;
use crate::ops::componentize::BuildError;
use crate::policy::PolicyError;
use crate::project::ProjectError;
use crate::reference::ReferenceError;

/// Why something could not be read, whatever its kind.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A result of an operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No home for the store and the compile cache.
    #[error(transparent)]
    Home(#[from] NoHome),
    /// A layout could not be read or written.
    #[error(transparent)]
    Layout(Box<wasmoci_registry::Error>),
    /// A Wasm artifact rule or the wasm itself.
    #[error(transparent)]
    Spec(#[from] wasmoci_spec::Error),
    /// Reading or componentizing the wasm.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// `wasmoci.toml`.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// `[dependencies]` that cannot be used.
    #[error(transparent)]
    Dependencies(Box<crate::ops::deps::resolve::DepsError>),
    /// A composition.
    #[error(transparent)]
    Compose(Box<crate::ops::compose::ComposeError>),
    /// An import pattern.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Attaching, listing or writing out referrers.
    #[error(transparent)]
    Referrer(Box<crate::ops::referrers::ReferrerError>),
    /// A node policy file.
    #[error(transparent)]
    NodePolicy(#[from] crate::ops::node_policy::PolicyFileError),
    /// Key files, signing and verifying.
    #[error(transparent)]
    Signature(Box<crate::ops::signatures::KeyFileError>),
    /// An artifact name.
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    /// A registry artifact the store lacks, with pulling off.
    #[error(
        "`{reference}` is not in the store{}{hint}: run `wasmoci pull {reference}` first",
        stored_as(names)
    )]
    NotStored {
        /// What was asked for.
        reference: Box<Reference>,
        /// The names its digest is stored under, when it names one the store has.
        names: Vec<String>,
        /// The closest names the store has (` (did you mean …?)`), or nothing.
        hint: String,
    },
    /// A pull failed.
    #[error("failed to pull `{reference}`")]
    Pull {
        /// What was pulled.
        reference: Box<Reference>,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// The tags of a repository could not be listed.
    #[error("failed to list the tags of `{repository}`")]
    Tags {
        /// The repository.
        repository: Box<Reference>,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// A copy from a registry into a layout failed.
    #[error("failed to copy `{reference}`")]
    Copy {
        /// The source.
        reference: Box<Reference>,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// Writing to a registry failed.
    #[error("failed to write `{reference}`")]
    Write {
        /// The destination.
        reference: Box<Reference>,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// An artifact (its manifest) could not be read.
    #[error("failed to read `{name}`")]
    Read {
        /// The artifact, as named.
        name: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// An artifact's config could not be read.
    #[error("failed to read the config of `{name}`")]
    ReadConfig {
        /// The artifact, as named.
        name: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// An artifact's layers could not be read.
    #[error("failed to read the layers of `{name}`")]
    ReadLayers {
        /// The artifact, as named.
        name: String,
        /// Why.
        #[source]
        source: Box<wasmoci_registry::Error>,
    },
    /// A blob could not be opened.
    #[error("failed to read blob `{digest}`")]
    ReadBlob {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A blob could not be copied into a layout.
    #[error("failed to copy blob `{digest}`")]
    CopyBlob {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: Box<wasmoci_registry::Error>,
    },
    /// The store is empty.
    #[error(
        "no artifact `{reference}` in the store `{}`: it is empty (`wasmoci build` puts artifacts there){hint}",
        store.display()
    )]
    EmptyStore {
        /// The artifact, as named.
        reference: String,
        /// The store.
        store: PathBuf,
        /// A hint, or nothing.
        hint: &'static str,
    },
    /// A name that may have been meant as a file is not in the store.
    #[error("no artifact `{reference}` in the store `{}`{hint}", store.display())]
    NotInStore {
        /// The artifact, as named.
        reference: String,
        /// The store.
        store: PathBuf,
        /// A hint.
        hint: &'static str,
    },
    /// Not exactly one wasm layer.
    #[error("`{0}` does not have exactly one wasm layer (run `wasmoci validate` on it)")]
    NotOneWasmLayer(String),
    /// The wasm of an image-compat image could not be read.
    #[error("failed to read the wasm in the image `{name}`")]
    ImageWasm {
        /// The image, as named.
        name: String,
        /// Why.
        #[source]
        source: wasmoci_spec::Error,
    },
    /// The image-compat form could not be built.
    #[error("failed to convert `{name}`")]
    Convert {
        /// The artifact, as named.
        name: String,
        /// Why.
        #[source]
        source: wasmoci_spec::Error,
    },
    /// A file named as one end of a copy.
    #[error(
        "`{}` is a file; `copy` moves artifacts between registries and layouts (use `push` to publish a file)",
        .0.display()
    )]
    CopyFile(PathBuf),
    /// A copy destination named by digest.
    #[error("a copy destination needs a tag, not a digest")]
    CopyToDigest,
    /// No scratch directory.
    #[error("failed to create a temporary directory")]
    TempDir(#[source] std::io::Error),

    /// Not a WebAssembly binary.
    #[error("`{0}` is not a WebAssembly module or component")]
    NotWasmBinary(String),
    /// A core module asked for its WIT.
    #[error("`{0}` is a core module, which has no WIT")]
    NoWit(String),
    /// A component's WIT could not be decoded or printed.
    #[error("failed to {what} the WIT of `{name}`")]
    Wit {
        /// `decode` or `print`.
        what: &'static str,
        /// The artifact, as named.
        name: String,
        /// Why.
        #[source]
        source: Cause,
    },

    /// The file to build is not there.
    #[error("failed to read `{}`: no such file or directory", .0.display())]
    NoInput(PathBuf),
    /// A bad `[policy]`.
    #[error("invalid `[policy]` in `{}`", path.display())]
    ProjectPolicy {
        /// The project file.
        path: PathBuf,
        /// Why.
        #[source]
        source: PolicyError,
    },
    /// A bad `--tag`.
    #[error("invalid `--tag {tag}`: {reason}")]
    Tag {
        /// The tag.
        tag: String,
        /// Why.
        reason: String,
    },
    /// A file whose stem is no artifact name.
    #[error("failed to name the artifact after the file: {0}; pass `--tag NAME:VERSION`")]
    Unnamed(String),
    /// A bad `-a KEY=VALUE`.
    #[error("invalid annotation `{0}`: expected `KEY=VALUE`")]
    Annotation(String),
    /// `SOURCE_DATE_EPOCH` is not a number.
    #[error("invalid `{var}` `{text}`: expected seconds since 1970-01-01", var = crate::env::SOURCE_DATE_EPOCH)]
    SourceDateEpoch {
        /// Its value.
        text: String,
        /// Why.
        #[source]
        source: std::num::ParseIntError,
    },
    /// `SOURCE_DATE_EPOCH` is out of range.
    #[error("invalid `{var}` `{text}`: expected a time between 1970 and 9999", var = crate::env::SOURCE_DATE_EPOCH)]
    SourceDateEpochRange {
        /// Its value.
        text: String,
    },
    /// `build.command` could not be started.
    #[error("failed to run `build.command` `{command}`")]
    RunCommand {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `build.command` failed.
    #[error("`build.command` `{command}` failed with {status}; nothing was stored")]
    CommandFailed {
        /// The command.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The artifact could not be stored.
    #[error("failed to store `{tag}` in `{}`", layout.display())]
    Store {
        /// The tag.
        tag: String,
        /// The layout.
        layout: PathBuf,
        /// Why.
        #[source]
        source: Box<wasmoci_registry::Error>,
    },
    /// A file could not be written.
    #[error("failed to write `{}`", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// ` (its digest is stored only as `a`, `b`)`, or nothing.
fn stored_as(names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!(" (its digest is stored only as {})", list.join(", "))
}

impl From<crate::ops::referrers::ReferrerError> for Error {
    fn from(e: crate::ops::referrers::ReferrerError) -> Self {
        Error::Referrer(Box::new(e))
    }
}

impl From<crate::ops::signatures::KeyFileError> for Error {
    fn from(e: crate::ops::signatures::KeyFileError) -> Self {
        Error::Signature(Box::new(e))
    }
}

impl From<wasmoci_registry::Error> for Error {
    fn from(e: wasmoci_registry::Error) -> Self {
        Error::Layout(Box::new(e))
    }
}
