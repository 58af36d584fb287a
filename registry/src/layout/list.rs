//! What the index lists, and taking entries out of it.

use std::fs::File;
use std::io::Read;

use wasmoci_spec::annotations::REF_NAME;
use wasmoci_spec::{Digest, ImageManifest, Timestamp, WasmKind, media_types};

use super::{INDEX_FILE, Layout, LayoutRef, tags_of};
use crate::error::{Error, Result};

/// What a listed manifest holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A wasm layer holding a component.
    Component,
    /// A wasm layer holding a core module.
    Module,
    /// An ordinary container image (the image-compat format: the wasm in a tar layer).
    Image,
    /// An image index (several manifests).
    Index,
    /// Anything else, or a manifest that cannot be read.
    Unknown,
}

impl ArtifactKind {
    /// `component`, `module`, `image`, `index` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Component => "component",
            ArtifactKind::Module => "module",
            ArtifactKind::Image => "image",
            ArtifactKind::Index => "index",
            ArtifactKind::Unknown => "unknown",
        }
    }
}

/// One entry of the index, summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Its `org.opencontainers.image.ref.name`; `None` for a manifest stored by digest.
    pub tag: Option<String>,
    /// The manifest digest.
    pub digest: Digest,
    /// What it holds.
    pub kind: ArtifactKind,
    /// The config's `os`, when it has one.
    pub os: Option<String>,
    /// The config's `created`, when it has one.
    pub created: Option<Timestamp>,
    /// The manifest, its config and its layers, in bytes (as their descriptors say).
    pub size: u64,
}

/// An index entry [`Layout::remove`] took out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The tag it had (`None`: an untagged entry).
    pub tag: Option<String>,
    /// The manifest.
    pub digest: Digest,
    /// Whether no entry of the index names this manifest any more (`gc` may then free
    /// its blobs).
    pub manifest_gone: bool,
}

impl Layout {
    /// Every entry of the index, in index order, with what its manifest and config say.
    /// A manifest or config that cannot be read makes its entry `Unknown`, not an error.
    pub fn list(&self) -> Result<Vec<Listing>> {
        self.check()?;
        let _lock = self.lock_shared()?;
        let index = self.index()?;
        Ok(index
            .manifests
            .iter()
            .map(|descriptor| {
                let mut listing = Listing {
                    tag: descriptor.annotation(REF_NAME).map(str::to_owned),
                    digest: descriptor.digest,
                    kind: ArtifactKind::Unknown,
                    os: None,
                    created: None,
                    size: descriptor.size,
                };
                if descriptor.media_type == media_types::OCI_INDEX {
                    listing.kind = ArtifactKind::Index;
                } else if let Some(manifest) = self
                    .read_blob(&descriptor.digest)
                    .ok()
                    .and_then(|bytes| ImageManifest::from_json(&bytes).ok())
                {
                    self.describe(&manifest, &mut listing);
                }
                listing
            })
            .collect())
    }

    fn describe(&self, manifest: &ImageManifest, listing: &mut Listing) {
        listing.size += manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        if let Some(config) = self
            .read_blob(&manifest.config.digest)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        {
            let text = |key| config.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            listing.os = text("os").filter(|os| !os.is_empty());
            listing.created = text("created").and_then(|t| Timestamp::parse(&t));
        }
        listing.kind = match manifest.wasm_layers().next() {
            // The preamble says it; the layer need not be read whole.
            Some((_, layer)) => {
                let mut preamble = [0u8; 8];
                let read = File::open(self.blob_path(&layer.digest))
                    .and_then(|mut f| f.read_exact(&mut preamble));
                match read.ok().and_then(|()| WasmKind::detect(&preamble)) {
                    Some(WasmKind::Component) => ArtifactKind::Component,
                    Some(WasmKind::Module) => ArtifactKind::Module,
                    None => ArtifactKind::Unknown,
                }
            }
            None if manifest.config.media_type == media_types::OCI_IMAGE_CONFIG => {
                ArtifactKind::Image
            }
            None => ArtifactKind::Unknown,
        };
    }

