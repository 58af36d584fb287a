//! What can go wrong talking to a registry.

use wasmoci_spec::Digest;

use crate::auth::CredentialSource;

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The manifest or blob is not there.
    #[error("`{reference}` not found: {what}")]
    NotFound {
        /// What we asked for.
        reference: String,
        /// Which part.
        what: String,
    },
    /// Authenticated, but not allowed.
    #[error("access to `{reference}` denied with {source_of}{}", unread(source_of))]
    Denied {
        /// What we asked for.
        reference: String,
        /// Where the credentials came from.
        source_of: CredentialSource,
    },
    /// The registry wants credentials we do not have or it does not accept.
    #[error(
        "unauthorized for `{reference}` with {source_of}: {detail}{}",
        unread(source_of)
    )]
    Unauthorized {
        /// What we asked for.
        reference: String,
        /// Where the credentials came from.
        source_of: CredentialSource,
        /// What the registry said.
        detail: String,
    },
    /// 429.
    #[error("`{registry}` is rate-limiting us{}", retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    RateLimited {
        /// The registry.
        registry: String,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// No connection.
    #[error("failed to reach `{registry}`: {reason}")]
    Unreachable {
        /// The registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// A registry that speaks TLS, asked in plain HTTP (it answered 400).
    #[error("`{registry}` speaks TLS (HTTPS) but was asked in plain HTTP: {fix}")]
    TlsAskedInPlainHttp {
        /// The registry.
        registry: String,
        /// The flags that fix it.
        fix: &'static str,
    },
    /// A registry that speaks plain HTTP, asked in TLS.
    #[error(
        "`{registry}` answers in plain HTTP, not TLS ({reason}): pass `--plain-http` to talk plain HTTP to it"
    )]
    PlainHttpAskedInTls {
        /// The registry.
        registry: String,
        /// What the TLS library said.
        reason: String,
    },
    /// TLS failed.
    #[error(
        "failed to set up TLS with `{registry}`: {reason} (for a private CA, pass `--ca-file FILE`; to skip verification, `--insecure`; for a registry without TLS, `--plain-http`)"
    )]
    Tls {
        /// The registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// Anything else the registry answered.
    #[error("failed to {action} `{reference}`: the registry answered {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        /// What we were doing.
        action: &'static str,
        /// On what.
        reference: String,
        /// HTTP status.
        status: u16,
        /// The OCI error message, when there is one.
        detail: String,
    },
    /// Content that does not match its digest.
    #[error("`{reference}`: content for `{expected}` hashes to `{actual}`; nothing was kept")]
    DigestMismatch {
        /// What we asked for.
        reference: String,
        /// The digest asked for.
        expected: Digest,
        /// What we received.
        actual: Digest,
    },
    /// A manifest we cannot use.
    #[error("`{reference}` is not a Wasm artifact we can read: {reason}")]
    Unsupported {
        /// What we asked for.
        reference: String,
        /// Why (the media types found).
        reason: String,
    },
    /// An answer, a listing or a blob larger than the client accepts (a registry that
    /// is broken or hostile: a huge token, endless tag pages, a lying blob size).
    #[error("failed to {action} `{reference}`: {what}")]
    TooLarge {
        /// What we were doing.
        action: &'static str,
        /// On what (it names the registry).
        reference: String,
        /// What was too large, and the limit.
        what: String,
    },
    /// A Bearer challenge naming a token service we will not ask (plain HTTP from a
    /// registry reached over TLS or on another machine, another scheme, a user in it).
    #[error(
        "failed to get a token for `{reference}`: the registry names the token service `{realm}`, and {reason}"
    )]
    UnsafeRealm {
        /// What we asked for.
        reference: String,
        /// The `realm` of the challenge.
        realm: String,
        /// Why we do not go there.
        reason: String,
    },
    /// The local side of a transfer.
    #[error(transparent)]
    Layout(#[from] crate::Error),
    /// A file read during an upload.
    #[error("failed to read `{}` to upload it", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `bytes` as people read a limit: `1 GiB`, `4 MiB`, else in bytes.
pub(crate) fn human(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// When docker's credentials could not be read, why (the request went out anonymously):
/// the error says so, so a broken `config.json` is not mistaken for a wrong password.
fn unread(source: &CredentialSource) -> String {
    match source {
        CredentialSource::Unreadable(e) => format!(" ({e}; tried anonymously)"),
        _ => String::new(),
    }
}
