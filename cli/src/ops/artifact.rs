//! Where artifacts are and how they are read: load one wherever its reference points,
//! the store's naming rule for pulled artifacts, pulling what the store lacks, and the
//! ends of a push, convert or copy.

use std::path::{Path, PathBuf};

use serde::Serialize;
use wasmoci_registry::client::{Client, PullReport};
use wasmoci_registry::{Layout, LayoutRef, Reference, StoredArtifact};
use wasmoci_spec::{Descriptor, ImageManifest, WasmConfig};

use crate::env;
use crate::ops::build::{Build, BuildRequest, build};
use crate::ops::componentize::read_wasm;
use crate::ops::{Blob, Error, Result};
use crate::reference::ArtifactRef;

/// The embedded store, `$WASMOCI_HOME/store`; it remembers which registry repositories
/// its blobs came from or went to, so a push can mount them.
pub fn store_layout() -> Result<Layout> {
    Ok(Layout::at(env::home()?.store()).remembering_sources())
}

/// The store's naming rule for pulled artifacts (in the registry crate, so the shim's
/// direct pulls follow it too).
pub use wasmoci_registry::store::{locate as stored_ref, tag_for as store_tag};

/// When to fetch an artifact a registry reference names: `Missing` when the store lacks
/// it, `Always` (a tag may have moved), `Never` (the store must have it). The variants
/// carry no doc comments of their own: clap would make them a long help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
}

/// What a pull did, for people and for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    /// `HOST/REPO:TAG@DIGEST` (or `HOST/REPO@DIGEST`).
    pub reference: String,
    /// The manifest digest.
    pub digest: wasmoci_spec::Digest,
    /// The layout it went into.
    pub layout: PathBuf,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Blobs downloaded.
    pub downloaded: Vec<Blob>,
    /// Blobs the layout already had.
    pub reused: Vec<Blob>,
    /// Where the wasm layer was written too, if asked.
    pub output: Option<PathBuf>,
    /// What was pulled, as named.
    #[serde(skip)]
    pub source: Reference,
}

/// Pulls `source` into `layout`, tagged by the store's rule ([`store_tag`]). A layout
/// this pull creates is removed again when the pull fails.
pub fn pull(client: &Client, source: &Reference, layout: &Layout) -> Result<Pulled> {
    let fresh = !layout.root().exists();
    let tag = store_tag(source);
    let report: PullReport = match client.pull(source, layout, tag.as_deref()) {
        Ok(report) => report,
        Err(e) => {
            // A layout this pull created goes away again, unless something was stored
            // in it meanwhile (a concurrent build or pull).
            if fresh && layout.index().is_ok_and(|index| index.manifests.is_empty()) {
                let _ = std::fs::remove_dir_all(layout.root());
            }
            return Err(Error::Pull {
                reference: Box::new(source.clone()),
                source: Box::new(e),
            });
        }
    };
    let name = tag.unwrap_or_else(|| {
        Reference {
            tag: None,
            digest: None,
            ..source.clone()
        }
        .to_string()
    });
    Ok(Pulled {
        reference: format!("{name}@{}", report.manifest.digest),
        digest: report.manifest.digest,
        layout: layout.root().to_owned(),
        downloaded_bytes: report.downloaded.iter().map(|(_, s)| s).sum(),
        downloaded: Blob::list(&report.downloaded),
        reused: Blob::list(&report.reused),
        output: None,
        source: source.clone(),
    })
}

/// Whether `reference` must be pulled into the store (`store`) before it is used, as
/// `policy` says; with `never`, an error saying how to pull what the store lacks.
pub fn needs_pull(reference: &Reference, policy: PullPolicy, store: &Layout) -> Result<bool> {
    let stored = store.resolve(&stored_ref(reference));
    match (policy, stored) {
        (PullPolicy::Always, _) | (PullPolicy::Missing, Err(_)) => Ok(true),
        (PullPolicy::Missing | PullPolicy::Never, Ok(_)) => Ok(false),
        (PullPolicy::Never, Err(e)) => Err(not_stored(reference, e)),
    }
}

