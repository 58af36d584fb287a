//! Pulling: a manifest (checked against its digest), a small blob whole, or an artifact
//! into a layout with each blob streamed to disk while hashed.

use std::io::Read;

use wasmoci_spec::{Descriptor, Digest, ImageManifest, media_types};

use super::transport::{Method, Response, header, read_limited};
use super::{Client, Counted, PullReport, RegistryError};
use crate::layout::Layout;
use crate::reference::Reference;

/// Largest manifest we accept (the distribution spec's own limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;

/// Accept header for manifests: OCI first; docker v2 and indexes so we can name them.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json;q=0.5, application/vnd.docker.distribution.manifest.v2+json;q=0.4, application/vnd.docker.distribution.manifest.list.v2+json;q=0.3";

/// What a pull insists on, beyond an OCI image manifest whose blobs match their digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullOptions {
    /// Refuse a manifest without a wasm layer (before any blob is fetched). On by
    /// default: what wasmoci pulls is meant to run.
    pub require_wasm: bool,
    /// Fetch every layer. Off by default: layers that are not wasm (nothing runs them)
    /// stay at the registry, and the report lists them as skipped; `copy`, which moves
    /// an artifact as it is, turns it on.
    pub all_layers: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            require_wasm: true,
            all_layers: false,
        }
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

/// Reads a small body (a manifest, a config) whole, at most [`MAX_MANIFEST`] bytes, and
/// checks it against `expected` when there is one: its bytes and their digest.
fn read_checked(
    r: &Reference,
    response: &mut Response,
    expected: Option<Digest>,
) -> Result<(Vec<u8>, Digest), RegistryError> {
    let bytes = read_limited(r, response, MAX_MANIFEST, "read", "a manifest or config")?;
    let actual = Digest::of(&bytes);
    match expected {
        Some(expected) if expected != actual => Err(RegistryError::DigestMismatch {
            reference: r.to_string(),
            expected,
            actual,
        }),
        _ => Ok((bytes, actual)),
    }
}

impl Client {
    /// Fetches a manifest: its bytes, checked against the named digest (or the
    /// `Docker-Content-Digest` the registry sends), and its digest.
    pub fn manifest(&self, r: &Reference) -> Result<(Vec<u8>, Digest, String), RegistryError> {
        let url = format!("{}/manifests/{}", self.transport.base(r), r.target());
        let mut response =
            self.transport
                .send_idempotent(r, "pull", Method::GET, &url, &mut |req| {
                    req.header("Accept", MANIFEST_ACCEPT).call()
                })?;
        if !response.status().is_success() {
            return Err(self
                .transport
                .status_error(r, "read the manifest of", response));
        }
        let content_type = header(&response, "content-type").unwrap_or_default();
        let announced =
            header(&response, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        let (bytes, actual) = read_checked(r, &mut response, r.digest.or(announced))?;
        Ok((bytes, actual, content_type))
    }

    /// A small blob (a config), whole, checked against its digest.
    pub fn blob(&self, r: &Reference, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.transport.base(r));
        let mut response =
            self.transport
                .send_idempotent(r, "pull", Method::GET, &url, &mut |req| req.call())?;
        if !response.status().is_success() {
            return Err(self.transport.status_error(r, "read a blob of", response));
        }
        Ok(read_checked(r, &mut response, Some(*digest))?.0)
    }

    /// Pulls `src` into `layout`, tagged `tag`: the manifest (checked; it must have a
    /// wasm layer), then each blob the layout lacks, streamed to a temporary file while
    /// hashed and kept only when its digest and size match.
    pub fn pull(
        &self,
        src: &Reference,
        layout: &Layout,
        tag: Option<&str>,
    ) -> Result<PullReport, RegistryError> {
        self.pull_with(src, layout, tag, PullOptions::default())
    }

    /// [`Client::pull`], insisting on what `options` says.
    pub fn pull_with(
        &self,
        src: &Reference,
        layout: &Layout,
        tag: Option<&str>,
        options: PullOptions,
    ) -> Result<PullReport, RegistryError> {
        let (bytes, _, content_type) = self.manifest(src)?;
        self.pull_fetched(src, &bytes, &content_type, layout, tag, options)
    }

