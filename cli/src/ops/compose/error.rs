//! What can go wrong composing, each naming the input, import or line it is about.

use std::path::PathBuf;

/// A composition that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// An input is not a component (a core module, a WIT text, garbage).
    #[error("`{name}` is not a component: {reason}")]
    NotComponent {
        /// The input as named.
        name: String,
        /// Why.
        reason: String,
    },
    /// A locked dependency whose bytes cannot be had as the lock pins them.
    #[error("the locked dependency `{name}` cannot be used: {reason}")]
    Locked {
        /// Its name (or alias).
        name: String,
        /// Why.
        reason: String,
    },
    /// A plug filled no import, or an import asked to be filled was not.
    #[error("{summary}\n{explanation}")]
    Unplugged {
        /// One line.
        summary: String,
        /// Per import: the candidates and why each did not fit.
        explanation: String,
    },
    /// The plugs would depend on each other in a circle.
    #[error("the plugs form a cycle: {0}")]
    Cycle(String),
    /// A `.wac` document that does not parse or resolve.
    #[error("`{path}`, line {line}, column {column}: {message}")]
    Wac {
        /// The document.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based, in characters.
        column: usize,
        /// The parser's or resolver's message, with its causes.
        message: String,
    },
    /// A package a `.wac` document names was found nowhere.
    #[error("`{path}`, line {line}: no package `{package}` (looked in {looked})")]
    MissingPackage {
        /// The document.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// `ns:pkg[@version]`.
        package: String,
        /// Where it was looked for.
        looked: String,
    },
    /// The graph could not be encoded.
    #[error("failed to encode the composition: {0}")]
    Encode(String),
    /// The composed component is not one the runtime accepts.
    #[error("the composed component does not validate with the runtime's features: {0}")]
    Invalid(String),
}
