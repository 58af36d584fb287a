//! The parts of `wasmoci publish` (build → check → push) that are not the build or the
//! push themselves: checking what was built, and the receipt.

use std::collections::BTreeMap;

use serde::Serialize;
use wasmoci_registry::client::PushReport;
use wasmoci_registry::{LayoutRef, Reference};
use wasmoci_spec::{Descriptor, Digest};

use crate::ops::artifact::{Loaded, StoredParts, load};
use crate::ops::build::BuildReport;
use crate::ops::check::{CheckOptions, CheckReport, check_loaded};
use crate::ops::{Blob, Result};
use crate::policy::ImportPolicy;
use crate::reference::ArtifactRef;

/// What was built, loaded back and checked as `wasmoci validate` would (all wasm
/// features, `policy`, no world).
pub fn check_built(built: &BuildReport, policy: &ImportPolicy) -> Result<(Loaded, CheckReport)> {
    let artifact = ArtifactRef::Layout {
        dir: built.layout.clone(),
        reference: LayoutRef::Tag(built.tag.clone()),
    };
    let loaded = load(&artifact)?;
    let options = CheckOptions {
        features: wasmparser::WasmFeatures::all(),
        policy,
        world: None,
    };
    let report = check_loaded(&loaded, &options)?;
    Ok((loaded, report))
}

/// The receipt of a publish: every digest, size, annotation and timing.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    /// `DEST@DIGEST`.
    pub reference: String,
    /// The registry host.
    pub registry: String,
    /// The repository.
    pub repository: String,
    /// The tag.
    pub tag: Option<String>,
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest.
    pub manifest: Blob,
    /// The config.
    pub config: Layer,
    /// The layers.
    pub layers: Vec<Layer>,
    /// The manifest annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Blobs uploaded.
    pub uploaded: Vec<Blob>,
    /// Blobs the registry had.
    pub skipped: Vec<Blob>,
    /// The signature `--sign` added (cosign's format, at `sha256-<hex>.sig`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::ops::signatures::SignReport>,
    /// What `--sbom` attached: referrers of the manifest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<crate::ops::referrers::Attached>,
    /// How long each step took.
    pub timings_ms: Timings,
    /// wasmoci's version.
    pub wasmoci: &'static str,
}

/// A config or layer descriptor in a receipt.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

impl From<&Descriptor> for Layer {
    fn from(d: &Descriptor) -> Self {
        Layer {
            digest: d.digest,
            size: d.size,
            media_type: d.media_type.clone(),
        }
    }
}

/// Milliseconds per step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timings {
    /// The build.
    pub build: u128,
    /// The check.
    pub validate: u128,
    /// The push.
    pub push: u128,
    /// Attaching SBOMs and signing, after the push.
    pub sign: u128,
    /// Everything.
    pub total: u128,
}

impl Receipt {
    /// The receipt of pushing `parts` to `dest`.
    pub fn new(
        dest: &Reference,
        parts: &StoredParts,
        pushed: &PushReport,
        timings_ms: Timings,
    ) -> Result<Self> {
        let manifest = parts.manifest()?;
        let stored = &parts.stored;
        Ok(Receipt {
            reference: format!("{dest}@{}", stored.descriptor.digest),
            registry: dest.registry.clone(),
            repository: dest.repository.clone(),
            tag: dest.tag.clone(),
            digest: stored.descriptor.digest,
            manifest: Blob {
                digest: stored.descriptor.digest,
                size: stored.manifest_bytes.len() as u64,
            },
            config: Layer::from(&manifest.config),
            layers: manifest.layers.iter().map(Layer::from).collect(),
            annotations: manifest.annotations.clone(),
            uploaded: Blob::list(&pushed.uploaded),
            skipped: Blob::list(&pushed.skipped),
            signature: None,
            referrers: Vec::new(),
            timings_ms,
            wasmoci: env!("CARGO_PKG_VERSION"),
        })
    }
}
