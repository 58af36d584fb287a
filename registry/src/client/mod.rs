//! A small OCI distribution client for Wasm artifacts, on `ureq`: blobs stream from and
//! to disk (never whole in memory) and are hashed once while they move; manifests are
//! checked against their digest; Basic and Bearer (token service) auth; plain HTTP only
//! for loopback registries or when asked.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use wasmoci_spec::{Descriptor, Digest, HashingReader, ImageManifest, media_types};

use crate::auth::{Credential, CredentialSource, Secret, credential_for};
use crate::layout::{Layout, StoredArtifact};
use crate::reference::Reference;

/// Largest manifest we accept (the distribution spec's own limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;

/// Accept header for manifests: OCI first; docker v2 and indexes so we can name them.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json;q=0.5, application/vnd.docker.distribution.manifest.v2+json;q=0.4, application/vnd.docker.distribution.manifest.list.v2+json;q=0.3";

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
    #[error("access to `{reference}` denied with {source_of}")]
    Denied {
        /// What we asked for.
        reference: String,
        /// Where the credentials came from.
        source_of: CredentialSource,
    },
    /// The registry wants credentials we do not have or it does not accept.
    #[error("unauthorized for `{reference}` with {source_of}: {detail}")]
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
    /// TLS failed.
    #[error(
        "failed to set up TLS with `{registry}`: {reason} (for a registry without TLS, pass `--plain-http`)"
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

/// How to talk to registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Plain HTTP for every registry (loopback registries use it anyway).
    pub plain_http: bool,
    /// Credentials from the command line (user name, password).
    pub credential: Option<(String, Secret)>,
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
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            credential: None,
            insecure: false,
            ca_file: None,
            stall_timeout: Duration::from_secs(60),
            chunk_size: 512 << 20,
            retries: 4,
            retry_budget: Duration::from_secs(30),
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

/// Remembers the first read error of a download, so a broken or stalled transfer is
/// reported as the network failure it is, not as a failure to write the file.
struct ReadFailure<'a, R> {
    inner: R,
    error: &'a std::cell::RefCell<Option<String>>,
}

impl<R: Read> Read for ReadFailure<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.error.borrow_mut().get_or_insert_with(|| e.to_string());
        })
    }
}

/// A registry client.
pub struct Client {
    agent: ureq::Agent,
    options: ClientOptions,
    /// `Authorization` header values by `registry|repository`.
    authorizations: Mutex<HashMap<String, String>>,
    progress: std::sync::Arc<dyn Progress>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
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
}

type Response = ureq::http::Response<ureq::Body>;

enum BlobOutcome {
    Skipped,
    Mounted,
    Uploaded,
}