/// `reference` is not in the store: why, with the names its digest is stored under.
fn not_stored(reference: &Reference, e: wasmoci_registry::Error) -> Error {
    let names = match e {
        wasmoci_registry::Error::OtherNames { names, .. } => names,
        _ => Vec::new(),
    };
    Error::NotStored {
        reference: Box::new(reference.clone()),
        names,
    }
}

/// An artifact read from wherever its reference points.
pub enum Loaded {
    /// A `.wasm`/`.wat` file.
    File {
        /// The file.
        path: PathBuf,
        /// Its bytes (WAT compiled).
        bytes: Vec<u8>,
    },
    /// A manifest in a layout (or the store), digest-checked; its blobs are read on
    /// demand.
    Stored(Box<StoredParts>),
}

/// A stored artifact: the manifest and config, and the layout its layers are in.
pub struct StoredParts {
    /// How to print the reference (`oci:DIR:TAG`, `NAME:TAG`).
    pub display: String,
    /// The layout.
    pub layout: Layout,
    /// The manifest's descriptor and bytes.
    pub stored: StoredArtifact,
    /// The manifest, or why it does not parse.
    pub manifest: Result<ImageManifest, String>,
    /// The config blob (empty when the manifest does not parse).
    pub config_bytes: Vec<u8>,
}

impl StoredParts {
    /// The manifest, or an error naming the artifact.
    pub fn manifest(&self) -> Result<&ImageManifest> {
        self.manifest.as_ref().map_err(|e| Error::Read {
            name: self.display.clone(),
            source: e.clone().into(),
        })
    }

    /// The config, parsed.
    pub fn config(&self) -> Result<WasmConfig> {
        WasmConfig::from_json(&self.config_bytes).map_err(|e| Error::ReadConfig {
            name: self.display.clone(),
            source: e.into(),
        })
    }

    /// Every layer, digest-checked (empty when the manifest does not parse).
    pub fn layers(&self) -> Result<Vec<Vec<u8>>> {
        let Ok(manifest) = &self.manifest else {
            return Ok(Vec::new());
        };
        manifest
            .layers
            .iter()
            .map(|l| self.layout.read_blob(&l.digest))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.layers_error(e))
    }

    /// The single wasm layer (its index and descriptor), when there is exactly one.
    pub fn wasm_descriptor(&self) -> Option<(usize, &Descriptor)> {
        let manifest = self.manifest.as_ref().ok()?;
        let mut layers = manifest.wasm_layers();
        let found = layers.next()?;
        layers.next().is_none().then_some(found)
    }

    /// The single wasm layer: its descriptor and bytes (only that blob is read), or an
    /// error saying the artifact does not have exactly one.
    pub fn wasm(&self) -> Result<(&Descriptor, Vec<u8>)> {
        self.manifest()?;
        let Some((_, descriptor)) = self.wasm_descriptor() else {
            return Err(Error::NotOneWasmLayer(self.display.clone()));
        };
        let bytes = self
            .layout
            .read_blob(&descriptor.digest)
            .map_err(|e| self.layers_error(e))?;
        Ok((descriptor, bytes))
    }

    fn layers_error(&self, source: wasmoci_registry::Error) -> Error {
        Error::ReadLayers {
            name: self.display.clone(),
            source: Box::new(source),
        }
    }
}

