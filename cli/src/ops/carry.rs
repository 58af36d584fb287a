//! What travels with an artifact when it is copied with `--referrers` (`copy`,
//! `dependency vendor`): its referrers (SBOMs, attestations: manifests whose `subject` is
//! it, and theirs in turn) and cosign's signature manifest (tag `sha256-<hex>.sig`), so
//! that a mirror or an air-gapped layout can still be verified.
//!
//! In a registry they are found as `discover` finds them and listed at the destination
//! as `attach` lists them (the referrers API, else the tag schema). In a layout a
//! referrer is an entry named `NAME@DIGEST` whose manifest has the subject, and the
//! signatures are tagged `NAME:sha256-<hex>.sig`, NAME being the artifact's name there.

use std::collections::HashSet;

use serde::Serialize;
use wasmoci_registry::client::{
    Client, PullOptions, RegistryError, fallback_tag, referrer_descriptor,
};
use wasmoci_registry::cosign::simple::signature_tag;
use wasmoci_registry::{Layout, LayoutRef, Reference, StoredArtifact};
use wasmoci_spec::{Digest, ImageManifest};

use super::referrers::{MAX_DEPTH, ReferrerError, registry};
use super::{Error, Result};
use wasmoci_registry::client::MAX_REFERRERS;

/// One end of a carry: a registry repository, or a layout and the artifact's name in it.
#[derive(Debug, Clone)]
pub enum End<'a> {
    /// A repository (tag and digest ignored).
    Registry(&'a Reference),
    /// A layout, and the name its entries are tagged under (`NAME` of `NAME:TAG`).
    Layout(&'a Layout, &'a str),
}

/// Something carried along.
#[derive(Debug, Clone, Serialize)]
pub struct Carried {
    /// Its manifest digest (the same at both ends).
    pub digest: Digest,
    /// `signatures` (cosign's `.sig` manifest) or the referrer's artifact type.
    pub kind: String,
    /// Where it went.
    pub reference: String,
}

/// What was found to carry: a referrer of `subject`, or the signatures of the artifact.
#[derive(Debug, Clone)]
struct Found {
    digest: Digest,
    /// `Some(tag)` for cosign's signatures (`sha256-<hex>.sig`).
    signatures_tag: Option<String>,
    kind: String,
}

fn too_many(at: String) -> Error {
    ReferrerError::Registry {
        action: "carry the referrers of",
        reference: at.clone(),
        source: Box::new(RegistryError::TooLarge {
            action: "carry the referrers of",
            reference: at,
            what: format!("there are more than {MAX_REFERRERS} referrers in all"),
        }),
    }
    .into()
}

/// Carries the referrers and signatures of `digest` from `from` to `to` (the artifact
/// itself is already there). Each manifest once; at most [`MAX_DEPTH`] levels.
pub fn carry(
    client: &Client,
    digest: Digest,
    from: &End<'_>,
    to: &End<'_>,
) -> Result<Vec<Carried>> {
    let found = match from {
        End::Registry(repo) => found_at_registry(client, repo, digest)?,
        End::Layout(layout, name) => found_in_layout(layout, name, digest)?,
    };
    found
        .into_iter()
        .map(|found| carry_one(client, &found, from, to))
        .collect()
}

