//! `wasmoci copy`: an artifact between registries and layouts, byte for byte, so its
//! digest stays the same.

use serde::Serialize;
use wasmoci_registry::client::{Client, PullOptions, PullReport, PushReport, RegistryError};
use wasmoci_registry::{Layout, LayoutRef, StoredArtifact};
use wasmoci_spec::Digest;

use crate::ops::artifact::{Endpoint, dest_tag};
use crate::ops::{Blob, Error, Result};

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The source, as named.
    pub source: String,
    /// The destination `@` the manifest digest.
    pub reference: String,
    /// The manifest digest (the same at both ends).
    pub digest: Digest,
    /// Blobs written to the destination: uploaded to a registry, or written into a
    /// layout.
    pub uploaded: Vec<Blob>,
    /// Blobs the destination already had.
    pub skipped: Vec<Blob>,
    /// Blobs mounted from another repository of the same registry.
    pub mounted: Vec<Blob>,
    /// Referrers and signatures carried along (`--referrers`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<crate::ops::carry::Carried>,
}

/// What moved, as a push reports it.
#[derive(Default)]
pub(crate) struct Moved {
    uploaded: Vec<Blob>,
    skipped: Vec<Blob>,
    mounted: Vec<Blob>,
}

impl Moved {
    fn pushed(report: &PushReport) -> Self {
        Moved {
            uploaded: Blob::list(&report.uploaded),
            skipped: Blob::list(&report.skipped),
            mounted: Blob::list(&report.mounted),
        }
    }

    fn pulled(report: &PullReport) -> Self {
        Moved {
            uploaded: Blob::list(&report.downloaded),
            skipped: Blob::list(&report.reused),
            mounted: Vec::new(),
        }
    }
}

/// Copies `source` (named `source_text`) to `dest` (named `dest_text`); with
/// `referrers`, its referrers and cosign signatures too ([`carry`](crate::ops::carry)).
pub fn copy(
    client: &Client,
    source: Endpoint,
    source_text: &str,
    dest: Endpoint,
    dest_text: &str,
    referrers: bool,
) -> Result<CopyReport> {
    let ends = referrers.then(|| (source.clone(), dest.clone()));
    let (digest, moved) = match (source, dest) {
        (Endpoint::Registry(src), Endpoint::Registry(dst)) => {
            let scratch = tempfile::tempdir().map_err(Error::TempDir)?;
            let layout = Layout::at(scratch.path());
            let pulled = client
                .pull_with(&src, &layout, None, every_layer())
                .map_err(|e| Error::Read {
                    name: src.to_string(),
                    source: e.into(),
                })?;
            let stored = layout.resolve(&LayoutRef::Digest(pulled.manifest.digest))?;
            let pushed = client
                .push_from(&layout, &stored, &dst, Some(&src))
                .map_err(|e| write_error(&dst, e))?;
            (pulled.manifest.digest, Moved::pushed(&pushed))
        }
        (Endpoint::Registry(src), Endpoint::Local(layout, reference)) => {
            let tag = dest_tag(&reference, &src.to_string())?;
            let pulled = client
                .pull_with(&src, &layout, Some(&tag), every_layer())
                .map_err(|e| Error::Copy {
                    reference: Box::new(src.clone()),
                    source: Box::new(e),
                })?;
            (pulled.manifest.digest, Moved::pulled(&pulled))
        }
        (Endpoint::Local(layout, reference), Endpoint::Registry(dst)) => {
            let stored = resolve(&layout, &reference, source_text)?;
            let pushed = client
                .push(&layout, &stored, &dst)
                .map_err(|e| write_error(&dst, e))?;
            (stored.descriptor.digest, Moved::pushed(&pushed))
        }
        (Endpoint::Local(from, reference), Endpoint::Local(to, dst_ref)) => {
            let stored = resolve(&from, &reference, source_text)?;
            let tag = dest_tag(&dst_ref, source_text)?;
            copy_local(&from, &stored, &to, &tag)?
        }
    };
    let carried = match ends {
        Some((source, dest)) => carry_ends(client, digest, &source, source_text, &dest)?,
        None => Vec::new(),
    };
    Ok(CopyReport {
        source: source_text.to_owned(),
        reference: format!("{dest_text}@{digest}"),
        digest,
        uploaded: moved.uploaded,
        skipped: moved.skipped,
        mounted: moved.mounted,
        referrers: carried,
    })
}

