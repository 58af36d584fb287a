//! One module per subcommand: an `Args` struct and a `run` function.

pub(crate) mod build;
pub(crate) mod completions;
pub(crate) mod gc;
pub(crate) mod inspect;
pub(crate) mod ls;
pub(crate) mod node;
pub(crate) mod publish;
pub(crate) mod rm;
pub(crate) mod run;
pub(crate) mod transfer;
pub(crate) mod validate;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wasmoci_cli::{build::read_wasm, env, reference::ArtifactRef};
use wasmoci_registry::{Layout, LayoutRef, StoredArtifact};
use wasmoci_spec::{Descriptor, ImageManifest, WasmConfig};

/// An artifact read from wherever its reference points.
pub(crate) enum Loaded {
    /// A `.wasm`/`.wat` file.
    File { path: PathBuf, bytes: Vec<u8> },
    /// A manifest in a layout (or the store) and its blobs, digest-checked.
    Stored(Box<StoredParts>),
}

pub(crate) struct StoredParts {
    /// How to print the reference (`oci:DIR:TAG`, `NAME:TAG`).
    pub(crate) display: String,
    pub(crate) stored: StoredArtifact,
    /// The manifest, or why it does not parse.
    pub(crate) manifest: Result<ImageManifest, String>,
    pub(crate) config_bytes: Vec<u8>,
    pub(crate) layers: Vec<Vec<u8>>,
}

impl StoredParts {
    pub(crate) fn manifest(&self) -> Result<&ImageManifest> {
        self.manifest
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("failed to read `{}`", self.display))
    }

    pub(crate) fn config(&self) -> Result<WasmConfig> {
        WasmConfig::from_json(&self.config_bytes)
            .with_context(|| format!("failed to read the config of `{}`", self.display))
    }

    /// The single wasm layer: its index, descriptor and bytes.
    pub(crate) fn wasm_layer(&self) -> Option<(usize, &Descriptor, &[u8])> {
        let manifest = self.manifest.as_ref().ok()?;
        let mut layers = manifest.wasm_layers();
        let (index, descriptor) = layers.next()?;
        if layers.next().is_some() {
            return None;
        }
        Some((index, descriptor, self.layers.get(index)?))
    }
}

pub(crate) fn store_layout() -> Result<Layout> {
    Ok(Layout::at(env::home()?.store()))
}

/// Reads the artifact `reference` names.
pub(crate) fn load(reference: &ArtifactRef) -> Result<Loaded> {
    let (layout, layout_ref, display) = match reference {
        ArtifactRef::File(path) => {
            let bytes = read_wasm(path)?;
            return Ok(Loaded::File {
                path: path.clone(),
                bytes,
            });
        }
        ArtifactRef::Registry(r) => {
            // Pulled artifacts live in the store under their full reference.
            let parsed: wasmoci_registry::Reference = r.parse()?;
            let layout = store_layout()?;
            let tag = transfer::store_tag(&parsed);
            let reference = match parsed.digest {
                Some(digest) => LayoutRef::Digest(digest),
                None => LayoutRef::Tag(tag.unwrap_or_default()),
            };
            if !layout.root().join("oci-layout").exists() || layout.resolve(&reference).is_err() {
                bail!("`{r}` is not in the store: run `wasmoci pull {r}` first");
            }
            (layout, reference, r.clone())
        }
        ArtifactRef::Layout { dir, reference: r } => {
            (Layout::open(dir)?, r.clone(), reference.to_string())
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
                bail!(
                    "no artifact `{reference}` in the store `{}`: it is empty (`wasmoci build` puts artifacts there){hint}",
                    layout.root().display()
                );
            }
            if !hint.is_empty() && layout.resolve(r).is_err() {
                bail!(
                    "no artifact `{reference}` in the store `{}`{hint}",
                    layout.root().display()
                );
            }
            (layout, r.clone(), reference.to_string())
        }
    };
    let stored = layout
        .resolve(&layout_ref)
        .with_context(|| format!("failed to read `{display}`"))?;
    let display = match (&layout_ref, &stored.tag, reference) {
        (LayoutRef::Only, Some(tag), ArtifactRef::Layout { dir, .. }) => {
            format!("oci:{}:{tag}", dir.display())
        }
        _ => display,
    };
    let manifest = stored.manifest().map_err(|e| e.to_string());
    let (config_bytes, layers) = match &manifest {
        Ok(m) => {
            let config = layout
                .read_blob(&m.config.digest)
                .with_context(|| format!("failed to read the config of `{display}`"))?;
            let layers = m
                .layers
                .iter()
                .map(|l| layout.read_blob(&l.digest))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("failed to read the layers of `{display}`"))?;
            (config, layers)
        }
        Err(_) => (Vec::new(), Vec::new()),
    };
    Ok(Loaded::Stored(Box::new(StoredParts {
        display,
        stored,
        manifest,
        config_bytes,
        layers,
    })))
}

/// [`wasmoci_fs::write_atomic`], with the path in the error.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    wasmoci_fs::write_atomic(path, bytes, mode)
        .with_context(|| format!("failed to write `{}`", path.display()))
}
