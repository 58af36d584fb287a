//! How a request reaches a registry: the agent (TLS, timeouts, the stall timeout), plain
//! HTTP for loopback registries, the one request builder that sets `Authorization`, the
//! auth dance (a 401 challenge → Basic, or a Bearer token from the token service, cached
//! per repository and actions), retries with backoff, and what a failed answer means.
//! It knows nothing of manifests, blobs or Wasm.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::http::header::AUTHORIZATION;

pub(super) use ureq::http::Method;

use super::{ClientOptions, RegistryError};
use crate::auth::{
    Credential, CredentialSource, PASSWORD_ENV, USERNAME_ENV, credential_for, generic_env_set,
};
use crate::reference::Reference;

mod authorize;
#[doc(hidden)]
pub use authorize::token_url_for_challenge;

pub(super) type Response = ureq::http::Response<ureq::Body>;

/// Where notes go (`credentials for … could not be read …`); the library never prints.
pub(super) type Notes = Arc<dyn Fn(&str) + Send + Sync>;

/// The connection side of a [`super::Client`].
pub(super) struct Transport {
    agent: ureq::Agent,
    pub(super) options: ClientOptions,
    /// `Authorization` header values by `registry|repository|actions`.
    authorizations: Mutex<HashMap<String, String>>,
    notes: Notes,
    /// The notes already given (a push asks for credentials once per blob thread).
    noted: Mutex<HashSet<String>>,
}

/// One attempt at a request, built by [`Transport::request`] (method, URL and, when it may
/// go there, `Authorization`); the operation adds its headers and its body.
pub(super) struct Request<'t> {
    agent: &'t ureq::Agent,
    builder: ureq::http::request::Builder,
}

impl Request<'_> {
    /// Adds a header.
    pub(super) fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Sends it without a body (`GET`, `HEAD`).
    pub(super) fn call(self) -> Result<Response, ureq::Error> {
        self.agent.run(self.builder.body(())?)
    }

    /// Sends it with `body` (`PUT`, `POST`, `PATCH`).
    pub(super) fn send(self, body: impl ureq::AsSendBody) -> Result<Response, ureq::Error> {
        self.agent.run(self.builder.body(body)?)
    }

    /// Sends it with an empty body.
    pub(super) fn send_empty(self) -> Result<Response, ureq::Error> {
        self.header("Content-Length", "0").send(&[])
    }
}

impl Transport {
    /// An agent for `options`: its TLS roots (`ca_file`) or none checked (`insecure`),
    /// and its timeouts.
    pub(super) fn new(options: ClientOptions) -> Result<Self, RegistryError> {
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
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let config = ureq::Agent::config_builder()
            .https_only(options.https_only)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(options.stall_timeout))
            .timeout_per_write(Some(options.stall_timeout))
            .max_redirects(5)
            .tls_config(tls.build())
            .user_agent(concat!("wasmoci/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = match &options.only_addresses {
            Some(filter) => ureq::Agent::with_parts(
                config,
                ureq::unversioned::transport::DefaultConnector::default(),
                super::guard::Guarded::new(filter.clone()),
            ),
            None => config.into(),
        };
        Ok(Transport {
            agent,
            options,
            authorizations: Mutex::new(HashMap::new()),
            notes: Arc::new(|_| {}),
            noted: Mutex::new(HashSet::new()),
        })
    }

    /// Sends notes to `notes` from now on.
    pub(super) fn set_notes(&mut self, notes: Notes) {
        self.notes = notes;
    }

