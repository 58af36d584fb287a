//! Referrers (OCI 1.1): the manifests whose `subject` is a given manifest (signatures,
//! SBOMs, attestations). Listed with the referrers API (`GET /v2/<name>/referrers/<digest>`)
//! when the registry has it, else through the distribution spec's **tag schema**: the tag
//! `sha256-<hex>` holding an image index of them, which writers update by read, modify,
//! write. Registries without the API (distribution 2.8, GitLab) and the tools that write
//! the schema (oras, cosign's tree) agree on it.

use wasmoci_spec::{Descriptor, Digest, ImageIndex, ImageManifest, media_types};

use super::transport::{Method, header, read_limited};
use super::{Client, RegistryError};
use crate::reference::Reference;

/// The largest referrers index read (a page of the API, or the tag schema's index).
const MAX_INDEX: u64 = 4 << 20;

/// The most pages of the referrers API followed.
const MAX_PAGES: usize = 100;

/// The most referrers of one manifest kept.
pub const MAX_REFERRERS: usize = 10_000;

/// How often an update of the tag schema's index is tried when another writer got in
/// between (the registry refused our `If-Match`, or our entry was gone when read back).
const TAG_SCHEMA_TRIES: usize = 5;

/// Where a registry keeps the referrers of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The referrers API.
    Api,
    /// The tag schema: the index at tag `sha256-<hex>`.
    TagSchema,
}

impl ReferrersSource {
    /// `referrers-api` or `tag-schema`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferrersSource::Api => "referrers-api",
            ReferrersSource::TagSchema => "tag-schema",
        }
    }
}

/// The referrers of one manifest.
#[derive(Debug, Clone)]
pub struct Referrers {
    /// Their descriptors, as the registry lists them (`artifactType` and annotations
    /// included), filtered by artifact type when asked.
    pub descriptors: Vec<Descriptor>,
    /// Where they were listed from.
    pub source: ReferrersSource,
}

/// A manifest read at a tag: its bytes and `ETag`.
pub(super) type Tagged = (Vec<u8>, Option<String>);

/// The tag the tag schema keeps the referrers of `digest` under: `sha256-<hex>`.
pub fn fallback_tag(digest: &Digest) -> String {
    digest.to_string().replacen(':', "-", 1)
}

/// Whether `tag` is one the tag schema or cosign uses (`sha256-<hex>`, with any suffix
/// such as cosign's `.sig`, `.att`, `.sbom`): not a version of anything.
pub fn is_referrer_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|rest| {
        rest.len() >= 64 && rest.as_bytes()[..64].iter().all(u8::is_ascii_hexdigit)
    })
}

/// The descriptor a referrers index lists for a manifest: its media type, digest and
/// size, its artifact type (`artifactType`, else the config's media type) and its
/// annotations, as the distribution spec says.
pub fn referrer_descriptor(manifest_bytes: &[u8], manifest: &ImageManifest) -> Descriptor {
    let mut descriptor = Descriptor::for_bytes(
        manifest
            .media_type
            .as_deref()
            .unwrap_or(media_types::OCI_MANIFEST),
        manifest_bytes,
    );
    let artifact_type = manifest
        .artifact_type
        .clone()
        .unwrap_or_else(|| manifest.config.media_type.clone());
    descriptor
        .extra
        .insert("artifactType".into(), artifact_type.into());
    descriptor.annotations.clone_from(&manifest.annotations);
    descriptor
}

/// The artifact type a referrers index gives a descriptor.
pub fn artifact_type(descriptor: &Descriptor) -> Option<&str> {
    descriptor.extra.get("artifactType")?.as_str()
}

