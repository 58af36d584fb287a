//! Referrers: `attach` (an OCI 1.1 artifact whose `subject` is a manifest, one layer per
//! file) and `discover` (what points at a manifest, recursively), over the registry
//! client's referrers API and tag schema.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use wasmoci_registry::client::{Client, MAX_REFERRERS, RegistryError, referrer_descriptor};
use wasmoci_registry::{Layout, LayoutRef, Reference};
use wasmoci_spec::{Blob, Descriptor, Digest, ImageManifest, annotations, media_types};

use super::{Error, Result};

/// The media type of a file attached without one (what oras gives files too).
pub const DEFAULT_FILE_MEDIA_TYPE: &str = media_types::OCI_LAYER_TAR;

/// The empty config of an artifact manifest (OCI 1.1's empty descriptor).
const EMPTY_CONFIG: &[u8] = b"{}";

/// The deepest `discover --depth` goes.
pub const MAX_DEPTH: usize = 16;

/// What to attach.
#[derive(Debug)]
pub struct AttachRequest<'a> {
    /// The manifest the artifact refers to (a tag is resolved to its digest first).
    pub subject: &'a Reference,
    /// The artifact's `artifactType`.
    pub artifact_type: &'a str,
    /// The files, each `PATH` or `PATH:MEDIA_TYPE`.
    pub files: &'a [String],
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// The manifest's `org.opencontainers.image.created`, unless `annotations` has it.
    pub created: wasmoci_spec::Timestamp,
}

/// What `attach` did.
#[derive(Debug, Clone, Serialize)]
pub struct Attached {
    /// `HOST/REPO@DIGEST` of the new artifact.
    pub reference: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Its `artifactType`.
    pub artifact_type: String,
    /// The subject's digest.
    pub subject: Digest,
    /// Its layers: one per file.
    pub files: Vec<AttachedFile>,
    /// `referrers-api` or `tag-schema`: how the registry lists it.
    pub listed_by: &'static str,
    /// `HOST/REPO:sha256-…`, the index updated (tag schema only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

/// One attached file.
#[derive(Debug, Clone, Serialize)]
pub struct AttachedFile {
    /// Its `org.opencontainers.image.title`.
    pub title: String,
    /// Its layer's media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// Why a referrer could not be attached, listed or written out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferrerError {
    /// A file to attach could not be read.
    #[error("failed to read `{}`", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<wasmoci_registry::Error>,
    },
    /// Two files with one title.
    #[error("two files are named `{0}`: a referrer's layers are told apart by their title")]
    DuplicateTitle(String),
    /// A file name we cannot use as a title.
    #[error("cannot attach `{}`: its name is not valid UTF-8", .0.display())]
    Untitled(PathBuf),
    /// The registry refused or failed.
    #[error("failed to {action} `{reference}`")]
    Registry {
        /// What we tried.
        action: &'static str,
        /// On what.
        reference: String,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// A layer's title that is not a plain file name (`-o DIR` would write outside DIR).
    #[error(
        "layer `{digest}` is titled `{title}`, which is not a plain file name; nothing was written for it"
    )]
    UnsafeTitle {
        /// The layer.
        digest: Digest,
        /// Its title, as the artifact says.
        title: String,
    },
    /// Writing a pulled file.
    #[error("failed to write `{}`", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A pulled blob that is not what its descriptor says.
    #[error("blob `{digest}` in `{}` is corrupt: it hashes to `{actual}`", layout.display())]
    Corrupt {
        /// The blob.
        digest: Digest,
        /// What it hashes to.
        actual: Digest,
        /// The layout.
        layout: PathBuf,
    },
}

/// A registry error while doing `action` on `reference`, as an operation's error.
pub(crate) fn registry(
    action: &'static str,
    reference: &Reference,
) -> impl FnOnce(RegistryError) -> Error {
    let reference = reference.to_string();
    move |source| {
        ReferrerError::Registry {
            action,
            reference,
            source: Box::new(source),
        }
        .into()
    }
}

/// The subject's digest and descriptor: named, or what its tag points at now.
pub fn resolve_subject(client: &Client, subject: &Reference) -> Result<Descriptor> {
    let (bytes, digest, content_type) = client
        .manifest(subject)
        .map_err(registry("read the manifest of", subject))?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            if content_type.is_empty() {
                media_types::OCI_MANIFEST.to_owned()
            } else {
                content_type
            }
        });
    Ok(Descriptor {
        media_type,
        digest,
        size: bytes.len() as u64,
        annotations: None,
        extra: BTreeMap::new(),
    })
}

/// `PATH[:MEDIA_TYPE]`, as oras takes files: the part after the last `:` is a media type
/// when it has a `/`.
fn file_and_type(spec: &str) -> (&str, &str) {
    match spec.rsplit_once(':') {
        Some((path, media_type)) if media_type.contains('/') && !path.is_empty() => {
            (path, media_type)
        }
        _ => (spec, DEFAULT_FILE_MEDIA_TYPE),
    }
}