fn found_at_registry(client: &Client, repo: &Reference, digest: Digest) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let sig = repo.with_tag(&signature_tag(&digest));
    match client.manifest(&sig) {
        Ok((_, sig_digest, _)) => found.push(Found {
            digest: sig_digest,
            signatures_tag: sig.tag.clone(),
            kind: "signatures".into(),
        }),
        Err(RegistryError::NotFound { .. }) => {}
        Err(e) => return Err(registry("read the signatures of", &sig)(e)),
    }
    let mut seen = HashSet::from([digest]);
    let mut level = vec![digest];
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for subject in level {
            let at = repo.with_digest(subject);
            let listed = client
                .referrers(repo, &subject, None)
                .map_err(registry("list the referrers of", &at))?;
            for d in listed.descriptors {
                if !seen.insert(d.digest) {
                    continue;
                }
                if seen.len() > MAX_REFERRERS {
                    return Err(too_many(at.to_string()));
                }
                found.push(Found {
                    digest: d.digest,
                    signatures_tag: None,
                    kind: wasmoci_registry::client::artifact_type(&d)
                        .unwrap_or(&d.media_type)
                        .to_owned(),
                });
                next.push(d.digest);
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(found)
}

fn found_in_layout(layout: &Layout, name: &str, digest: Digest) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let sig_tag = format!("{name}:{}", signature_tag(&digest));
    if let Ok(stored) = layout.resolve(&LayoutRef::Tag(sig_tag)) {
        found.push(Found {
            digest: stored.descriptor.digest,
            signatures_tag: Some(signature_tag(&digest)),
            kind: "signatures".into(),
        });
    }
    // Every manifest in the layout with a subject, once; then the levels from `digest`.
    let index = layout.index()?;
    let mut subjects: Vec<(Digest, Digest, String)> = Vec::new();
    let mut read = HashSet::new();
    for entry in &index.manifests {
        if !read.insert(entry.digest) {
            continue;
        }
        let stored = layout.resolve(&LayoutRef::Digest(entry.digest))?;
        let Ok(manifest) = stored.manifest() else {
            continue;
        };
        if let Some(subject) = &manifest.subject {
            let kind = manifest
                .artifact_type
                .clone()
                .unwrap_or_else(|| manifest.config.media_type.clone());
            subjects.push((subject.digest, entry.digest, kind));
        }
    }
    let mut seen = HashSet::from([digest]);
    let mut level = vec![digest];
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for (subject, referrer, kind) in &subjects {
            if level.contains(subject) && seen.insert(*referrer) {
                found.push(Found {
                    digest: *referrer,
                    signatures_tag: None,
                    kind: kind.clone(),
                });
                next.push(*referrer);
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(found)
}

/// Every layer, wasm or not: a referrer is carried as it is.
fn whole() -> PullOptions {
    PullOptions {
        require_wasm: false,
        all_layers: true,
    }
}

/// The tag `found` gets in a layout under `name`.
fn layout_tag(name: &str, found: &Found) -> String {
    match &found.signatures_tag {
        Some(tag) => format!("{name}:{tag}"),
        None => format!("{name}@{}", found.digest),
    }
}

fn carry_one(client: &Client, found: &Found, from: &End<'_>, to: &End<'_>) -> Result<Carried> {
    let scratch = tempfile::tempdir().map_err(Error::TempDir)?;
    // Into a layout first (the destination's, or a scratch one on the way to a registry).
    let (layout, stored): (Layout, StoredArtifact) = match from {
        End::Registry(repo) => {
            let src = repo.with_digest(found.digest);
            let (layout, tag) = match to {
                End::Layout(layout, name) => ((*layout).clone(), Some(layout_tag(name, found))),
                End::Registry(_) => (Layout::at(scratch.path()), None),
            };
            let pulled = client
                .pull_with(&src, &layout, tag.as_deref(), whole())
                .map_err(registry("read", &src))?;
            let stored = layout.resolve(&LayoutRef::Digest(pulled.manifest.digest))?;
            (layout, stored)
        }
        End::Layout(layout, _) => {
            let stored = layout.resolve(&LayoutRef::Digest(found.digest))?;
            if let End::Layout(to_layout, to_name) = to {
                let tag = layout_tag(to_name, found);
                super::copy::copy_local(layout, &stored, to_layout, &tag)?;
                return Ok(Carried {
                    digest: found.digest,
                    kind: found.kind.clone(),
                    reference: format!("oci:{}:{tag}", to_layout.root().display()),
                });
            }
            ((*layout).clone(), stored)
        }
    };
    match to {
        End::Layout(to_layout, to_name) => Ok(Carried {
            digest: found.digest,
            kind: found.kind.clone(),
            reference: format!(
                "oci:{}:{}",
                to_layout.root().display(),
                layout_tag(to_name, found)
            ),
        }),
        End::Registry(repo) => {
            let dest = match &found.signatures_tag {
                Some(tag) => repo.with_tag(tag),
                None => Reference {
                    tag: None,
                    digest: None,
                    ..(*repo).clone()
                },
            };
            let source = match from {
                End::Registry(src) => Some(*src),
                End::Layout(..) => None,
            };
            let pushed = client
                .push_from(&layout, &stored, &dest, source)
                .map_err(registry("push", &dest))?;
            let manifest: ImageManifest = stored.manifest()?;
            if let Some(subject) = &manifest.subject
                && !pushed.subject_accepted
            {
                let descriptor = referrer_descriptor(&stored.manifest_bytes, &manifest);
                let index = repo.with_tag(&fallback_tag(&subject.digest));
                client
                    .add_to_tag_schema(repo, &subject.digest, &descriptor)
                    .map_err(registry("update", &index))?;
            }
            Ok(Carried {
                digest: found.digest,
                kind: found.kind.clone(),
                reference: format!("{}@{}", dest, found.digest),
            })
        }
    }
}
