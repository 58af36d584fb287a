//! `wasmoci doctor`: what a registry can do for wasmoci, found by doing it in a throwaway
//! repository (and undoing it where the registry lets us): the API, its auth scheme,
//! monolithic and chunked uploads, cross-repository mounts, a Wasm artifact's config
//! media type, OCI 1.1 `artifactType` and `subject`, the referrers API (or the tag
//! schema), tag-list pagination and manifest deletion.

use wasmoci_spec::{Blob, Descriptor, Digest, ImageIndex, media_types};

use super::referrers::fallback_tag;
use super::tags::next_link;
use super::transport::{Method, Response, header};
use super::{Client, RegistryError};
use crate::reference::Reference;

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The registry can.
    Yes,
    /// It cannot.
    No,
    /// Not tried (an earlier probe it needs failed).
    Skipped,
}

impl Outcome {
    /// `yes`, `no`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Yes => "yes",
            Outcome::No => "no",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// `api`, `auth`, `monolithic-upload`, …
    pub name: &'static str,
    /// What it found.
    pub outcome: Outcome,
    /// What exactly (the scheme and realm, the status the registry answered, …).
    pub detail: String,
    /// Whether wasmoci needs it (else it copes without: chunked uploads, mounts, …).
    pub needed: bool,
}

/// What `doctor` found.
#[derive(Debug, Clone)]
pub struct Doctor {
    /// The throwaway repository used (`HOST/REPO/wasmoci-doctor-…`).
    pub repository: String,
    /// Each probe, in order.
    pub probes: Vec<Probe>,
    /// What could not be removed afterwards (the registry does not delete).
    pub left: Vec<String>,
}

impl Doctor {
    /// The probes wasmoci needs that failed.
    pub fn missing(&self) -> impl Iterator<Item = &Probe> {
        self.probes
            .iter()
            .filter(|p| p.needed && p.outcome != Outcome::Yes)
    }
}

/// The probes' record, and what was pushed (to remove at the end).
struct Run<'c> {
    client: &'c Client,
    at: Reference,
    probes: Vec<Probe>,
    manifests: Vec<Digest>,
    blobs: Vec<Digest>,
}

fn status_of(result: &Result<Response, RegistryError>) -> String {
    match result {
        Ok(r) => format!("the registry answered {}", r.status().as_u16()),
        Err(e) => e.to_string(),
    }
}