    /// The one place a request is built: `method` to `url`, carrying `authorization`.
    fn request(&self, method: Method, url: &str, authorization: Option<&str>) -> Request<'_> {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        Request {
            agent: &self.agent,
            builder,
        }
    }

    /// `scheme://host[:port]/v2/repository`.
    pub(super) fn base(&self, r: &Reference) -> String {
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

    /// `scheme://host[:port]`.
    pub(super) fn origin(&self, r: &Reference) -> String {
        self.base(r)
            .split("/v2/")
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// `location` (an upload `Location` or a tag page `Link`) as a whole URL.
    pub(super) fn resolve(&self, r: &Reference, location: String) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location
        } else {
            format!("{}{location}", self.origin(r))
        }
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

    /// The credential for `r`'s registry. When docker's could not be read, a note says
    /// so (once) and the source carries why, for the error that may follow.
    pub(super) fn credential(&self, r: &Reference) -> (Credential, CredentialSource) {
        if self.options.anonymous {
            return (Credential::Anonymous, CredentialSource::Anonymous);
        }
        let generic = self.options.env_credentials_for.as_deref() == Some(&r.registry);
        let (credential, source) =
            credential_for(&r.registry, self.options.credential.clone(), generic);
        if let CredentialSource::Unreadable(e) = &source {
            self.note(&format!("{e}; trying anonymously"));
        }
        if !generic && matches!(source, CredentialSource::Anonymous) && generic_env_set() {
            self.note(&format!(
                "`{USERNAME_ENV}`/`{PASSWORD_ENV}` go only to the registry a command writes to or logs in to; for `{}`, set `WASMOCI_REGISTRY_<HOST>_USERNAME`/`_PASSWORD` (the host in capitals, other characters `_`)",
                r.registry
            ));
        }
        (credential, source)
    }

    fn note(&self, text: &str) {
        let first = self
            .noted
            .lock()
            .expect("not poisoned")
            .insert(text.to_owned());
        if first {
            (self.notes)(text);
        }
    }

    /// Sends an idempotent request, retrying 5xx, 429 and broken connections with
    /// backoff within the retry budget.
    pub(super) fn send_idempotent(
        &self,
        r: &Reference,
        actions: &str,
        method: Method,
        url: &str,
        attempt: &mut dyn FnMut(Request<'_>) -> Result<Response, ureq::Error>,
    ) -> Result<Response, RegistryError> {
        let mut waited = Duration::ZERO;
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            let result = self.send(r, actions, method.clone(), url, attempt);
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

    /// Sends `method` to `url` (`attempt` adds headers and body) with the cached
    /// authorization, and once more with a fresh one after a 401 challenge.
    pub(super) fn send(
        &self,
        r: &Reference,
        actions: &str,
        method: Method,
        url: &str,
        attempt: &mut dyn FnMut(Request<'_>) -> Result<Response, ureq::Error>,
    ) -> Result<Response, RegistryError> {
        let key = format!("{}|{}|{actions}", r.registry, r.repository);
        let cached = self
            .authorizations
            .lock()
            .expect("not poisoned")
            .get(&key)
            .cloned();
        let auth = self.auth_for(r, url, cached.as_deref());
        let response =
            attempt(self.request(method.clone(), url, auth)).map_err(|e| transport_error(r, e))?;
        if response.status() != 401 {
            return Ok(response);
        }
        let challenge = header(&response, "www-authenticate").unwrap_or_default();
        let (credential, source) = self.credential(r);
        let fresh = self.authorize(r, actions, &challenge, &credential, &source)?;
        let auth = self.auth_for(r, url, Some(&fresh));
        let response =
            attempt(self.request(method, url, auth)).map_err(|e| transport_error(r, e))?;
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
            .insert(key, fresh);
        Ok(response)
    }

    /// Whether requests for `r` with `actions` carry an authorization (the registry
    /// challenged, and the credentials were accepted).
    pub(super) fn authorized(&self, r: &Reference, actions: &str) -> bool {
        let key = format!("{}|{}|{actions}", r.registry, r.repository);
        self.authorizations
            .lock()
            .expect("not poisoned")
            .contains_key(&key)
    }

    /// What an unsuccessful answer means: not found, denied, rate-limited, or just its
    /// status and the OCI error message.
    pub(super) fn status_error(
        &self,
        r: &Reference,
        action: &'static str,
        mut response: Response,
    ) -> RegistryError {
        let status = response.status().as_u16();
        let retry_after = header(&response, "retry-after").and_then(|v| v.parse().ok());
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
        if status == 400 && detail.is_empty() && self.speaks_tls(r, &body) {
            return RegistryError::TlsAskedInPlainHttp {
                registry: r.registry.clone(),
                fix: if self.options.plain_http {
                    "drop `--plain-http` and pass `--ca-file FILE` (the CA that signed its certificate) or `--insecure` (no verification)"
                } else {
                    "pass `--ca-file FILE` (the CA that signed its certificate) or `--insecure` (no verification), either of which switches a loopback registry to TLS"
                },
            };
        }
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
}

impl Transport {
    /// Whether a registry that answered a plain-HTTP request with 400 (and `body`, empty
    /// for a `HEAD`) speaks TLS on that port: Go's and nginx's HTTPS servers say so in
    /// the body ("Client sent an HTTP request to an HTTPS server"); a `HEAD` has none,
    /// so `GET /v2/` asks again.
    fn speaks_tls(&self, r: &Reference, body: &str) -> bool {
        let origin = self.origin(r);
        if !origin.starts_with("http://") {
            return false;
        }
        let says = |text: &str| text.to_ascii_lowercase().contains("https");
        if !body.is_empty() {
            return says(body);
        }
        let Ok(mut response) = self.agent.get(format!("{origin}/v2/")).call() else {
            return false;
        };
        response.status() == 400
            && response
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .is_ok_and(|text| says(&text))
    }
}

/// Reads `response`'s body whole, at most `limit` bytes; a longer one is `TooLarge`:
/// `action` on `r` failed because `what` (said with the limit) is larger.
pub(super) fn read_limited(
    r: &Reference,
    response: &mut Response,
    limit: u64,
    action: &'static str,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => RegistryError::TooLarge {
                action,
                reference: r.to_string(),
                what: format!("{what} is larger than {}", super::error::human(limit)),
            },
            e => transport_error(r, e),
        })
}

/// A connection that failed: TLS, or no answer at all.
pub(super) fn transport_error(r: &Reference, e: ureq::Error) -> RegistryError {
    let reason = e.to_string();
    let lower = reason.to_ascii_lowercase();
    // rustls reading a plain-HTTP answer where a TLS record should be.
    if lower.contains("invalidcontenttype") {
        return RegistryError::PlainHttpAskedInTls {
            registry: r.registry.clone(),
            reason,
        };
    }
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

/// A response header, as text.
pub(super) fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
