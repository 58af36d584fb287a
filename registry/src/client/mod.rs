//! A small OCI distribution client for Wasm artifacts, on `ureq`: blobs stream from and
//! to disk (never whole in memory) and are hashed once while they move; manifests are
//! checked against their digest; Basic and Bearer (token service) auth; plain HTTP only
//! for loopback registries or when asked.
//!
//! `transport.rs` is how a request gets there (TLS, auth, retries); the operations sit
//! on it: `pull.rs` (manifests and blobs into a layout), `push.rs` (blobs and manifests
//! from one), `tags.rs` (tags, login), `referrers.rs` (what points at a manifest), `signatures.rs` (cosign's).

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use wasmoci_spec::{Descriptor, Digest};

use crate::auth::Secret;

mod doctor;
mod error;
mod guard;
mod pull;
mod push;
mod realm;
mod referrers;
mod resume;
mod signatures;
mod tags;
mod transport;

pub use doctor::{Doctor, Outcome, Probe};
pub use error::RegistryError;
pub use guard::AddressFilter;
pub use pull::PullOptions;
pub use referrers::{
    MAX_REFERRERS, Referrers, ReferrersSource, artifact_type, fallback_tag, is_referrer_tag,
    referrer_descriptor,
};
pub use signatures::{SignatureError, Signed, Verified};
#[doc(hidden)]
pub use transport::token_url_for_challenge;

/// The default largest blob a pull downloads: 1 GiB (the shim's largest wasm file too).
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 1 << 30;

/// How to talk to registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Plain HTTP for every registry (loopback registries use it anyway).
    pub plain_http: bool,
    /// Credentials from the command line (user name, password).
    pub credential: Option<(String, Secret)>,
    /// The registry (`host[:port]`) the generic `WASMOCI_REGISTRY_USERNAME`/`_PASSWORD`
    /// go to: the one the command writes to or logs in to. `None` (a pull, a listing, the
    /// shim): to none, so a registry a reference names cannot collect them.
    pub env_credentials_for: Option<String>,
    /// Never send credentials: none from flags, variables or docker's `config.json` (the
    /// shim's direct pulls, unless the node allows the repository).
    pub anonymous: bool,
    /// Connect only to addresses this filter lets through (every request: redirects,
    /// token realms; checked when connecting). `None`: anywhere.
    pub only_addresses: Option<AddressFilter>,
    /// Never plain HTTP, not even to a loopback registry or a redirect's target.
    pub https_only: bool,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// Trust these PEM certificates (instead of Mozilla's roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// Give up on a connection that sends or receives nothing for this long.
    pub stall_timeout: Duration,
    /// Blobs larger than this are uploaded in chunks of this size (`PATCH`); smaller ones
    /// in one streamed `PUT` (512 MiB by default: measured on distribution 2.8, one
    /// request is faster than several, and proxies rarely cap bodies below that).
    pub chunk_size: u64,
    /// How often an idempotent request (`GET`, `HEAD`) is retried after a 5xx, a 429 or a
    /// broken connection, with exponential backoff (`Retry-After` when the registry
    /// sends one).
    pub retries: u32,
    /// The longest total wait between retries.
    pub retry_budget: Duration,
    /// The largest blob a pull downloads (checked against the manifest before a byte
    /// moves, and the download is cut off there too): 1 GiB by default.
    pub max_blob_size: u64,
    /// The most tags a listing keeps (100,000 by default).
    pub max_tags: usize,
    /// The most pages a tag listing follows (10,000 by default).
    pub max_tag_pages: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            credential: None,
            env_credentials_for: None,
            anonymous: false,
            only_addresses: None,
            https_only: false,
            insecure: false,
            ca_file: None,
            stall_timeout: Duration::from_secs(60),
            chunk_size: 512 << 20,
            retries: 4,
            retry_budget: Duration::from_secs(30),
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
            max_tags: 100_000,
            max_tag_pages: 10_000,
        }
    }
}

/// Reports the bytes of each blob as they move; the CLI draws progress bars with it.
pub trait Progress: Send + Sync {
    /// A blob transfer starts.
    fn start(&self, digest: &Digest, size: u64, what: &'static str);
    /// `bytes` more of it moved.
    fn advance(&self, digest: &Digest, bytes: u64);
    /// It is done (or failed).
    fn finish(&self, digest: &Digest);
}

struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &Digest, _: u64, _: &'static str) {}
    fn advance(&self, _: &Digest, _: u64) {}
    fn finish(&self, _: &Digest) {}
}

/// Counts what goes through a reader into a [`Progress`].
struct Counted<'a, R> {
    inner: R,
    digest: Digest,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(&self.digest, n as u64);
        Ok(n)
    }
}

/// A registry client.
pub struct Client {
    transport: transport::Transport,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        Ok(Client {
            transport: transport::Transport::new(options)?,
            progress: Arc::new(NoProgress),
        })
    }

    /// Reports blob transfers to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Gives notes to `notes`, each once: what the client worked around and the user
    /// should know, e.g. "credentials for `ghcr.io` could not be read: `…/config.json`:
    /// …; trying anonymously". The library never prints; a command line prints them on
    /// stderr.
    pub fn with_notes(mut self, notes: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.transport.set_notes(Arc::new(notes));
        self
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// The manifest digest the registry stored.
    pub digest: Option<Digest>,
    /// Blobs uploaded, and their bytes.
    pub uploaded: Vec<(Digest, u64)>,
    /// Blobs the registry already had.
    pub skipped: Vec<(Digest, u64)>,
    /// Blobs mounted from another repository of the registry.
    pub mounted: Vec<(Digest, u64)>,
    /// The registry answered the manifest's `subject` with `OCI-Subject`: it keeps the
    /// referrers itself (the referrers API), so the tag schema need not be updated.
    pub subject_accepted: bool,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The manifest descriptor stored in the layout.
    pub manifest: Descriptor,
    /// Blobs downloaded, and their bytes.
    pub downloaded: Vec<(Digest, u64)>,
    /// Blobs the layout already had.
    pub reused: Vec<(Digest, u64)>,
    /// Layers left at the registry: not wasm, so nothing runs them
    /// ([`PullOptions::all_layers`] fetches them too).
    pub skipped: Vec<(Digest, u64)>,
}