/// Why a request failed: the status and the registry's own message, when it sent one.
fn why(client: &Client, at: &Reference, result: Result<Response, RegistryError>) -> String {
    match result {
        Ok(r) => match client.transport.status_error(at, "probe", r) {
            RegistryError::Status { status, detail, .. } if !detail.is_empty() => {
                format!("the registry answered {status}: {detail}")
            }
            RegistryError::Status { status, .. } => format!("the registry answered {status}"),
            other => other.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

fn code(result: &Result<Response, RegistryError>) -> u16 {
    result.as_ref().map_or(0, |r| r.status().as_u16())
}

impl Run<'_> {
    fn record(&mut self, name: &'static str, needed: bool, outcome: Outcome, detail: String) {
        self.probes.push(Probe {
            name,
            outcome,
            detail,
            needed,
        });
    }

    fn passed(&self, name: &str) -> bool {
        self.probes
            .iter()
            .any(|p| p.name == name && p.outcome == Outcome::Yes)
    }

    fn base(&self, at: &Reference) -> String {
        self.client.transport.base(at)
    }

    /// Starts an upload; its `Location`.
    fn start_upload(&self, at: &Reference) -> Result<String, String> {
        let url = format!("{}/blobs/uploads/", self.base(at));
        let response =
            self.client
                .transport
                .send(at, "pull,push", Method::POST, &url, &mut |req| {
                    req.send_empty()
                });
        match response {
            Ok(r) if r.status().as_u16() == 202 => header(&r, "location")
                .map(|l| self.client.transport.resolve(at, l))
                .ok_or_else(|| "no `Location` for the upload".to_owned()),
            other => Err(why(self.client, at, other)),
        }
    }

    fn with_digest(url: &str, digest: &Digest) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}digest={digest}")
    }

    /// One `PUT` of the whole blob.
    fn upload_monolithic(&mut self, at: &Reference, bytes: &[u8]) -> Result<Digest, String> {
        let digest = Digest::of(bytes);
        let location = self.start_upload(at)?;
        let url = Self::with_digest(&location, &digest);
        let response = self
            .client
            .transport
            .send(at, "pull,push", Method::PUT, &url, &mut |req| {
                req.header("Content-Type", "application/octet-stream")
                    .send(bytes)
            });
        if code(&response) != 201 {
            return Err(why(self.client, at, response));
        }
        self.blobs.push(digest);
        Ok(digest)
    }

    /// `PATCH` chunks, then the closing `PUT`.
    fn upload_chunked(&mut self, at: &Reference, bytes: &[u8]) -> Result<Digest, String> {
        let digest = Digest::of(bytes);
        let mut url = self.start_upload(at)?;
        let half = bytes.len() / 2;
        for (offset, chunk) in [(0, &bytes[..half]), (half, &bytes[half..])] {
            let range = format!("{offset}-{}", offset + chunk.len() - 1);
            let response =
                self.client
                    .transport
                    .send(at, "pull,push", Method::PATCH, &url, &mut |req| {
                        req.header("Content-Type", "application/octet-stream")
                            .header("Content-Range", &range)
                            .send(chunk)
                    });
            match response {
                Ok(r) if r.status().as_u16() == 202 => {
                    if let Some(location) = header(&r, "location") {
                        url = self.client.transport.resolve(at, location);
                    }
                }
                other => return Err(why(self.client, at, other)),
            }
        }
        let response = self.client.transport.send(
            at,
            "pull,push",
            Method::PUT,
            &Self::with_digest(&url, &digest),
            &mut |req| req.send_empty(),
        );
        if code(&response) != 201 {
            return Err(why(self.client, at, response));
        }
        self.blobs.push(digest);
        Ok(digest)
    }

    /// `PUT` a manifest under `target` (a tag or its digest); the response.
    fn put_manifest(
        &mut self,
        at: &Reference,
        target: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Response, RegistryError> {
        let url = format!("{}/manifests/{target}", self.base(at));
        let response = self
            .client
            .transport
            .send(at, "pull,push", Method::PUT, &url, &mut |req| {
                req.header("Content-Type", media_type).send(bytes)
            });
        if code(&response) == 201 {
            self.manifests.push(Digest::of(bytes));
        }
        response
    }
}

/// A name no one else uses: the time and this process, hashed.
fn throwaway() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!("{now}-{}", std::process::id());
    Digest::of(seed.as_bytes()).to_string()[7..19].to_owned()
}

impl Client {
    /// Probes `at`'s registry in a throwaway repository below `at`'s repository (or
    /// `wasmoci-doctor/` when it names none): each probe is recorded, none is an error;
    /// what was pushed is deleted again where the registry allows it. Errors only when the
    /// registry cannot be reached at all.
    pub fn doctor(&self, at: &Reference) -> Result<Doctor, RegistryError> {
        let repository = if at.repository.is_empty() {
            format!("wasmoci-doctor/{}", throwaway())
        } else {
            format!("{}/wasmoci-doctor-{}", at.repository, throwaway())
        };
        let repo = Reference {
            registry: at.registry.clone(),
            repository,
            tag: None,
            digest: None,
        };
        let mut run = Run {
            client: self,
            at: repo.clone(),
            probes: Vec::new(),
            manifests: Vec::new(),
            blobs: Vec::new(),
        };
        probe_api(&mut run)?;
        if run.passed("auth") {
            probe_uploads(&mut run);
            probe_artifacts(&mut run);
        }
        let left = clean_up(&mut run);
        Ok(Doctor {
            repository: repo.repository_path(),
            probes: run.probes,
            left,
        })
    }
}