/// Reads the artifact `reference` names: a file whole; a stored artifact's manifest and
/// config (layers on demand). A registry reference is read from the store, where a pull
/// put it ([`needs_pull`], [`pull`]).
pub fn load(reference: &ArtifactRef) -> Result<Loaded> {
    let (layout, stored, display) = match reference {
        ArtifactRef::File(path) => {
            let bytes = read_wasm(path)?;
            return Ok(Loaded::File {
                path: path.clone(),
                bytes,
            });
        }
        ArtifactRef::Registry(r) => {
            let layout = store_layout()?;
            let stored = layout
                .resolve(&stored_ref(r))
                .map_err(|e| not_stored(r, e))?;
            (layout, stored, r.to_string())
        }
        ArtifactRef::Layout { dir, reference: r } => {
            let layout = Layout::open(dir)?;
            let stored = layout.resolve(r).map_err(|e| Error::Read {
                name: reference.to_string(),
                source: e.into(),
            })?;
            let display = match (r, &stored.tag) {
                (LayoutRef::Only, Some(tag)) => format!("oci:{}:{tag}", dir.display()),
                _ => reference.to_string(),
            };
            (layout, stored, display)
        }
        ArtifactRef::Store(r) => {
            let layout = store_layout()?;
            // A name with a dot and no tag may have been meant as a file.
            let text = reference.to_string();
            let hint = if text.ends_with(":latest") && text.contains('.') {
                "; to read a file, name it `FILE.wasm` or `FILE.wat`"
            } else {
                ""
            };
            if !layout.root().join("oci-layout").exists() {
                return Err(Error::EmptyStore {
                    reference: text,
                    store: layout.root().to_owned(),
                    hint,
                });
            }
            let stored = match layout.resolve(r) {
                Ok(stored) => stored,
                Err(_) if !hint.is_empty() => {
                    return Err(Error::NotInStore {
                        reference: text,
                        store: layout.root().to_owned(),
                        hint,
                    });
                }
                Err(e) => {
                    return Err(Error::Read {
                        name: text,
                        source: e.into(),
                    });
                }
            };
            (layout, stored, text)
        }
    };
    let manifest = stored.manifest().map_err(|e| e.to_string());
    let config_bytes = match &manifest {
        Ok(m) => layout
            .read_blob(&m.config.digest)
            .map_err(|e| Error::ReadConfig {
                name: display.clone(),
                source: e.into(),
            })?,
        Err(_) => Vec::new(),
    };
    Ok(Loaded::Stored(Box::new(StoredParts {
        display,
        layout,
        stored,
        manifest,
        config_bytes,
    })))
}

/// The wasm of an artifact, its digest and a name for messages.
pub struct Wasm {
    /// The file name, or the stored artifact's tag (or reference).
    pub name: String,
    /// The module or component.
    pub bytes: Vec<u8>,
    /// The digest of the wasm layer (of the bytes, for a file).
    pub digest: wasmoci_spec::Digest,
}

/// The wasm `reference` names (for a stored artifact, only its wasm layer is read).
pub fn wasm(reference: &ArtifactRef) -> Result<Wasm> {
    match load(reference)? {
        Loaded::File { path, bytes } => Ok(Wasm {
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            digest: wasmoci_spec::Digest::of(&bytes),
            bytes,
        }),
        Loaded::Stored(parts) => {
            let (layer, bytes) = parts.wasm()?;
            Ok(Wasm {
                name: parts
                    .stored
                    .tag
                    .clone()
                    .unwrap_or_else(|| parts.display.clone()),
                digest: layer.digest,
                bytes,
            })
        }
    }
}

/// One end of a copy or a conversion.
pub enum Endpoint {
    /// A registry.
    Registry(Reference),
    /// A layout (or the store) and which manifest in it.
    Local(Layout, LayoutRef),
}

/// Where `text` points, as one end of a copy (a file is refused).
pub fn endpoint(text: &str) -> Result<Endpoint> {
    Ok(match text.parse::<ArtifactRef>()? {
        ArtifactRef::Registry(r) => Endpoint::Registry(r),
        ArtifactRef::Layout { dir, reference } => Endpoint::Local(Layout::at(dir), reference),
        ArtifactRef::Store(reference) => Endpoint::Local(store_layout()?, reference),
        ArtifactRef::File(path) => return Err(Error::CopyFile(path)),
    })
}

