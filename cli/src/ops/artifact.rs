//! Where artifacts are and how they are read: load one wherever its reference points,
//! the store's naming rule for pulled artifacts, pulling what the store lacks, and the
//! ends of a push, convert or copy.

use std::path::{Path, PathBuf};

use serde::Serialize;
use wasmoci_registry::client::{Client, PullOptions, PullReport};
use wasmoci_registry::{Layout, LayoutRef, Reference, StoredArtifact};
use wasmoci_spec::{
    Descriptor, Digest, ImageManifest, Timestamp, WasmConfig, is_image, wasm_in_image,
};

use crate::env;
use crate::ops::build::{Build, BuildRequest, build};
use crate::ops::componentize::read_wasm;
use crate::ops::{Blob, Error, Result};
use crate::reference::ArtifactRef;

/// The embedded store, `$WASMOCI_HOME/store`; it remembers which registry repositories
/// its blobs came from or went to, so a push can mount them.
pub fn store_layout() -> Result<Layout> {
    Ok(Layout::at(env::home()?.store())
        .remembering_sources()
        .own_store())
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
    /// Layers left at the registry: not wasm, so nothing here runs them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Blob>,
    /// Where the wasm layer was written too, if asked (for an attached artifact: the
    /// directory its files went to).
    pub output: Option<PathBuf>,
    /// The files of an attached artifact written to `output`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<crate::ops::referrers::WrittenFile>,
    /// What was pulled, as named.
    #[serde(skip)]
    pub source: Reference,
}

/// Pulls `source` into `layout`, tagged by the store's rule ([`store_tag`]). A layout
/// this pull creates is removed again when the pull fails.
pub fn pull(client: &Client, source: &Reference, layout: &Layout) -> Result<Pulled> {
    pull_any(client, source, layout, false)
}