/// `GET /v2/`: the API, and how the registry asks for credentials.
fn probe_api(run: &mut Run<'_>) -> Result<(), RegistryError> {
    let url = format!("{}/v2/", run.client.transport.origin(&run.at));
    let mut first: Option<(u16, Option<String>)> = None;
    let response = run
        .client
        .transport
        .send(&run.at, "pull,push", Method::GET, &url, &mut |req| {
            let response = req.call()?;
            if first.is_none() {
                first = Some((
                    response.status().as_u16(),
                    header(&response, "www-authenticate"),
                ));
            }
            Ok(response)
        });
    let response = match response {
        Err(e @ (RegistryError::Unreachable { .. } | RegistryError::Tls { .. })) => return Err(e),
        other => other,
    };
    let version = response
        .as_ref()
        .ok()
        .and_then(|r| header(r, "docker-distribution-api-version"));
    let api_ok = matches!(&response, Ok(r) if r.status().is_success())
        || matches!(&response, Err(RegistryError::Unauthorized { .. }));
    run.record(
        "api",
        true,
        if api_ok { Outcome::Yes } else { Outcome::No },
        match &version {
            Some(v) => format!("`{v}`"),
            None if api_ok => "no `Docker-Distribution-API-Version` header".into(),
            None => status_of(&response),
        },
    );
    let scheme = match &first {
        Some((401, Some(challenge))) => {
            let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
            let realm = params
                .split(',')
                .find_map(|p| p.trim().strip_prefix("realm="))
                .map(|r| r.trim_matches('"').to_owned())
                .unwrap_or_default();
            format!("{scheme} (realm `{realm}`)")
        }
        Some((401, None)) => "401 without a `WWW-Authenticate` challenge".into(),
        _ => "anonymous".into(),
    };
    match &response {
        Ok(r) if r.status().is_success() => run.record("auth", true, Outcome::Yes, scheme),
        _ => {
            let why = status_of(&response);
            run.record("auth", true, Outcome::No, format!("{scheme}: {why}"));
        }
    }
    Ok(())
}

/// A blob of `len` bytes unique to this run.
fn unique_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = Digest::of(seed.as_bytes()).to_string().into_bytes();
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Digest::of(&block).to_string().into_bytes();
    }
    out.truncate(len);
    out
}

fn probe_uploads(run: &mut Run<'_>) {
    let at = run.at.clone();
    let one = unique_bytes(&format!("{}-one", at.repository), 4096);
    match run.upload_monolithic(&at, &one) {
        Ok(_) => run.record("monolithic-upload", true, Outcome::Yes, "one `PUT`".into()),
        Err(why) => run.record("monolithic-upload", true, Outcome::No, why),
    }
    let two = unique_bytes(&format!("{}-two", at.repository), 4096);
    match run.upload_chunked(&at, &two) {
        Ok(_) => run.record(
            "chunked-upload",
            false,
            Outcome::Yes,
            "`PATCH` ×2, `PUT`".into(),
        ),
        Err(why) => run.record("chunked-upload", false, Outcome::No, why),
    }
    // Mount the first into a sibling repository.
    if !run.passed("monolithic-upload") {
        run.record(
            "cross-repo-mount",
            false,
            Outcome::Skipped,
            "no blob to mount".into(),
        );
        return;
    }
    let sibling = Reference {
        repository: format!("{}-mount", at.repository),
        ..at.clone()
    };
    let digest = Digest::of(&one);
    let url = format!(
        "{}/blobs/uploads/?mount={digest}&from={}",
        run.base(&sibling),
        at.repository
    );
    let actions = format!("pull,push&scope=repository:{}:pull", at.repository);
    let response = run
        .client
        .transport
        .send(&sibling, &actions, Method::POST, &url, &mut |req| {
            req.send_empty()
        });
    match code(&response) {
        201 => run.record("cross-repo-mount", false, Outcome::Yes, "201".into()),
        202 => {
            // An upload was started instead: cancel it.
            if let Ok(r) = &response
                && let Some(location) = header(r, "location")
            {
                let url = run.client.transport.resolve(&sibling, location);
                let _ = run.client.transport.send(
                    &sibling,
                    "pull,push",
                    Method::DELETE,
                    &url,
                    &mut |req| req.call(),
                );
            }
            run.record(
                "cross-repo-mount",
                false,
                Outcome::No,
                "the registry started an upload instead (202)".into(),
            );
        }
        _ => {
            let why = why(run.client, &sibling, response);
            run.record("cross-repo-mount", false, Outcome::No, why);
        }
    }
}