impl Client {
    /// The referrers of `subject` (its digest) in `r`'s repository, those of
    /// `artifact_type` only when given: from the referrers API, or, when the registry
    /// answers 404 there, from the tag schema (none when that tag does not exist).
    pub fn referrers(
        &self,
        r: &Reference,
        subject: &Digest,
        wanted: Option<&str>,
    ) -> Result<Referrers, RegistryError> {
        let (mut descriptors, source) = match self.referrers_api(r, subject, wanted)? {
            Some(found) => (found, ReferrersSource::Api),
            None => {
                let at = r.with_tag(&fallback_tag(subject));
                let found = self
                    .tag_schema_index(&at)?
                    .map(|(index, _)| index.manifests);
                (found.unwrap_or_default(), ReferrersSource::TagSchema)
            }
        };
        // The API may ignore the filter (it says so by leaving out `OCI-Filters-Applied`);
        // the tag schema has none.
        if let Some(wanted) = wanted {
            descriptors.retain(|d| artifact_type(d) == Some(wanted));
        }
        Ok(Referrers {
            descriptors,
            source,
        })
    }

    /// The referrers API's answer, every page; `None` when the registry does not have it.
    fn referrers_api(
        &self,
        r: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let mut url = format!("{}/referrers/{subject}", self.transport.base(r));
        if let Some(t) = artifact_type {
            url.push_str(&format!("?artifactType={}", super::realm::encode(t)));
        }
        let at = r.with_digest(*subject);
        let mut found = Vec::new();
        for page in 0..MAX_PAGES {
            let mut response =
                self.transport
                    .send_idempotent(&at, "pull", Method::GET, &url, &mut |req| {
                        req.header("Accept", media_types::OCI_INDEX).call()
                    })?;
            match response.status().as_u16() {
                200 => {}
                // Only the first page tells whether there is an API.
                404 if page == 0 => return Ok(None),
                _ => {
                    return Err(self.transport.status_error(
                        &at,
                        "list the referrers of",
                        response,
                    ));
                }
            }
            let next = header(&response, "link").and_then(|l| super::tags::next_link(&l));
            let bytes = read_limited(
                &at,
                &mut response,
                MAX_INDEX,
                "list the referrers of",
                "the referrers index",
            )?;
            let index = parse_index(&at, &bytes, "the referrers API's answer")?;
            found.extend(index.manifests);
            if found.len() > MAX_REFERRERS {
                return Err(too_many(&at));
            }
            match next {
                Some(next) => url = self.transport.resolve(&at, next),
                None => return Ok(Some(found)),
            }
        }
        Err(too_many(&at))
    }

    /// The index at the tag schema's tag `at`, and its `ETag`; `None` when the tag does
    /// not exist. Anything but an image index there is an error (it is not ours to
    /// replace).
    fn tag_schema_index(
        &self,
        at: &Reference,
    ) -> Result<Option<(ImageIndex, Option<String>)>, RegistryError> {
        let Some((bytes, etag)) = self.manifest_if_any(
            at,
            media_types::OCI_INDEX,
            MAX_INDEX,
            "read the referrers index",
        )?
        else {
            return Ok(None);
        };
        let index = parse_index(at, &bytes, "the tag schema's index")?;
        if index.manifests.len() > MAX_REFERRERS {
            return Err(too_many(at));
        }
        Ok(Some((index, etag)))
    }