/// The artifact type of an SBOM file: CycloneDX JSON (`bomFormat`), else SPDX JSON.
pub fn sbom_type(path: &Path) -> &'static str {
    let cyclonedx = std::fs::File::open(path).ok().and_then(|f| {
        let value: serde_json::Value =
            serde_json::from_reader(std::io::Read::take(f, 64 << 20)).ok()?;
        Some(value["bomFormat"] == "CycloneDX")
    });
    if cyclonedx == Some(true) {
        "application/vnd.cyclonedx+json"
    } else {
        "application/spdx+json"
    }
}

/// Pushes an artifact of `request.files` whose `subject` is `request.subject`, and lists
/// it: the registry does when it has the referrers API (it answers `OCI-Subject`), else
/// the tag schema's index is updated. The files are streamed into a scratch layout
/// (hashed once, as they are written) and pushed from there.
pub fn attach(client: &Client, request: AttachRequest<'_>) -> Result<Attached> {
    let subject = resolve_subject(client, request.subject)?;
    let scratch = tempfile::tempdir().map_err(Error::TempDir)?;
    let layout = Layout::at(scratch.path().join("layout"));
    layout.create()?;
    let mut layers = Vec::new();
    let mut files = Vec::new();
    let mut titles = HashSet::new();
    for spec in request.files {
        let (path, media_type) = file_and_type(spec);
        let path = Path::new(path);
        let title = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ReferrerError::Untitled(path.to_owned()))?
            .to_owned();
        if !titles.insert(title.clone()) {
            return Err(ReferrerError::DuplicateTitle(title).into());
        }
        let read = |source: wasmoci_registry::Error| ReferrerError::ReadFile {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let file = std::fs::File::open(path).map_err(|e| {
            read(wasmoci_registry::Error::Io {
                action: "open",
                path: path.to_owned(),
                source: e,
            })
        })?;
        let (digest, size, _) = layout.put_blob_from(file, None).map_err(read)?;
        let mut layer = Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            annotations: None,
            extra: BTreeMap::new(),
        };
        layer.annotations = Some(BTreeMap::from([(
            annotations::TITLE.to_owned(),
            title.clone(),
        )]));
        layers.push(layer);
        files.push(AttachedFile {
            title,
            media_type: media_type.to_owned(),
            digest,
            size,
        });
    }
    let mut manifest_annotations = request.annotations;
    manifest_annotations
        .entry(annotations::CREATED.to_owned())
        .or_insert_with(|| request.created.to_string());
    let config = Blob::hash(EMPTY_CONFIG);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.to_owned()),
        artifact_type: Some(request.artifact_type.to_owned()),
        config: Descriptor::for_blob(media_types::OCI_EMPTY, &config),
        layers,
        subject: Some(subject.clone()),
        annotations: Some(manifest_annotations),
    };
    let manifest_bytes = manifest.to_json();
    let stored = layout.store(&manifest_bytes, &[config], None)?;
    let stored = layout.resolve(&LayoutRef::Digest(stored.digest))?;
    let dest = Reference {
        tag: None,
        digest: None,
        ..request.subject.clone()
    };
    let pushed = client
        .push(&layout, &stored, &dest)
        .map_err(registry("push the referrer to", &dest))?;
    let mut index = None;
    if !pushed.subject_accepted {
        let descriptor = referrer_descriptor(&manifest_bytes, &manifest);
        client
            .add_to_tag_schema(&dest, &subject.digest, &descriptor)
            .map_err(registry("list the referrer in", &dest))?;
        index = Some(
            dest.with_tag(&wasmoci_registry::client::fallback_tag(&subject.digest))
                .to_string(),
        );
    }
    Ok(Attached {
        reference: dest.with_digest(stored.descriptor.digest).to_string(),
        digest: stored.descriptor.digest,
        artifact_type: request.artifact_type.to_owned(),
        subject: subject.digest,
        files,
        listed_by: if pushed.subject_accepted {
            "referrers-api"
        } else {
            "tag-schema"
        },
        index,
    })
}

/// One referrer, and its own referrers (as deep as asked).
#[derive(Debug, Serialize)]
pub struct Referrer {
    /// Its manifest digest.
    pub digest: Digest,
    /// Its manifest's media type.
    pub media_type: String,
    /// Its `artifactType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Its manifest's size.
    pub size: u64,
    /// Its annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// What refers to it (empty at the depth asked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<Referrer>,
}

/// What `discover` found.
#[derive(Debug, Serialize)]
pub struct Discovered {
    /// `HOST/REPO@DIGEST` of the subject.
    pub subject: String,
    /// Its digest.
    pub digest: Digest,
    /// `referrers-api` or `tag-schema`: how the registry listed them.
    pub listed_by: &'static str,
    /// Its referrers.
    pub referrers: Vec<Referrer>,
}