/// The two ends of a copy as a carry sees them: a registry repository, or a layout and
/// the artifact's name in it.
fn carry_ends(
    client: &Client,
    digest: Digest,
    source: &Endpoint,
    source_text: &str,
    dest: &Endpoint,
) -> Result<Vec<crate::ops::carry::Carried>> {
    use crate::ops::carry::{End, carry};
    let source_name = match source {
        Endpoint::Local(layout, reference) => Some(
            resolve(layout, reference, source_text)?
                .tag
                .map(|t| wasmoci_registry::name_of(&t).to_owned())
                .unwrap_or_else(|| source_text.to_owned()),
        ),
        Endpoint::Registry(_) => None,
    };
    let dest_name = match dest {
        Endpoint::Local(_, reference) => {
            Some(wasmoci_registry::name_of(&dest_tag(reference, source_text)?).to_owned())
        }
        Endpoint::Registry(_) => None,
    };
    let from = match (source, &source_name) {
        (Endpoint::Registry(r), _) => End::Registry(r),
        (Endpoint::Local(layout, _), Some(name)) => End::Layout(layout, name),
        (Endpoint::Local(..), None) => unreachable!("a layout source has a name"),
    };
    let to = match (dest, &dest_name) {
        (Endpoint::Registry(r), _) => End::Registry(r),
        (Endpoint::Local(layout, _), Some(name)) => End::Layout(layout, name),
        (Endpoint::Local(..), None) => unreachable!("a layout destination has a name"),
    };
    carry(client, digest, &from, &to)
}

/// A copy moves the artifact as it is: every layer, wasm or not (within the client's
/// blob size limit).
fn every_layer() -> PullOptions {
    PullOptions {
        all_layers: true,
        ..PullOptions::default()
    }
}

fn resolve(layout: &Layout, reference: &LayoutRef, name: &str) -> Result<StoredArtifact> {
    layout.resolve(reference).map_err(|e| Error::Read {
        name: name.to_owned(),
        source: e.into(),
    })
}

fn write_error(dst: &wasmoci_registry::Reference, source: RegistryError) -> Error {
    Error::Write {
        reference: Box::new(dst.clone()),
        source: Box::new(source),
    }
}

/// Layout to layout: each blob the destination lacks is streamed across (digest and size
/// checked on the way, never whole in memory), then the manifest is tagged.
pub(crate) fn copy_local(
    from: &Layout,
    stored: &StoredArtifact,
    to: &Layout,
    tag: &str,
) -> Result<(Digest, Moved)> {
    let manifest = stored.manifest()?;
    to.create()?;
    let mut moved = Moved::default();
    for descriptor in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let blob = Blob {
            digest: descriptor.digest,
            size: descriptor.size,
        };
        if to.blob_path(&descriptor.digest).is_file() {
            moved.skipped.push(blob);
            continue;
        }
        moved.uploaded.push(blob);
        let path = from.blob_path(&descriptor.digest);
        let blob = std::fs::File::open(&path).map_err(|source| Error::ReadBlob {
            digest: descriptor.digest,
            source,
        })?;
        to.put_blob_from(blob, Some(descriptor))
            .map_err(|source| Error::CopyBlob {
                digest: descriptor.digest,
                source: Box::new(source),
            })?;
    }
    let digest = to.store(&stored.manifest_bytes, &[], Some(tag))?.digest;
    Ok((digest, moved))
}