impl Client {
    /// A client.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        let mut tls = ureq::tls::TlsConfig::builder().disable_verification(options.insecure);
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path).map_err(|source| RegistryError::Read {
                path: path.clone(),
                source,
            })?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect::<Vec<_>>();
            if certs.is_empty() {
                return Err(RegistryError::Tls {
                    registry: path.display().to_string(),
                    reason: "the CA file holds no PEM certificate".into(),
                });
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(options.stall_timeout))
            .timeout_per_write(Some(options.stall_timeout))
            .max_redirects(5)
            .tls_config(tls.build())
            .user_agent(concat!("wasmoci/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent: config.into(),
            options,
            authorizations: Mutex::new(HashMap::new()),
            progress: std::sync::Arc::new(NoProgress),
        })
    }

    /// Reports blob transfers to `progress`.
    pub fn with_progress(mut self, progress: std::sync::Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Sends an idempotent request, retrying 5xx, 429 and broken connections with
    /// backoff within the retry budget.
    fn send_idempotent(
        &self,
        r: &Reference,
        actions: &str,
        attempt: &mut dyn FnMut(Option<&str>) -> Result<Response, ureq::Error>,
    ) -> Result<Response, RegistryError> {
        let mut waited = Duration::ZERO;
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            let result = self.send(r, actions, attempt);
            let retry_after = match &result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status != 429 && !(500..600).contains(&status) {
                        return result;
                    }
                    header(response, "retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs)
                }
                Err(RegistryError::Unreachable { .. }) => None,
                Err(_) => return result,
            };
            let wait = retry_after.unwrap_or(delay);
            if tries >= self.options.retries || waited + wait > self.options.retry_budget {
                return result;
            }
            std::thread::sleep(wait);
            waited += wait;
            delay *= 2;
            tries += 1;
        }
    }

    fn base(&self, r: &Reference) -> String {
        // Loopback registries talk plain HTTP, unless TLS was asked for with a CA file or
        // `--insecure`.
        let tls_asked = self.options.insecure || self.options.ca_file.is_some();
        let scheme = if self.options.plain_http || (r.is_loopback() && !tls_asked) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}", r.registry, r.repository)
    }

    fn credential(&self, r: &Reference) -> (Credential, CredentialSource) {
        credential_for(&r.registry, self.options.credential.clone())
    }

    /// Sends `attempt` with the cached authorization, and once more with a fresh one
    /// after a 401 challenge.
    fn send(
        &self,
        r: &Reference,
        actions: &str,
        attempt: &mut dyn FnMut(Option<&str>) -> Result<Response, ureq::Error>,
    ) -> Result<Response, RegistryError> {
        let key = format!("{}|{}|{actions}", r.registry, r.repository);
        let cached = self
            .authorizations
            .lock()
            .expect("not poisoned")
            .get(&key)
            .cloned();
        let response = attempt(cached.as_deref()).map_err(|e| self.transport(r, e))?;
        if response.status() != 401 {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (credential, source) = self.credential(r);
        let header = self.authorize(r, actions, &challenge, &credential, &source)?;
        let response = attempt(Some(&header)).map_err(|e| self.transport(r, e))?;
        if response.status() == 401 {
            return Err(RegistryError::Unauthorized {
                reference: r.to_string(),
                source_of: source,
                detail: "the registry refused the credentials".into(),
            });
        }
        self.authorizations
            .lock()
            .expect("not poisoned")
            .insert(key, header);
        Ok(response)
    }

    fn authorize(
        &self,
        r: &Reference,
        actions: &str,
        challenge: &str,
        credential: &Credential,
        source: &CredentialSource,
    ) -> Result<String, RegistryError> {
        let unauthorized = |detail: &str| RegistryError::Unauthorized {
            reference: r.to_string(),
            source_of: source.clone(),
            detail: detail.to_owned(),
        };
        let basic = match credential {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            _ => None,
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.is_empty() {
            return Err(unauthorized(
                "the registry answered 401 without a challenge",
            ));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            return basic
                .ok_or_else(|| unauthorized("the registry asks for a user name and password"));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized(&format!(
                "unsupported challenge `{challenge}`"
            )));
        }
        let params = parse_challenge(params);
        let realm = params
            .get("realm")
            .ok_or_else(|| unauthorized("the Bearer challenge has no realm"))?;
        let mut url = format!("{realm}?scope=repository:{}:{actions}", r.repository);
        if let Some(service) = params.get("service") {
            url.push_str(&format!("&service={service}"));
        }
        let mut response = if let Credential::IdentityToken(token) = credential {
            // Docker's identity token is an OAuth2 refresh token: POST it in a form body
            // (never in a URL, where servers and proxies log it).
            let scope = format!("repository:{}:{actions}", r.repository);
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("client_id", "wasmoci"),
                ("refresh_token", token.expose()),
                ("scope", scope.as_str()),
            ];
            if let Some(service) = params.get("service") {
                form.push(("service", service.as_str()));
            }
            self.agent
                .post(realm.as_str())
                .send_form(form)
                .map_err(|e| self.transport(r, e))?
        } else {
            let mut request = self.agent.get(&url);
            if let Some(basic) = &basic {
                request = request.header("Authorization", basic);
            }
            request.call().map_err(|e| self.transport(r, e))?
        };
        if !response.status().is_success() {
            return Err(unauthorized(&format!(
                "the token service at `{realm}` answered {}",
                response.status().as_u16()
            )));
        }
        let body: serde_json::Value = serde_json::from_reader(response.body_mut().as_reader())
            .map_err(|e| {
                unauthorized(&format!(
                    "the token service answered something that is not JSON: {e}"
                ))
            })?;
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .ok_or_else(|| unauthorized("the token service answered no token"))?;
        Ok(format!("Bearer {token}"))
    }

    fn transport(&self, r: &Reference, e: ureq::Error) -> RegistryError {
        let reason = e.to_string();
        let lower = reason.to_ascii_lowercase();
        let tls = ["certificate", "tls", "handshake"]
            .iter()
            .any(|word| lower.contains(word));
        if tls || matches!(e, ureq::Error::Tls(_) | ureq::Error::Rustls(_)) {
            RegistryError::Tls {
                registry: r.registry.clone(),
                reason,
            }
        } else {
            RegistryError::Unreachable {
                registry: r.registry.clone(),
                reason,
            }
        }
    }

    fn status_error(
        &self,
        r: &Reference,
        action: &'static str,
        mut response: Response,
    ) -> RegistryError {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let e = v["errors"].get(0)?.clone();
                Some(format!(
                    "{} ({})",
                    e["message"].as_str().unwrap_or_default(),
                    e["code"].as_str().unwrap_or_default()
                ))
            })
            .unwrap_or_default();
        match status {
            404 => RegistryError::NotFound {
                reference: r.to_string(),
                what: if detail.is_empty() {
                    action.to_owned()
                } else {
                    detail
                },
            },
            403 => RegistryError::Denied {
                reference: r.to_string(),
                source_of: self.credential(r).1,
            },
            429 => RegistryError::RateLimited {
                registry: r.registry.clone(),
                retry_after,
            },
            _ => RegistryError::Status {
                action,
                reference: r.to_string(),
                status,
                detail,
            },
        }
    }

    /// Fetches a manifest: its bytes, checked against the named digest (or the
    /// `Docker-Content-Digest` the registry sends), and its digest.
    pub fn manifest(&self, r: &Reference) -> Result<(Vec<u8>, Digest, String), RegistryError> {
        let url = format!("{}/manifests/{}", self.base(r), r.target());
        let response = self.send_idempotent(r, "pull", &mut |auth| {
            let mut req = self.agent.get(&url).header("Accept", MANIFEST_ACCEPT);
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            req.call()
        })?;
        if !response.status().is_success() {
            return Err(self.status_error(r, "read the manifest of", response));
        }
        let content_type = header(&response, "content-type").unwrap_or_default();
        let announced =
            header(&response, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        let mut response = response;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| self.transport(r, e))?;
        let actual = Digest::of(&bytes);
        if let Some(expected) = r.digest.or(announced)
            && expected != actual
        {
            return Err(RegistryError::DigestMismatch {
                reference: r.to_string(),
                expected,
                actual,
            });
        }
        Ok((bytes, actual, content_type))
    }

    /// Every tag of `r`'s repository, following `Link` pagination to the end.
    pub fn tags(&self, r: &Reference) -> Result<Vec<String>, RegistryError> {
        let origin = self.origin(r);
        // 100 per page: what most registries cap a page at anyway.
        let mut url = format!("{}/tags/list?n=100", self.base(r));
        let mut tags = Vec::new();
        // Bounded: a registry that links back to a page it already gave is cut off.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            if !seen.insert(url.clone()) {
                return Err(RegistryError::Status {
                    action: "list the tags of",
                    reference: r.to_string(),
                    status: 200,
                    detail: format!("the pages loop back to `{url}`"),
                });
            }
            let mut response = self.send_idempotent(r, "pull", &mut |auth| {
                let mut req = self.agent.get(&url);
                if let Some(auth) = self.auth_for(r, &url, auth) {
                    req = req.header("Authorization", auth);
                }
                req.call()
            })?;
            if !response.status().is_success() {
                return Err(self.status_error(r, "list the tags of", response));
            }
            let next = header(&response, "link").and_then(|l| next_link(&l));
            let bytes = response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_vec()
                .map_err(|e| self.transport(r, e))?;
            let body: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Status {
                    action: "list the tags of",
                    reference: r.to_string(),
                    status: 200,
                    detail: format!("the answer is not JSON: {e}"),
                })?;
            tags.extend(
                body["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_owned)),
            );
            match next {
                Some(next) if next.starts_with("http") => url = next,
                Some(next) => url = format!("{origin}{next}"),
                None => return Ok(tags),
            }
        }
        Ok(tags)
    }

    /// Stores manifest bytes under `r`'s tag (or digest); returns the digest.
    pub fn put_manifest(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let url = format!("{}/manifests/{}", self.base(r), r.target());
        let response = self.send(r, "pull,push", &mut |auth| {
            let mut req = self.agent.put(&url).header("Content-Type", media_type);
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            req.send(bytes)
        })?;
        if !response.status().is_success() {
            return Err(self.status_error(r, "push the manifest to", response));
        }
        Ok(Digest::of(bytes))
    }

    /// A small blob (a config), whole, checked against its digest.
    pub fn blob(&self, r: &Reference, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.base(r));
        let mut response = self.send_idempotent(r, "pull", &mut |auth| {
            let mut req = self.agent.get(&url);
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            req.call()
        })?;
        if !response.status().is_success() {
            return Err(self.status_error(r, "read a blob of", response));
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| self.transport(r, e))?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                reference: r.to_string(),
                expected: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Checks that the registry accepts our credentials (`GET /v2/`).
    pub fn check_login(&self, r: &Reference) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.origin(r));
        let response = self.send(r, "pull", &mut |auth| {
            let mut req = self.agent.get(&url);
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            req.call()
        })?;
        if !response.status().is_success() {
            return Err(self.status_error(r, "log in to", response));
        }
        Ok(())
    }

    /// The `Authorization` to send to `url`: none when the registry points us at another
    /// host (an upload `Location` or a tag page `Link`), so credentials never leave it.
    fn auth_for<'a>(&self, r: &Reference, url: &str, auth: Option<&'a str>) -> Option<&'a str> {
        let origin = self.origin(r);
        let same = url
            .strip_prefix(&origin)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if same { auth } else { None }
    }

    /// `scheme://host[:port]`.
    fn origin(&self, r: &Reference) -> String {
        self.base(r)
            .split("/v2/")
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    fn blob_exists(
        &self,
        r: &Reference,
        digest: &Digest,
        actions: &str,
    ) -> Result<bool, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.base(r));
        let response = self.send_idempotent(r, actions, &mut |auth| {
            let mut req = self.agent.head(&url);
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            req.call()
        })?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error(r, "check blob", response)),
        }
    }

    /// Pushes a stored artifact: each blob the registry lacks (streamed from the layout
    /// and hashed on the way), then the manifest, tagged with `dest`'s tag.
    pub fn push(
        &self,
        layout: &Layout,
        stored: &StoredArtifact,
        dest: &Reference,
    ) -> Result<PushReport, RegistryError> {
        self.push_from(layout, stored, dest, None)
    }

    /// [`Client::push`], mounting blobs from `source` (another repository of the same
    /// registry) instead of uploading them when the registry allows it.
    pub fn push_from(
        &self,
        layout: &Layout,
        stored: &StoredArtifact,
        dest: &Reference,
        source: Option<&Reference>,
    ) -> Result<PushReport, RegistryError> {
        let source =
            source.filter(|s| s.registry == dest.registry && s.repository != dest.repository);
        let manifest = stored.manifest()?;
        let mut report = PushReport::default();
        let mut blobs = vec![manifest.config.clone()];
        blobs.extend(manifest.layers.iter().cloned());
        // Config and layers go up at the same time; the manifest only after all of them.
        let outcomes: Vec<Result<(BlobOutcome, &Descriptor), RegistryError>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = blobs
                    .iter()
                    .map(|blob| {
                        scope.spawn(move || {
                            self.push_blob(layout, dest, source, blob)
                                .map(|o| (o, blob))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("an upload thread panicked"))
                    .collect()
            });
        for outcome in outcomes {
            let (outcome, blob) = outcome?;
            let entry = (blob.digest, blob.size);
            match outcome {
                BlobOutcome::Skipped => report.skipped.push(entry),
                BlobOutcome::Mounted => report.mounted.push(entry),
                BlobOutcome::Uploaded => report.uploaded.push(entry),
            }
        }
        let target = dest
            .tag
            .clone()
            .unwrap_or_else(|| stored.descriptor.digest.to_string());
        let url = format!("{}/manifests/{target}", self.base(dest));
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| media_types::OCI_MANIFEST.to_owned());
        let response = self.send(dest, "pull,push", &mut |auth| {
            let mut req = self.agent.put(&url).header("Content-Type", &media_type);
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            req.send(&stored.manifest_bytes[..])
        })?;
        if !response.status().is_success() {
            return Err(self.status_error(dest, "push the manifest to", response));
        }
        let stored_digest = header(&response, "docker-content-digest").and_then(|d| d.parse().ok());
        if let Some(d) = stored_digest
            && d != stored.descriptor.digest
        {
            return Err(RegistryError::DigestMismatch {
                reference: dest.to_string(),
                expected: stored.descriptor.digest,
                actual: d,
            });
        }
        report.digest = Some(stored.descriptor.digest);
        Ok(report)
    }

    fn push_blob(
        &self,
        layout: &Layout,
        dest: &Reference,
        source: Option<&Reference>,
        blob: &Descriptor,
    ) -> Result<BlobOutcome, RegistryError> {
        if self.blob_exists(dest, &blob.digest, "pull,push")? {
            return Ok(BlobOutcome::Skipped);
        }
        if let Some(source) = source
            && self.mount(dest, source, &blob.digest)?
        {
            return Ok(BlobOutcome::Mounted);
        }
        self.progress.start(&blob.digest, blob.size, "push");
        let result = self.upload(layout, dest, blob);
        self.progress.finish(&blob.digest);
        result?;
        Ok(BlobOutcome::Uploaded)
    }

    /// Asks the registry to mount a blob from `source`; `false` when it would rather
    /// have an upload.
    fn mount(
        &self,
        dest: &Reference,
        source: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let url = format!(
            "{}/blobs/uploads/?mount={digest}&from={}",
            self.base(dest),
            source.repository
        );
        let actions = format!("pull,push&scope=repository:{}:pull", source.repository);
        let response = self.send(dest, &actions, &mut |auth| {
            let mut req = self.agent.post(&url).header("Content-Length", "0");
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            req.send_empty()
        })?;
        Ok(response.status().as_u16() == 201)
    }

    fn upload(
        &self,
        layout: &Layout,
        dest: &Reference,
        blob: &Descriptor,
    ) -> Result<(), RegistryError> {
        let start = format!("{}/blobs/uploads/", self.base(dest));
        let response = self.send(dest, "pull,push", &mut |auth| {
            let mut req = self.agent.post(&start).header("Content-Length", "0");
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            req.send_empty()
        })?;
        if response.status().as_u16() != 202 {
            return Err(self.status_error(dest, "start an upload to", response));
        }
        let location = header(&response, "location").ok_or_else(|| RegistryError::Status {
            action: "start an upload to",
            reference: dest.to_string(),
            status: 202,
            detail: "no `Location` header".into(),
        })?;
        let mut url = if location.starts_with("http://") || location.starts_with("https://") {
            location
        } else {
            format!("{}{location}", self.origin(dest))
        };
        let path = layout.blob_path(&blob.digest);
        if blob.size > self.options.chunk_size {
            return self.upload_chunked(dest, blob, &path, url);
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", blob.digest));
        let mut hashed = None;
        let response = self.send(dest, "pull,push", &mut |auth| {
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) => return Err(ureq::Error::Io(e)),
            };
            let mut reader = HashingReader::new(Counted {
                inner: file,
                digest: blob.digest,
                progress: &*self.progress,
            });
            let mut req = self
                .agent
                .put(&url)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", &blob.size.to_string());
            if let Some(auth) = self.auth_for(dest, &url, auth) {
                req = req.header("Authorization", auth);
            }
            let result = req.send(ureq::SendBody::from_reader(&mut reader));
            hashed = Some(reader.finish());
            result
        })?;
        if let Some((actual, _)) = hashed
            && actual != blob.digest
        {
            return Err(RegistryError::DigestMismatch {
                reference: dest.to_string(),
                expected: blob.digest,
                actual,
            });
        }
        if response.status().as_u16() != 201 {
            return Err(self.status_error(dest, "upload a blob to", response));
        }
        Ok(())
    }

    /// A large blob: `PATCH` chunks of `chunk_size`, each streamed from the file at its
    /// offset, then the closing `PUT` with the digest, which the registry checks.
    fn upload_chunked(
        &self,
        dest: &Reference,
        blob: &Descriptor,
        path: &std::path::Path,
        mut url: String,
    ) -> Result<(), RegistryError> {
        use std::io::{Seek, SeekFrom};
        let mut offset = 0u64;
        while offset < blob.size {
            let len = self.options.chunk_size.min(blob.size - offset);
            let response = self.send(dest, "pull,push", &mut |auth| {
                let mut file = std::fs::File::open(path).map_err(ureq::Error::Io)?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(ureq::Error::Io)?;
                let mut chunk = Counted {
                    inner: file.take(len),
                    digest: blob.digest,
                    progress: &*self.progress,
                };
                let mut req = self
                    .agent
                    .patch(&url)
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Length", &len.to_string())
                    .header("Content-Range", &format!("{offset}-{}", offset + len - 1));
                if let Some(auth) = self.auth_for(dest, &url, auth) {
                    req = req.header("Authorization", auth);
                }
                req.send(ureq::SendBody::from_reader(&mut chunk))
            })?;
            if response.status().as_u16() != 202 {
                return Err(self.status_error(dest, "upload a chunk to", response));
            }
            if let Some(location) = header(&response, "location") {
                url = if location.starts_with("http://") || location.starts_with("https://") {
                    location
                } else {
                    format!("{}{location}", self.origin(dest))
                };
            }
            offset += len;
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", blob.digest));
        let response = self.send(dest, "pull,push", &mut |auth| {
            let mut req = self.agent.put(&url).header("Content-Length", "0");
            if let Some(auth) = self.auth_for(dest, &url, auth) {
                req = req.header("Authorization", auth);
            }
            req.send_empty()
        })?;
        if response.status().as_u16() != 201 {
            return Err(self.status_error(dest, "finish the upload to", response));
        }
        Ok(())
    }

    /// Pulls `src` into `layout`, tagged `tag`: the manifest (checked), then each blob the
    /// layout lacks, streamed to a temporary file while hashed and kept only when its
    /// digest and size match.
    pub fn pull(
        &self,
        src: &Reference,
        layout: &Layout,
        tag: Option<&str>,
    ) -> Result<PullReport, RegistryError> {
        let (bytes, digest, content_type) = self.manifest(src)?;
        layout.create()?;
        let manifest =
            ImageManifest::from_json(&bytes).map_err(|e| RegistryError::Unsupported {
                reference: src.to_string(),
                reason: format!("{e} (content type `{content_type}`)"),
            })?;
        let media_type = manifest.media_type.clone().unwrap_or(content_type);
        if media_type != media_types::OCI_MANIFEST {
            return Err(RegistryError::Unsupported {
                reference: src.to_string(),
                reason: format!("the manifest is `{media_type}`, not an OCI image manifest"),
            });
        }
        if manifest.wasm_layers().count() == 0 {
            let found: Vec<String> = manifest
                .layers
                .iter()
                .map(|l| format!("`{}`", l.media_type))
                .collect();
            return Err(RegistryError::Unsupported {
                reference: src.to_string(),
                reason: format!(
                    "no wasm layer (config `{}`, layers {})",
                    manifest.config.media_type,
                    if found.is_empty() {
                        "none".into()
                    } else {
                        found.join(", ")
                    }
                ),
            });
        }
        let mut report = PullReport {
            manifest: Descriptor::for_bytes(media_types::OCI_MANIFEST, &bytes),
            downloaded: Vec::new(),
            reused: Vec::new(),
        };
        let mut blobs = vec![manifest.config.clone()];
        blobs.extend(manifest.layers.iter().cloned());
        for blob in &blobs {
            if layout.blob_path(&blob.digest).is_file() {
                report.reused.push((blob.digest, blob.size));
                continue;
            }
            let url = format!("{}/blobs/{}", self.base(src), blob.digest);
            let response = self.send_idempotent(src, "pull", &mut |auth| {
                let mut req = self.agent.get(&url);
                if let Some(auth) = auth {
                    req = req.header("Authorization", auth);
                }
                req.call()
            })?;
            if !response.status().is_success() {
                return Err(self.status_error(src, "download a blob of", response));
            }
            let read_error = std::cell::RefCell::new(None);
            let reader = ReadFailure {
                inner: Counted {
                    inner: response.into_body().into_reader().take(blob.size + 1),
                    digest: blob.digest,
                    progress: &*self.progress,
                },
                error: &read_error,
            };
            self.progress.start(&blob.digest, blob.size, "pull");
            let stored = layout.put_blob_from(reader, Some(blob));
            self.progress.finish(&blob.digest);
            if stored.is_err()
                && let Some(reason) = read_error.into_inner()
            {
                return Err(RegistryError::Unreachable {
                    registry: src.registry.clone(),
                    reason: format!("the download of blob `{}` broke off: {reason}", blob.digest),
                });
            }
            match stored {
                Ok(_) => report.downloaded.push((blob.digest, blob.size)),
                Err(crate::Error::ContentMismatch {
                    expected, actual, ..
                }) => {
                    return Err(RegistryError::DigestMismatch {
                        reference: src.to_string(),
                        expected,
                        actual,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        let stored = layout.store(&bytes, &[], tag)?;
        debug_assert_eq!(stored.digest, digest);
        report.manifest = stored;
        Ok(report)
    }
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The target of `<…>; rel="next"` in a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// `realm="…",service="…",scope="…"` into a map.
fn parse_challenge(params: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, r)) => (v.to_owned(), r),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, r)) => (v.trim().to_owned(), r),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.insert(key, value);
        rest = remainder.trim_start_matches(',').trim();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_next_links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=100>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=100")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }

    #[test]
    fn parses_bearer_challenges() {
        let p = parse_challenge(
            r#"realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example.com/token");
        assert_eq!(p["service"], "registry.example.com");
        assert_eq!(p["scope"], "repository:a/b:pull");
    }
}
