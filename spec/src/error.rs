use crate::digest::DigestError;

/// What can go wrong while building or reading an artifact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are neither a core module nor a component.
    #[error("not a WebAssembly binary: no `\\0asm` preamble with a known version")]
    NotWasm,
    /// A core module where a component was expected.
    #[error("the binary is a core module, not a component")]
    NotAComponent,
    /// A component where a core module was expected.
    #[error("the binary is a component, not a core module")]
    NotAModule,
    /// A core module whose import or export section could not be read.
    #[error("failed to read the core module's imports and exports: {reason}")]
    ModuleDecode {
        /// What the parser said.
        reason: String,
    },
    /// Component bytes whose WIT world could not be decoded.
    #[error("failed to decode the component's WIT world: {reason}")]
    ComponentDecode {
        /// What the decoder said.
        reason: String,
    },
    /// A JSON document that does not parse as the type it should be.
    #[error("failed to parse the {document} as JSON: {reason}")]
    Json {
        /// Which document (`manifest`, `config`, `index.json`).
        document: &'static str,
        /// What serde said, with line and column.
        reason: String,
    },
    /// A malformed digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// An image-compat path that is not an absolute `.wasm` path without `..`.
    #[error(
        "invalid path `{0}` for the wasm in the image: use an absolute path ending in `.wasm`, such as `/app.wasm`"
    )]
    ImagePath(String),
    /// An image-compat image whose wasm cannot be found.
    #[error("failed to find the wasm in the image: {0}")]
    ImageWasm(String),
    /// A timestamp out of range.
    #[error("timestamp `{0}` is out of range")]
    Timestamp(i64),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