/// Lists what refers to `subject` (a tag is resolved first), `depth` levels deep (at
/// most [`MAX_DEPTH`]), those of `artifact_type` only at the first level when given. Each
/// manifest is listed once, so a cycle ends; at most [`MAX_REFERRERS`] in all.
pub fn discover(
    client: &Client,
    subject: &Reference,
    artifact_type: Option<&str>,
    depth: usize,
) -> Result<Discovered> {
    let digest = match subject.digest {
        Some(digest) => digest,
        None => resolve_subject(client, subject)?.digest,
    };
    let at = Reference {
        tag: None,
        digest: Some(digest),
        ..subject.clone()
    };
    let mut seen = HashSet::from([digest]);
    let (referrers, source) = level(
        client,
        &at,
        digest,
        artifact_type,
        depth.clamp(1, MAX_DEPTH),
        &mut seen,
    )?;
    Ok(Discovered {
        subject: at.to_string(),
        digest,
        listed_by: source,
        referrers,
    })
}

fn level(
    client: &Client,
    at: &Reference,
    digest: Digest,
    artifact_type: Option<&str>,
    depth: usize,
    seen: &mut HashSet<Digest>,
) -> Result<(Vec<Referrer>, &'static str)> {
    let found = client
        .referrers(at, &digest, artifact_type)
        .map_err(registry("list the referrers of", &at.with_digest(digest)))?;
    let mut out = Vec::new();
    for d in found.descriptors {
        if !seen.insert(d.digest) {
            continue;
        }
        if seen.len() > MAX_REFERRERS {
            return Err(ReferrerError::Registry {
                action: "list the referrers of",
                reference: at.to_string(),
                source: Box::new(RegistryError::TooLarge {
                    action: "list the referrers of",
                    reference: at.to_string(),
                    what: format!("there are more than {MAX_REFERRERS} referrers in all"),
                }),
            }
            .into());
        }
        let referrers = if depth > 1 {
            level(client, at, d.digest, None, depth - 1, seen)?.0
        } else {
            Vec::new()
        };
        out.push(Referrer {
            digest: d.digest,
            artifact_type: wasmoci_registry::client::artifact_type(&d).map(str::to_owned),
            media_type: d.media_type,
            size: d.size,
            annotations: d.annotations.unwrap_or_default(),
            referrers,
        });
    }
    Ok((out, found.source.as_str()))
}

/// Whether `title` can name a file in a directory: one plain path component.
pub fn is_plain_file_name(title: &str) -> bool {
    !title.is_empty()
        && title != "."
        && title != ".."
        && !title.contains(['/', '\\', '\0'])
        && title.len() <= 255
}

/// A file written by [`write_files`].
#[derive(Debug, Clone, Serialize)]
pub struct WrittenFile {
    /// Where.
    pub path: PathBuf,
    /// The layer.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// Writes the titled layers of a stored artifact into `dir` (created if need be), each
/// under its `org.opencontainers.image.title`, as oras does: streamed, checked against its
/// digest, written to a temporary file and renamed. A title that is not a plain file name
/// is refused before anything is written; untitled layers are left out.
pub fn write_files(layout: &Layout, digest: Digest, dir: &Path) -> Result<Vec<WrittenFile>> {
    let stored = layout.resolve(&LayoutRef::Digest(digest))?;
    let manifest = stored.manifest()?;
    let titled: Vec<(&Descriptor, &str)> = manifest
        .layers
        .iter()
        .filter_map(|l| Some((l, l.annotation(annotations::TITLE)?)))
        .collect();
    let mut titles = HashSet::new();
    for (layer, title) in &titled {
        if !is_plain_file_name(title) {
            return Err(ReferrerError::UnsafeTitle {
                digest: layer.digest,
                title: (*title).to_owned(),
            }
            .into());
        }
        if !titles.insert(*title) {
            return Err(ReferrerError::DuplicateTitle((*title).to_owned()).into());
        }
    }
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ReferrerError::WriteFile { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    let mut written = Vec::new();
    for (layer, title) in titled {
        let path = dir.join(title);
        let source = std::fs::File::open(layout.blob_path(&layer.digest)).map_err(|e| {
            Error::from(wasmoci_registry::Error::Io {
                action: "read",
                path: layout.blob_path(&layer.digest),
                source: e,
            })
        })?;
        let mut file = wasmoci_fs::AtomicFile::create(&path).map_err(write_error(&path))?;
        let mut reader = wasmoci_spec::HashingReader::new(source);
        std::io::copy(&mut reader, &mut file).map_err(write_error(&path))?;
        let (actual, size) = reader.finish();
        if actual != layer.digest {
            return Err(ReferrerError::Corrupt {
                digest: layer.digest,
                actual,
                layout: layout.root().to_owned(),
            }
            .into());
        }
        file.commit(0o644).map_err(write_error(&path))?;
        written.push(WrittenFile {
            path,
            digest: layer.digest,
            size,
        });
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_media_types() {
        assert_eq!(
            file_and_type("sbom.json:application/spdx+json"),
            ("sbom.json", "application/spdx+json")
        );
        assert_eq!(
            file_and_type("sbom.json"),
            ("sbom.json", DEFAULT_FILE_MEDIA_TYPE)
        );
        assert_eq!(file_and_type("a:b"), ("a:b", DEFAULT_FILE_MEDIA_TYPE));
    }

    #[test]
    fn titles_that_would_leave_the_directory_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "a\0b"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
        assert!(is_plain_file_name("sbom.spdx.json"));
    }
}