fn probe_artifacts(run: &mut Run<'_>) {
    let at = run.at.clone();
    if !run.passed("monolithic-upload") {
        for name in ["wasm-config", "artifact-type-and-subject", "referrers"] {
            run.record(name, true, Outcome::Skipped, "no upload".into());
        }
        return;
    }
    let wasm = unique_bytes(&format!("{}-one", at.repository), 4096);
    let config = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#;
    let pushed = run.upload_monolithic(&at, config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": Descriptor::for_bytes(media_types::WASM_CONFIG_V0, config),
        "layers": [Descriptor::for_bytes(media_types::WASM_LAYER, &wasm)],
    }))
    .expect("a manifest serializes");
    let subject = Descriptor::for_bytes(media_types::OCI_MANIFEST, &manifest);
    let response = match pushed {
        Ok(_) => run.put_manifest(&at, "doctor", &manifest, media_types::OCI_MANIFEST),
        Err(why) => {
            run.record(
                "wasm-config",
                true,
                Outcome::No,
                format!("the config upload: {why}"),
            );
            return;
        }
    };
    if code(&response) != 201 {
        run.record(
            "wasm-config",
            true,
            Outcome::No,
            format!(
                "a manifest with config `{}`: {}",
                media_types::WASM_CONFIG_V0,
                why(run.client, &at, response)
            ),
        );
        return;
    }
    run.record(
        "wasm-config",
        true,
        Outcome::Yes,
        format!("config `{}`", media_types::WASM_CONFIG_V0),
    );
    // An artifact referring to it.
    let empty = Blob::hash(b"{}");
    let artifact = match run.upload_monolithic(&at, empty.bytes()) {
        Ok(_) => serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "artifactType": "application/vnd.wasmoci.doctor",
            "config": Descriptor::for_blob(media_types::OCI_EMPTY, &empty),
            "layers": [Descriptor::for_blob(media_types::OCI_EMPTY, &empty)],
            "subject": subject,
        }))
        .expect("a manifest serializes"),
        Err(why) => {
            run.record("artifact-type-and-subject", true, Outcome::No, why);
            return;
        }
    };
    let artifact_digest = Digest::of(&artifact);
    let response = run.put_manifest(
        &at,
        &artifact_digest.to_string(),
        &artifact,
        media_types::OCI_MANIFEST,
    );
    let api_listed = response
        .as_ref()
        .ok()
        .and_then(|r| header(r, "oci-subject"))
        .is_some();
    if code(&response) != 201 {
        run.record(
            "artifact-type-and-subject",
            true,
            Outcome::No,
            why(run.client, &at, response),
        );
        return;
    }
    run.record(
        "artifact-type-and-subject",
        true,
        Outcome::Yes,
        if api_listed {
            "accepted; the registry answered `OCI-Subject`".into()
        } else {
            "accepted".into()
        },
    );
    probe_referrers(run, &subject, artifact_digest, &artifact);
    probe_tags(run, &manifest);
}

