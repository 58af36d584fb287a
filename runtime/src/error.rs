use std::path::PathBuf;

/// What can go wrong before or around running a guest (a guest's own failure is a
/// [`crate::exit::Exit`], not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// wasmtime refused the engine configuration.
    #[error("failed to configure the wasmtime engine: {0}")]
    Engine(String),
    /// The bytes do not compile.
    #[error("failed to compile `{name}`: {reason}")]
    Compile {
        /// The artifact.
        name: String,
        /// What wasmtime said.
        reason: String,
    },
    /// The program cannot be linked or instantiated (an import the host does not provide).
    #[error("failed to instantiate `{name}`: {reason}")]
    Instantiate {
        /// The artifact.
        name: String,
        /// What wasmtime said.
        reason: String,
    },
    /// The program has no entry point this runtime knows.
    #[error("`{name}` has nothing to run: {reason}")]
    NoEntryPoint {
        /// The artifact.
        name: String,
        /// What it exports instead.
        reason: String,
    },
    /// The program is not what the caller asked to run.
    #[error("`{name}` is {what}: {advice}")]
    Mismatch {
        /// The artifact.
        name: String,
        /// What it is.
        what: String,
        /// What to do instead.
        advice: String,
    },
    /// A directory grant that cannot be opened.
    #[error("failed to open `{}` for the guest: {reason}", path.display())]
    Preopen {
        /// The host directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A compile cache that cannot be trusted with native code.
    #[error("failed to use the compile cache `{}`: {reason}", path.display())]
    UnsafeCache {
        /// The directory or key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file-system operation of the cache or the server.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server could not start.
    #[error("failed to listen on `{addr}`")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The one way a wasmtime error becomes part of a message: the error and its causes on one
/// line (`{:#}`). Never `{:?}`, which appends the Rust backtrace wasmtime recorded when
/// `RUST_BACKTRACE` is set.
pub(crate) fn wasmtime_message(e: &wasmtime::Error) -> String {
    format!("{e:#}").trim().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wasmtime_message_is_the_chain_without_a_backtrace() {
        let e = wasmtime::Error::msg("inner").context("outer");
        assert_eq!(super::wasmtime_message(&e), "outer: inner");
    }
}