/// The tag a copy writes at a local destination (`source` when the destination names no
/// tag).
pub fn dest_tag(reference: &LayoutRef, source: &str) -> Result<String> {
    match reference {
        LayoutRef::Tag(tag) => Ok(tag.clone()),
        LayoutRef::Only => Ok(source.to_owned()),
        LayoutRef::Digest(_) | LayoutRef::Named { .. } => Err(Error::CopyToDigest),
    }
}

/// The artifact a push or conversion starts from.
pub enum Source {
    /// Stored (or just built into `scratch`); `built` says what a build made.
    Ready {
        /// Its layout.
        layout: Layout,
        /// The manifest.
        stored: StoredArtifact,
        /// The build, when `text` named a file or project.
        built: Option<Box<crate::ops::build::BuildReport>>,
    },
    /// A file or project whose build the project's policy refused.
    Refused(crate::ops::build::Refused),
}

/// The artifact to push or convert: a stored one (a pulled one by its registry name), or
/// one built from a file or project
/// into `scratch` (exactly as `wasmoci build` would). `on_command` is told when a
/// project's `build.command` runs.
pub fn source_artifact(
    text: &str,
    scratch: &Path,
    on_command: &mut dyn FnMut(&str, &Path),
) -> Result<Source> {
    let path = Path::new(text);
    let buildable =
        path.is_dir() || matches!(text.parse::<ArtifactRef>(), Ok(ArtifactRef::File(_)));
    let (layout, reference, built) = if buildable {
        let request = BuildRequest::for_path(path.to_owned(), Some(scratch.join("layout")));
        match build(&request, on_command)? {
            Build::Stored(report) => (
                Layout::at(&report.layout),
                LayoutRef::Tag(report.tag.clone()),
                Some(report),
            ),
            Build::Refused(refused) => return Ok(Source::Refused(refused)),
        }
    } else {
        match text.parse::<ArtifactRef>()? {
            ArtifactRef::Layout { dir, reference } => (Layout::open(dir)?, reference, None),
            ArtifactRef::Store(reference) => (store_layout()?, reference, None),
            ArtifactRef::File(_) => unreachable!("files are built above"),
            // A pulled artifact, by the name the store gave it.
            ArtifactRef::Registry(r) => {
                let layout = store_layout()?;
                let stored = layout
                    .resolve(&stored_ref(&r))
                    .map_err(|e| not_stored(&r, e))?;
                return Ok(Source::Ready {
                    layout,
                    stored,
                    built: None,
                });
            }
        }
    };
    let stored = layout.resolve(&reference).map_err(|e| Error::Read {
        name: text.to_owned(),
        source: e.into(),
    })?;
    Ok(Source::Ready {
        layout,
        stored,
        built,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> Reference {
        text.parse().unwrap()
    }

    #[test]
    fn pulled_artifacts_are_tagged_with_their_full_reference() {
        let digest = wasmoci_spec::Digest::of(b"");
        let cases = [
            ("ghcr.io/acme/app:1.0", Some("ghcr.io/acme/app:1.0")),
            ("localhost:5000/app", Some("localhost:5000/app:latest")),
            (
                &format!("ghcr.io/acme/app:1.0@{digest}"),
                Some("ghcr.io/acme/app:1.0"),
            ),
            (&format!("ghcr.io/acme/app@{digest}"), None),
        ];
        for (text, tag) in cases {
            assert_eq!(store_tag(&reference(text)).as_deref(), tag, "{text}");
        }
        assert_eq!(
            stored_ref(&reference(&format!("ghcr.io/acme/app:1.0@{digest}"))),
            LayoutRef::Named {
                name: "ghcr.io/acme/app".into(),
                digest
            }
        );
        assert_eq!(
            stored_ref(&reference("ghcr.io/acme/app")),
            LayoutRef::Tag("ghcr.io/acme/app:latest".into())
        );
    }
}