fn probe_referrers(run: &mut Run<'_>, subject: &Descriptor, artifact: Digest, bytes: &[u8]) {
    let at = run.at.clone();
    let url = format!("{}/referrers/{}", run.base(&at), subject.digest);
    let response = run
        .client
        .transport
        .send(&at, "pull", Method::GET, &url, &mut |req| {
            req.header("Accept", media_types::OCI_INDEX).call()
        });
    match code(&response) {
        200 => {
            run.record("referrers", true, Outcome::Yes, "the referrers API".into());
            return;
        }
        404 => {}
        _ => {
            let why = why(run.client, &at, response);
            run.record("referrers", true, Outcome::No, why);
            return;
        }
    }
    // No API: the tag schema must do (an index at `sha256-<hex>`).
    let parsed = wasmoci_spec::ImageManifest::from_json(bytes).expect("ours parses");
    let index = ImageIndex {
        manifests: vec![super::referrers::referrer_descriptor(bytes, &parsed)],
        ..ImageIndex::default()
    };
    let index = serde_json::to_vec(&index).expect("an index serializes");
    let response = run.put_manifest(
        &at,
        &fallback_tag(&subject.digest),
        &index,
        media_types::OCI_INDEX,
    );
    if code(&response) == 201 {
        run.record(
            "referrers",
            true,
            Outcome::Yes,
            format!("no referrers API (404): the tag schema works (`{artifact}` listed)"),
        );
    } else {
        run.record(
            "referrers",
            true,
            Outcome::No,
            format!(
                "no referrers API (404), and the tag schema's index: {}",
                why(run.client, &at, response)
            ),
        );
    }
}

fn probe_tags(run: &mut Run<'_>, manifest: &[u8]) {
    let at = run.at.clone();
    for tag in ["doctor-a", "doctor-b"] {
        let _ = run.put_manifest(&at, tag, manifest, media_types::OCI_MANIFEST);
    }
    let url = format!("{}/tags/list?n=1", run.base(&at));
    let response = run
        .client
        .transport
        .send(&at, "pull", Method::GET, &url, &mut |req| req.call());
    let outcome = match response {
        Ok(mut r) if r.status().is_success() => {
            let next = header(&r, "link").and_then(|l| next_link(&l));
            let body = r
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_vec()
                .unwrap_or_default();
            let count = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["tags"].as_array().map(Vec::len))
                .unwrap_or(0);
            match (count, next) {
                (1, Some(_)) => (Outcome::Yes, "`n` and `Link`".to_owned()),
                (1, None) => (
                    Outcome::No,
                    "`n` honoured, no `Link` to the next page".into(),
                ),
                (n, _) => (Outcome::No, format!("`n=1` ignored: {n} tags in one page")),
            }
        }
        other => (Outcome::No, status_of(&other)),
    };
    run.record("tag-pagination", false, outcome.0, outcome.1);
}

/// Deletes what was pushed (manifests, then blobs) where the registry allows it, and
/// records whether it does; what stays is listed.
fn clean_up(run: &mut Run<'_>) -> Vec<String> {
    let at = run.at.clone();
    let mut left = Vec::new();
    let mut deleted = None;
    let manifests = std::mem::take(&mut run.manifests);
    let mut seen = std::collections::HashSet::new();
    for digest in manifests.iter().rev().filter(|d| seen.insert(**d)) {
        let url = format!("{}/manifests/{digest}", run.base(&at));
        let response =
            run.client
                .transport
                .send(&at, "pull,push,delete", Method::DELETE, &url, &mut |req| {
                    req.call()
                });
        let ok = matches!(code(&response), 200 | 202 | 404);
        if deleted.is_none() {
            deleted = Some((ok, status_of(&response)));
        }
        if !ok {
            left.push(format!("{}@{digest}", at.repository_path()));
        }
    }
    for digest in std::mem::take(&mut run.blobs) {
        let url = format!("{}/blobs/{digest}", run.base(&at));
        let response =
            run.client
                .transport
                .send(&at, "pull,push,delete", Method::DELETE, &url, &mut |req| {
                    req.call()
                });
        if !matches!(code(&response), 200 | 202 | 404) {
            left.push(format!("blob `{digest}` in `{}`", at.repository_path()));
        }
    }
    match deleted {
        Some((true, _)) => run.record("manifest-delete", false, Outcome::Yes, "202".into()),
        Some((false, why)) => run.record("manifest-delete", false, Outcome::No, why),
        None => run.record(
            "manifest-delete",
            false,
            Outcome::Skipped,
            "nothing was pushed".into(),
        ),
    }
    left
}