    /// The manifest at `at` (asked for as `accept`), at most `limit` bytes, and its
    /// `ETag`; `None` when there is none (404). Not checked against a digest: a tag's
    /// content is what it is, and the caller parses it.
    pub(super) fn manifest_if_any(
        &self,
        at: &Reference,
        accept: &str,
        limit: u64,
        action: &'static str,
    ) -> Result<Option<Tagged>, RegistryError> {
        let url = format!("{}/manifests/{}", self.transport.base(at), at.target());
        let mut response =
            self.transport
                .send_idempotent(at, "pull", Method::GET, &url, &mut |req| {
                    req.header("Accept", accept).call()
                })?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.transport.status_error(at, action, response));
        }
        let etag = header(&response, "etag");
        let bytes = read_limited(at, &mut response, limit, action, "the manifest")?;
        Ok(Some((bytes, etag)))
    }

    /// Adds `referrer` (see [`referrer_descriptor`]) to the tag schema's index of
    /// `subject` in `r`'s repository, keeping every entry already there (other tools'
    /// too). Read, add, write with `If-Match` (registries that honour it make this
    /// atomic), read back; tried again when another writer got in between. Does nothing
    /// when the entry is there already.
    pub fn add_to_tag_schema(
        &self,
        r: &Reference,
        subject: &Digest,
        referrer: &Descriptor,
    ) -> Result<(), RegistryError> {
        let at = r.with_tag(&fallback_tag(subject));
        for _ in 0..TAG_SCHEMA_TRIES {
            let (mut index, etag) = self.tag_schema_index(&at)?.unwrap_or_default();
            if index.manifests.iter().any(|d| d.digest == referrer.digest) {
                return Ok(());
            }
            index.manifests.push(referrer.clone());
            if index.manifests.len() > MAX_REFERRERS {
                return Err(too_many(&at));
            }
            let bytes = serde_json::to_vec(&index).expect("an index always serializes");
            let url = format!("{}/manifests/{}", self.transport.base(&at), at.target());
            let response =
                self.transport
                    .send(&at, "pull,push", Method::PUT, &url, &mut |req| {
                        let req = req.header("Content-Type", media_types::OCI_INDEX);
                        match &etag {
                            Some(etag) => req.header("If-Match", etag).send(&bytes[..]),
                            None => req.send(&bytes[..]),
                        }
                    })?;
            match response.status().as_u16() {
                // Another writer changed it since we read it.
                412 => continue,
                s if (200..300).contains(&s) => {}
                _ => {
                    return Err(self.transport.status_error(
                        &at,
                        "update the referrers index",
                        response,
                    ));
                }
            }
            // A registry that ignores `If-Match` lets a writer in between: ours must
            // still be there.
            let kept = self.tag_schema_index(&at)?.is_some_and(|(index, _)| {
                index.manifests.iter().any(|d| d.digest == referrer.digest)
            });
            if kept {
                return Ok(());
            }
        }
        Err(RegistryError::Status {
            action: "update the referrers index",
            reference: at.to_string(),
            status: 412,
            detail: format!(
                "other writers kept replacing it; gave up after {TAG_SCHEMA_TRIES} tries"
            ),
        })
    }
}

fn parse_index(at: &Reference, bytes: &[u8], what: &str) -> Result<ImageIndex, RegistryError> {
    let index = ImageIndex::from_json(bytes).map_err(|e| RegistryError::Unsupported {
        reference: at.to_string(),
        reason: format!("{what} is not an image index: {e}"),
    })?;
    match index.media_type.as_deref() {
        None | Some(media_types::OCI_INDEX) => Ok(index),
        Some(other) => Err(RegistryError::Unsupported {
            reference: at.to_string(),
            reason: format!("{what} is `{other}`, not an image index"),
        }),
    }
}

fn too_many(at: &Reference) -> RegistryError {
    RegistryError::TooLarge {
        action: "list the referrers of",
        reference: at.to_string(),
        what: format!("there are more than {MAX_REFERRERS} referrers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_schema_names() {
        let d = Digest::of(b"x");
        let tag = fallback_tag(&d);
        assert_eq!(tag.len(), 7 + 64);
        assert!(tag.starts_with("sha256-"));
        assert!(is_referrer_tag(&tag));
        assert!(is_referrer_tag(&format!("{tag}.sig")));
        assert!(!is_referrer_tag("sha256-abc"));
        assert!(!is_referrer_tag("1.0.0"));
    }

    #[test]
    fn a_referrer_is_listed_with_its_artifact_type_and_annotations() {
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"a":"b"}}"#;
        let parsed = ImageManifest::from_json(manifest).unwrap();
        let d = referrer_descriptor(manifest, &parsed);
        assert_eq!(d.digest, Digest::of(manifest));
        assert_eq!(artifact_type(&d), Some("application/spdx+json"));
        assert_eq!(d.annotation("a"), Some("b"));
    }
}