    /// Takes entries out of the index, as one change under the index lock: a
    /// [`LayoutRef::Tag`] its entry (the manifest stays while another tag names it), a
    /// [`LayoutRef::Digest`] every entry of that manifest, [`LayoutRef::Named`] those of
    /// that manifest under that name, [`LayoutRef::Only`] the only
    /// entry. When any reference names nothing in the index as it was, nothing is removed
    /// and the error names it; two references to the same manifest are fine. Blobs stay; [`gc`](Self::gc) removes those no manifest reaches any more.
    pub fn remove(&self, references: &[LayoutRef]) -> Result<Vec<Removal>> {
        self.check()?;
        let _lock = self.lock()?;
        let mut index = self.index()?;
        // Each reference must name something in the index as it is: naming the same
        // manifest twice (a tag and its digest) is fine, and errors list what is there.
        let original = index.manifests.clone();
        let available = tags_of(&index);
        let mut removed = Vec::new();
        for reference in references {
            let matches = |d: &wasmoci_spec::Descriptor| reference.matches(d);
            let found = original.iter().filter(|d| matches(d)).count();
            match reference {
                LayoutRef::Only if found == 1 => {}
                LayoutRef::Only if found == 0 => {
                    return Err(Error::Empty {
                        layout: self.root.clone(),
                    });
                }
                LayoutRef::Only => {
                    return Err(Error::Ambiguous {
                        layout: self.root.clone(),
                        count: found,
                        tags: available,
                    });
                }
                _ if found > 0 => {}
                LayoutRef::Digest(digest) => {
                    return Err(Error::ManifestNotFound {
                        digest: *digest,
                        layout: self.root.clone(),
                    });
                }
                LayoutRef::Named { name, digest } => {
                    return Err(self.not_at_digest(&original, name, digest));
                }
                LayoutRef::Tag(tag) => {
                    return Err(Error::TagNotFound {
                        tag: tag.clone(),
                        layout: self.root.clone(),
                        available,
                    });
                }
            }
            index.manifests.retain(|d| {
                if matches(d) {
                    removed.push(Removal {
                        tag: d.annotation(REF_NAME).map(str::to_owned),
                        digest: d.digest,
                        manifest_gone: false,
                    });
                    false
                } else {
                    true
                }
            });
        }
        for removal in &mut removed {
            removal.manifest_gone = !index.manifests.iter().any(|d| d.digest == removal.digest);
        }
        self.write_atomically(&self.root.join(INDEX_FILE), &index.to_json())?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use wasmoci_spec::{Blob, Descriptor};

    use super::*;

    fn manifest(layer: &[u8], note: &str) -> (Vec<u8>, Descriptor, Descriptor) {
        let layer = Descriptor::for_bytes(media_types::WASM_LAYER, layer);
        let config_bytes = br#"{"os":"wasip2","created":"1970-01-01T00:00:00Z"}"#;
        let config = Descriptor::for_bytes(media_types::WASM_CONFIG_V0, config_bytes);
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}],"annotations":{{"n":"{note}"}}}}"#,
            media_types::OCI_MANIFEST,
            serde_json::to_string(&config).unwrap(),
            serde_json::to_string(&layer).unwrap()
        );
        (bytes.into_bytes(), config, layer)
    }

    #[test]
    fn lists_tagged_and_untagged_entries_and_removes_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        let wasm = b"\0asm\x0d\0\x01\0";
        let config_bytes: &[u8] = br#"{"os":"wasip2","created":"1970-01-01T00:00:00Z"}"#;
        let (a, _, _) = manifest(wasm, "a");
        let (b, _, _) = manifest(wasm, "b");
        let blobs = [Blob::hash(config_bytes), Blob::hash(&wasm[..])];
        let a_d = layout.store(&a, &blobs, Some("app:1")).unwrap().digest;
        layout.store(&a, &[], Some("app:latest")).unwrap();
        let b_d = layout.store(&b, &blobs, None).unwrap().digest;
        // Stored again by digest: already listed, nothing changes.
        layout.store(&a, &[], None).unwrap();

        let listed = layout.list().unwrap();
        let summary: Vec<_> = listed
            .iter()
            .map(|l| (l.tag.as_deref(), l.digest))
            .collect();
        assert_eq!(
            summary,
            [(Some("app:1"), a_d), (Some("app:latest"), a_d), (None, b_d)]
        );
        assert_eq!(listed[0].kind, ArtifactKind::Component);
        assert_eq!(listed[0].os.as_deref(), Some("wasip2"));
        assert_eq!(listed[0].created.unwrap().unix_seconds(), 0);
        assert_eq!(
            listed[0].size,
            (a.len() + config_bytes.len() + wasm.len()) as u64
        );

        // One name that is not there: nothing is removed.
        let err = layout
            .remove(&[
                LayoutRef::Tag("app:1".into()),
                LayoutRef::Tag("nope".into()),
            ])
            .unwrap_err();
        assert!(
            err.to_string().starts_with("no artifact tagged `nope`")
                && err.to_string().ends_with("(it has `app:1`, `app:latest`)"),
            "{err}"
        );
        let err = layout
            .remove(&[LayoutRef::Digest(Digest::of(b"x"))])
            .unwrap_err();
        assert!(err.to_string().starts_with("no manifest `sha256:"), "{err}");
        assert_eq!(layout.list().unwrap().len(), 3);

        // The same manifest named twice, by tag and by digest, in one call: fine.
        let twice = layout
            .remove(&[LayoutRef::Tag("app:1".into()), LayoutRef::Digest(a_d)])
            .unwrap();
        assert_eq!(twice.len(), 2);
        assert!(twice.iter().all(|r| r.manifest_gone));
        layout.store(&a, &[], Some("app:1")).unwrap();
        layout.store(&a, &[], Some("app:latest")).unwrap();

        // A tag: the manifest stays while another tag names it.
        let removed = layout.remove(&[LayoutRef::Tag("app:1".into())]).unwrap();
        assert!(!removed[0].manifest_gone);
        let removed = layout.remove(&[LayoutRef::Digest(a_d)]).unwrap();
        assert_eq!(removed.len(), 1);
        assert!(removed[0].manifest_gone);
        assert_eq!(layout.tags().unwrap(), Vec::<String>::new());
        assert_eq!(layout.list().unwrap()[0].digest, b_d);

        // Tagging a manifest stored by digest replaces its untagged entry.
        layout.store(&b, &[], Some("b:1")).unwrap();
        let listed = layout.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].tag.as_deref(), Some("b:1"));
    }
}
