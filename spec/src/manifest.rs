use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Blob, Digest, Error, media_types};

/// Standard `org.opencontainers.image.*` annotation keys.
pub mod annotations {
    /// When the artifact was built (RFC 3339).
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// Who made it.
    pub const AUTHORS: &str = "org.opencontainers.image.authors";
    /// Where to find out more.
    pub const URL: &str = "org.opencontainers.image.url";
    /// Where the source code is.
    pub const SOURCE: &str = "org.opencontainers.image.source";
    /// The packaged version.
    pub const VERSION: &str = "org.opencontainers.image.version";
    /// The source control revision.
    pub const REVISION: &str = "org.opencontainers.image.revision";
    /// SPDX license expression.
    pub const LICENSES: &str = "org.opencontainers.image.licenses";
    /// Human-readable title (on the layer: the file name).
    pub const TITLE: &str = "org.opencontainers.image.title";
    /// Human-readable description.
    pub const DESCRIPTION: &str = "org.opencontainers.image.description";
    /// The name a manifest is tagged with in an OCI image layout's `index.json`.
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
}

/// An OCI content descriptor. Fields we do not model are kept in `extra`, so a layout's
/// `index.json` written by another tool survives a round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Annotations, ordered by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Anything else (`platform`, `urls`, `artifactType`, …), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Descriptor {
    /// A descriptor for `bytes` of `media_type`.
    pub fn for_bytes(media_type: &str, bytes: &[u8]) -> Self {
        Self::for_blob(media_type, &Blob::hash(bytes))
    }

    /// A descriptor for `blob` of `media_type`.
    pub fn for_blob(media_type: &str, blob: &Blob<'_>) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: blob.digest(),
            size: blob.size(),
            annotations: None,
            extra: BTreeMap::new(),
        }
    }

    /// The value of annotation `key`, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An OCI image manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json`; some producers leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Not used by the CNCF layout; kept when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers; exactly one wasm layer in the CNCF layout.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// OCI 1.1 referrers subject; kept when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Manifest annotations, ordered by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageManifest {
    /// A manifest of one config and one layer, as we write them: `mediaType` set, the
    /// `org.opencontainers.image.created` annotation set to `created` unless `annotations`
    /// has it.
    pub(crate) fn single_layer(
        config: Descriptor,
        layer: Descriptor,
        mut annotations: BTreeMap<String, String>,
        created: crate::Timestamp,
    ) -> Self {
        annotations
            .entry(annotations::CREATED.to_owned())
            .or_insert_with(|| created.to_string());
        ImageManifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config,
            layers: vec![layer],
            subject: None,
            annotations: Some(annotations),
        }
    }

    /// Parses manifest bytes.
    pub fn from_json(bytes: &[u8]) -> crate::Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::Json {
            document: "manifest",
            reason: e.to_string(),
        })
    }

    /// The canonical, compact serialization.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serializes")
    }

    /// The indexes and descriptors of the layers with a wasm media type we can read.
    pub fn wasm_layers(&self) -> impl Iterator<Item = (usize, &Descriptor)> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| media_types::is_readable_wasm_layer(&l.media_type))
    }

    /// The value of annotation `key`, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An OCI image index, as in an image layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests, in insertion order.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Index annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Default for ImageIndex {
    fn default() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.to_owned()),
            manifests: Vec::new(),
            annotations: None,
        }
    }
}

impl ImageIndex {
    /// Parses `index.json` bytes.
    pub fn from_json(bytes: &[u8]) -> crate::Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::Json {
            document: "index.json",
            reason: e.to_string(),
        })
    }

    /// Pretty-printed, as other layout writers do.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("an index always serializes");
        out.push(b'\n');
        out
    }
}