    /// [`Client::pull_with`] of a manifest already fetched from `src` (its `bytes`,
    /// checked by [`Client::manifest`], and `content_type`): only the blobs `layout` lacks
    /// are asked for.
    pub fn pull_fetched(
        &self,
        src: &Reference,
        bytes: &[u8],
        content_type: &str,
        layout: &Layout,
        tag: Option<&str>,
        options: PullOptions,
    ) -> Result<PullReport, RegistryError> {
        let content_type = content_type.to_owned();
        let manifest = ImageManifest::from_json(bytes).map_err(|e| RegistryError::Unsupported {
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
        if options.require_wasm {
            require_wasm_layer(src, &manifest)?;
        }
        let mut blobs = vec![manifest.config.clone()];
        let mut skipped = Vec::new();
        for layer in &manifest.layers {
            if options.all_layers || media_types::is_readable_wasm_layer(&layer.media_type) {
                blobs.push(layer.clone());
            } else {
                skipped.push((layer.digest, layer.size));
            }
        }
        // Before a byte moves: a manifest may claim any size.
        let limit = self.transport.options.max_blob_size;
        let big = blobs
            .iter()
            .find(|b| b.size > limit && !layout.blob_path(&b.digest).is_file());
        if let Some(big) = big {
            return Err(RegistryError::TooLarge {
                action: "download",
                reference: src.to_string(),
                what: format!(
                    "blob `{}` is {} bytes, more than the limit of {}",
                    big.digest,
                    big.size,
                    super::error::human(limit)
                ),
            });
        }
        // Only now: a manifest we refuse leaves no new, empty layout behind.
        layout.create()?;
        let mut report = PullReport {
            manifest: Descriptor::for_bytes(media_types::OCI_MANIFEST, bytes),
            downloaded: Vec::new(),
            reused: Vec::new(),
            skipped,
        };
        for blob in &blobs {
            if layout.blob_path(&blob.digest).is_file() {
                report.reused.push((blob.digest, blob.size));
                continue;
            }
            self.download(src, layout, blob)?;
            report.downloaded.push((blob.digest, blob.size));
        }
        let stored = layout.store(bytes, &[], tag)?;
        let digests: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
        layout.remember_sources(&digests, &src.repository_path());
        report.manifest = stored;
        Ok(report)
    }

    /// One blob of `src` into `layout`, streamed and kept only when it matches `blob`.
    fn download(
        &self,
        src: &Reference,
        layout: &Layout,
        blob: &Descriptor,
    ) -> Result<(), RegistryError> {
        let url = format!("{}/blobs/{}", self.transport.base(src), blob.digest);
        let retries = self.transport.options.retries;
        let resumed = std::cell::Cell::new(0);
        let mut restarts = 0;
        loop {
            let response =
                self.transport
                    .send_idempotent(src, "pull", Method::GET, &url, &mut |req| req.call())?;
            if !response.status().is_success() {
                return Err(self
                    .transport
                    .status_error(src, "download a blob of", response));
            }
            let restart = std::cell::Cell::new(false);
            let read_error = std::cell::RefCell::new(None);
            let reader = ReadFailure {
                inner: Counted {
                    inner: super::resume::Resuming {
                        client: self,
                        src,
                        url: &url,
                        body: response.into_body().into_reader(),
                        offset: 0,
                        tries: retries.saturating_sub(resumed.get()),
                        restart: &restart,
                        resumed: &resumed,
                    }
                    .take(blob.size + 1),
                    digest: blob.digest,
                    progress: &*self.progress,
                },
                error: &read_error,
            };
            self.progress.start(&blob.digest, blob.size, "pull");
            let stored = layout.put_blob_from(reader, Some(blob));
            self.progress.finish(&blob.digest);
            // The registry would not resume: from the start, with a new temporary file.
            if stored.is_err() && restart.get() && restarts < retries {
                restarts += 1;
                continue;
            }
            if stored.is_err()
                && let Some(reason) = read_error.into_inner()
            {
                return Err(RegistryError::Unreachable {
                    registry: src.registry.clone(),
                    reason: format!("the download of blob `{}` broke off: {reason}", blob.digest),
                });
            }
            return match stored {
                Ok(_) => Ok(()),
                Err(crate::Error::ContentMismatch {
                    expected, actual, ..
                }) => Err(RegistryError::DigestMismatch {
                    reference: src.to_string(),
                    expected,
                    actual,
                }),
                Err(e) => Err(e.into()),
            };
        }
    }
}

/// Wasm policy, asked for by the caller ([`PullOptions::require_wasm`]): the manifest
/// has a wasm layer.
fn require_wasm_layer(src: &Reference, manifest: &ImageManifest) -> Result<(), RegistryError> {
    if manifest.wasm_layers().count() > 0 {
        return Ok(());
    }
    let found: Vec<String> = manifest
        .layers
        .iter()
        .map(|l| format!("`{}`", l.media_type))
        .collect();
    Err(RegistryError::Unsupported {
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
    })
}
