//! Pushing: each blob the registry lacks (mounted from another repository when it can
//! be, else streamed from the layout, in one `PUT` or in chunks), then the manifest.

use std::io::{Read, Seek, SeekFrom};

use wasmoci_spec::{Descriptor, Digest, HashingReader, media_types};

use super::transport::{Method, header};
use super::{Client, Counted, PushReport, RegistryError};
use crate::layout::{Layout, StoredArtifact};
use crate::reference::Reference;

/// What became of one blob.
enum BlobOutcome {
    Skipped,
    Mounted,
    Uploaded,
}

impl Client {
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
    /// registry) instead of uploading them when the registry allows it. Blobs are also
    /// mounted from the repositories of that registry the layout knows them to be in
    /// ([`Layout::blob_sources`]); a refused mount falls back to an upload. A layout that
    /// keeps sources remembers `dest` for every blob once the push is done.
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
        let url = format!("{}/manifests/{target}", self.transport.base(dest));
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| media_types::OCI_MANIFEST.to_owned());
        let response = self
            .transport
            .send(dest, "pull,push", Method::PUT, &url, &mut |req| {
                req.header("Content-Type", &media_type)
                    .send(&stored.manifest_bytes[..])
            })?;
        if !response.status().is_success() {
            return Err(self
                .transport
                .status_error(dest, "push the manifest to", response));
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
        report.subject_accepted =
            manifest.subject.is_some() && header(&response, "oci-subject").is_some();
        let digests: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
        layout.remember_sources(&digests, &dest.repository_path());
        Ok(report)
    }

    /// Stores manifest bytes under `r`'s tag (or digest); returns the digest.
    pub fn put_manifest(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let url = format!("{}/manifests/{}", self.transport.base(r), r.target());
        let response = self
            .transport
            .send(r, "pull,push", Method::PUT, &url, &mut |req| {
                req.header("Content-Type", media_type).send(bytes)
            })?;
        if !response.status().is_success() {
            return Err(self
                .transport
                .status_error(r, "push the manifest to", response));
        }
        Ok(Digest::of(bytes))
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
        for from in mount_candidates(layout, dest, source, &blob.digest) {
            // A mount the registry refuses, or cannot do, is only a missed shortcut.
            if self.mount(dest, &from, &blob.digest).unwrap_or(false) {
                return Ok(BlobOutcome::Mounted);
            }
        }
        self.progress.start(&blob.digest, blob.size, "push");
        let result = self.upload(layout, dest, blob);
        self.progress.finish(&blob.digest);
        result?;
        Ok(BlobOutcome::Uploaded)
    }

    fn blob_exists(
        &self,
        r: &Reference,
        digest: &Digest,
        actions: &str,
    ) -> Result<bool, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.transport.base(r));
        let response =
            self.transport
                .send_idempotent(r, actions, Method::HEAD, &url, &mut |req| req.call())?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.transport.status_error(r, "check blob", response)),
        }
    }

    /// Asks the registry to mount a blob from the repository `from` of `dest`'s registry;
    /// `false` when it would rather have an upload.
    fn mount(&self, dest: &Reference, from: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let url = format!(
            "{}/blobs/uploads/?mount={digest}&from={from}",
            self.transport.base(dest),
        );
        let actions = format!("pull,push&scope=repository:{from}:pull");
        let response = self
            .transport
            .send(dest, &actions, Method::POST, &url, &mut |req| {
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
        // Checked before the registry hears of it: a symlink, a file of another size or
        // content (a layout made to leak a file) never leaves.
        let file = layout.open_blob(blob)?;
        let start = format!("{}/blobs/uploads/", self.transport.base(dest));
        let response =
            self.transport
                .send(dest, "pull,push", Method::POST, &start, &mut |req| {
                    req.send_empty()
                })?;
        if response.status().as_u16() != 202 {
            return Err(self
                .transport
                .status_error(dest, "start an upload to", response));
        }
        let location = header(&response, "location").ok_or_else(|| RegistryError::Status {
            action: "start an upload to",
            reference: dest.to_string(),
            status: 202,
            detail: "no `Location` header".into(),
        })?;
        let mut url = self.transport.resolve(dest, location);
        let path = layout.blob_path(&blob.digest);
        // Each attempt (a 401 makes a second) reads the checked file from its start.
        let rewound = |offset: u64| -> Result<std::fs::File, ureq::Error> {
            let mut f = file.try_clone().map_err(ureq::Error::Io)?;
            f.seek(SeekFrom::Start(offset)).map_err(ureq::Error::Io)?;
            Ok(f)
        };
        if blob.size > self.transport.options.chunk_size {
            return self.upload_chunked(dest, blob, &rewound, url);
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", blob.digest));
        let mut hashed = None;
        let response = self
            .transport
            .send(dest, "pull,push", Method::PUT, &url, &mut |req| {
                let mut reader = HashingReader::new(Counted {
                    inner: rewound(0)?.take(blob.size),
                    digest: blob.digest,
                    progress: &*self.progress,
                });
                let result = req
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Length", &blob.size.to_string())
                    .send(ureq::SendBody::from_reader(&mut reader));
                hashed = Some(reader.finish());
                result
            })?;
        // Checked before, so only a file changed while it was sent gets here.
        if let Some((actual, _)) = hashed
            && actual != blob.digest
        {
            return Err(RegistryError::Layout(crate::Error::BlobCorrupt {
                path,
                expected: blob.digest,
                actual,
            }));
        }
        if response.status().as_u16() != 201 {
            return Err(self
                .transport
                .status_error(dest, "upload a blob to", response));
        }
        Ok(())
    }

    /// A large blob: `PATCH` chunks of `chunk_size`, each streamed from the file at its
    /// offset, then the closing `PUT` with the digest, which the registry checks.
    fn upload_chunked(
        &self,
        dest: &Reference,
        blob: &Descriptor,
        rewound: &dyn Fn(u64) -> Result<std::fs::File, ureq::Error>,
        mut url: String,
    ) -> Result<(), RegistryError> {
        let chunk_size = self.transport.options.chunk_size;
        let mut offset = 0u64;
        while offset < blob.size {
            let len = chunk_size.min(blob.size - offset);
            let response =
                self.transport
                    .send(dest, "pull,push", Method::PATCH, &url, &mut |req| {
                        let mut chunk = Counted {
                            inner: rewound(offset)?.take(len),
                            digest: blob.digest,
                            progress: &*self.progress,
                        };
                        req.header("Content-Type", "application/octet-stream")
                            .header("Content-Length", &len.to_string())
                            .header("Content-Range", &format!("{offset}-{}", offset + len - 1))
                            .send(ureq::SendBody::from_reader(&mut chunk))
                    })?;
            if response.status().as_u16() != 202 {
                return Err(self
                    .transport
                    .status_error(dest, "upload a chunk to", response));
            }
            if let Some(location) = header(&response, "location") {
                url = self.transport.resolve(dest, location);
            }
            offset += len;
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", blob.digest));
        let response = self
            .transport
            .send(dest, "pull,push", Method::PUT, &url, &mut |req| {
                req.send_empty()
            })?;
        if response.status().as_u16() != 201 {
            return Err(self
                .transport
                .status_error(dest, "finish the upload to", response));
        }
        Ok(())
    }
}

/// At most this many repositories are asked to mount one blob before it is uploaded.
const MOUNT_TRIES: usize = 3;

/// The repositories of `dest`'s registry to mount `digest` from: `source`, then those the
/// layout knows it to be in (most recent first), never `dest`'s own.
fn mount_candidates(
    layout: &Layout,
    dest: &Reference,
    source: Option<&Reference>,
    digest: &Digest,
) -> Vec<String> {
    let mut from: Vec<String> = source.map(|s| s.repository.clone()).into_iter().collect();
    for known in layout.blob_sources(digest) {
        if let Some((host, repository)) = known.split_once('/')
            && host == dest.registry
            && repository != dest.repository
            && !from.iter().any(|r| r == repository)
        {
            from.push(repository.to_owned());
        }
    }
    from.truncate(MOUNT_TRIES);
    from
}