/// [`pull`]; with `attachments`, an artifact with no wasm layer that refers to another
/// (a `subject` or an `artifactType`: an SBOM, a signature) is pulled too, every layer of
/// it, for `wasmoci pull` to write its files out.
pub fn pull_any(
    client: &Client,
    source: &Reference,
    layout: &Layout,
    attachments: bool,
) -> Result<Pulled> {
    let fresh = !layout.root().exists();
    let tag = store_tag(source);
    let pulled = client
        .manifest(source)
        .and_then(|(bytes, _, content_type)| {
            let attachment = attachments
                && ImageManifest::from_json(&bytes).is_ok_and(|m| {
                    m.wasm_layers().next().is_none()
                        && (m.subject.is_some() || m.artifact_type.is_some())
                });
            let options = PullOptions {
                require_wasm: !attachment,
                all_layers: attachment,
            };
            client.pull_fetched(source, &bytes, &content_type, layout, Some(&tag), options)
        });
    let report: PullReport = match pulled {
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
    // `NAME:TAG@DIGEST`, or `NAME@DIGEST` when pulled by digest alone.
    let name = tag.split_once('@').map_or(tag.as_str(), |(name, _)| name);
    Ok(Pulled {
        reference: format!("{name}@{}", report.manifest.digest),
        digest: report.manifest.digest,
        layout: layout.root().to_owned(),
        downloaded_bytes: report.downloaded.iter().map(|(_, s)| s).sum(),
        downloaded: Blob::list(&report.downloaded),
        reused: Blob::list(&report.reused),
        skipped: Blob::list(&report.skipped),
        output: None,
        files: Vec::new(),
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

/// `reference` is not in the store: why, with the names its digest is stored under or the
/// closest names the store has.
fn not_stored(reference: &Reference, e: wasmoci_registry::Error) -> Error {
    let hint = e.did_you_mean();
    let names = match e {
        wasmoci_registry::Error::OtherNames { names, .. } => names,
        _ => Vec::new(),
    };
    Error::NotStored {
        reference: Box::new(reference.clone()),
        names,
        hint,
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

/// How a stored artifact's blobs are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blobs {
    /// Each checked against its digest: a blob that does not match is an error.
    Verified,
    /// As they are on disk, for `validate`, which reports a blob that does not match its
    /// descriptor as a problem (`blob-digest`, `blob-size`).
    AsStored,
}

/// The wasm of a stored artifact.
pub struct StoredWasm {
    /// The manifest's layer that holds it (the tar layer of an image-compat image).
    pub layer: Descriptor,
    /// The digest of the wasm itself.
    pub digest: Digest,
    /// The module or component.
    pub bytes: Vec<u8>,
    /// Whether it came out of an image-compat image.
    pub in_image: bool,
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
    /// How the config was read, and the layers are.
    pub blobs: Blobs,
}

impl StoredParts {
    /// Reads the config of `stored` (named `display` in messages) from `layout`.
    pub fn read(
        layout: Layout,
        stored: StoredArtifact,
        display: String,
        blobs: Blobs,
    ) -> Result<StoredParts> {
        let manifest = stored.manifest().map_err(|e| e.to_string());
        let config_bytes = match &manifest {
            Ok(m) => {
                read_blob(&layout, &m.config.digest, blobs).map_err(|e| Error::ReadConfig {
                    name: display.clone(),
                    source: e.into(),
                })?
            }
            Err(_) => Vec::new(),
        };
        Ok(StoredParts {
            display,
            layout,
            stored,
            manifest,
            config_bytes,
            blobs,
        })
    }

    /// The config's `created` and `author`, whatever kind of config it is.
    pub fn created_author(&self) -> (Option<Timestamp>, Option<String>) {
        if let Ok(config) = WasmConfig::from_json(&self.config_bytes) {
            return (config.created, config.author);
        }
        let json: serde_json::Value =
            serde_json::from_slice(&self.config_bytes).unwrap_or_default();
        (
            json["created"].as_str().and_then(Timestamp::parse),
            json["author"].as_str().map(str::to_owned),
        )
    }

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
            .map(|l| read_blob(&self.layout, &l.digest, self.blobs))
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

    /// The wasm: of the single wasm layer (only that blob is read), or of an image-compat
    /// image (the file its `Entrypoint` names in its tar layer); an error saying the
    /// artifact has no wasm otherwise.
    pub fn wasm(&self) -> Result<StoredWasm> {
        let manifest = self.manifest()?;
        if let Some((_, descriptor)) = self.wasm_descriptor() {
            let bytes = read_blob(&self.layout, &descriptor.digest, self.blobs)
                .map_err(|e| self.layers_error(e))?;
            return Ok(StoredWasm {
                layer: descriptor.clone(),
                digest: descriptor.digest,
                bytes,
                in_image: false,
            });
        }
        if is_image(manifest) {
            let layer = &manifest.layers[0];
            let tar = read_blob(&self.layout, &layer.digest, self.blobs)
                .map_err(|e| self.layers_error(e))?;
            let bytes = wasm_in_image(&self.config_bytes, &tar).map_err(|e| Error::ImageWasm {
                name: self.display.clone(),
                source: e,
            })?;
            return Ok(StoredWasm {
                layer: layer.clone(),
                digest: Digest::of(&bytes),
                bytes,
                in_image: true,
            });
        }
        Err(Error::NotOneWasmLayer(self.display.clone()))
    }

    fn layers_error(&self, source: wasmoci_registry::Error) -> Error {
        Error::ReadLayers {
            name: self.display.clone(),
            source: Box::new(source),
        }
    }
}

fn read_blob(
    layout: &Layout,
    digest: &Digest,
    blobs: Blobs,
) -> Result<Vec<u8>, wasmoci_registry::Error> {
    match blobs {
        Blobs::Verified => layout.read_blob(digest),
        Blobs::AsStored => layout.read_blob_as_stored(digest),
    }
}

/// Reads the artifact `reference` names: a file whole; a stored artifact's manifest and
/// config (layers on demand), each blob checked against its digest. A registry reference
/// is read from the store, where a pull put it ([`needs_pull`], [`pull`]).
pub fn load(reference: &ArtifactRef) -> Result<Loaded> {
    load_with(reference, Blobs::Verified)
}

/// [`load`], with the blobs read as `blobs` says.
pub fn load_with(reference: &ArtifactRef, blobs: Blobs) -> Result<Loaded> {
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
    Ok(Loaded::Stored(Box::new(StoredParts::read(
        layout, stored, display, blobs,
    )?)))
}

/// The wasm of an artifact, its digest and a name for messages.
pub struct Wasm {
    /// The file name, or the stored artifact's tag (or reference).
    pub name: String,
    /// The module or component.
    pub bytes: Vec<u8>,
    /// The digest of the wasm (of its layer, which is the same, for an artifact).
    pub digest: wasmoci_spec::Digest,
}

/// The wasm `reference` names (for a stored artifact, only its wasm layer is read).
pub fn wasm(reference: &ArtifactRef) -> Result<Wasm> {
    find_wasm(reference)?.read()
}

/// The wasm of an artifact, found: its name and digest known, its bytes read already (a
/// file, which had to be read to be hashed; an image-compat image) or only when asked
/// (the single wasm layer of a stored artifact, whose digest its manifest gives): a
/// caller that finds compiled code by the digest never reads the layer.
pub struct FoundWasm {
    /// The file name, or the stored artifact's tag (or reference).
    pub name: String,
    /// The digest of the wasm.
    pub digest: Digest,
    bytes: FoundBytes,
}

/// The bytes of a [`FoundWasm`]: read, or still in their layer.
enum FoundBytes {
    Read(Vec<u8>),
    Layer(Box<StoredParts>),
}

impl FoundWasm {
    /// The wasm, read (a stored layer checked against its digest).
    pub fn read(self) -> Result<Wasm> {
        let bytes = match self.bytes {
            FoundBytes::Read(bytes) => bytes,
            FoundBytes::Layer(parts) => parts.wasm()?.bytes,
        };
        Ok(Wasm {
            name: self.name,
            bytes,
            digest: self.digest,
        })
    }
}

/// Finds the wasm `reference` names ([`FoundWasm`]).
pub fn find_wasm(reference: &ArtifactRef) -> Result<FoundWasm> {
    match load(reference)? {
        Loaded::File { path, bytes } => Ok(FoundWasm {
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            digest: Digest::of(&bytes),
            bytes: FoundBytes::Read(bytes),
        }),
        Loaded::Stored(parts) => {
            let name = parts
                .stored
                .tag
                .clone()
                .unwrap_or_else(|| parts.display.clone());
            if let Some((_, layer)) = parts.wasm_descriptor() {
                return Ok(FoundWasm {
                    name,
                    digest: layer.digest,
                    bytes: FoundBytes::Layer(parts),
                });
            }
            let wasm = parts.wasm()?;
            Ok(FoundWasm {
                name,
                digest: wasm.digest,
                bytes: FoundBytes::Read(wasm.bytes),
            })
        }
    }
}

/// One end of a copy or a conversion.
#[derive(Clone)]
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
            ("ghcr.io/acme/app:1.0", "ghcr.io/acme/app:1.0".to_owned()),
            ("localhost:5000/app", "localhost:5000/app:latest".to_owned()),
            (
                &format!("ghcr.io/acme/app:1.0@{digest}"),
                "ghcr.io/acme/app:1.0".to_owned(),
            ),
            (
                &format!("ghcr.io/acme/app@{digest}"),
                format!("ghcr.io/acme/app@{digest}"),
            ),
        ];
        for (text, tag) in cases {
            assert_eq!(store_tag(&reference(text)), tag, "{text}");
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
