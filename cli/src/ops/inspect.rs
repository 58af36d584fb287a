//! `wasmoci inspect` as a library call: what an artifact is, from the bytes for a file
//! and from the manifest and config for a stored artifact; and a component's WIT.

use std::collections::BTreeMap;

use serde::Serialize;
use wasmoci_spec::{
    ComponentSection, Digest, WasmKind, component_section, image_entrypoint, is_meaningful_world,
    media_types, module_imports_exports,
};
use wit_component::{DecodedWasm, WitPrinter};

use crate::ops::artifact::{Loaded, StoredWasm};
use crate::ops::{Error, Result};

/// What an artifact is.
#[derive(Debug, Clone, Serialize)]
pub struct Inspected {
    /// The artifact, as named.
    pub reference: String,
    /// `component` or `module`.
    pub kind: &'static str,
    /// `wasip1` or `wasip2`.
    pub os: String,
    /// The wasm's size.
    pub size: u64,
    /// The manifest digest (of the bytes, for a file).
    pub digest: Digest,
    /// What only a stored artifact has.
    #[serde(flatten)]
    pub stored: Option<StoredFacts>,
    /// A component's world, imports and exports (from the config when stored).
    #[serde(flatten)]
    pub component: Option<Component>,
    /// The `wasm-metadata` fields of the outermost module or component.
    pub metadata: Option<BTreeMap<&'static str, Option<String>>>,
    /// Whether a stored artifact's config disagrees with its wasm layer.
    #[serde(skip)]
    pub config_mismatch: bool,
}

/// What only a stored artifact has.
#[derive(Debug, Clone, Serialize)]
pub struct StoredFacts {
    /// The config's `created`.
    pub created: Option<String>,
    /// The config's `author`.
    pub author: Option<String>,
    /// The manifest's size.
    pub manifest_size: usize,
    /// The config digest.
    pub config_digest: Digest,
    /// The config's size.
    pub config_size: u64,
    /// The wasm layer's digest.
    pub layer_digest: Digest,
    /// The wasm layer's media type.
    pub layer_media_type: String,
    /// The config's media type: the CNCF Wasm config, or another tool's (Spin, an OCI
    /// image config), whose facts are read from the wasm instead.
    pub config_media_type: String,
    /// In an image-compat image: where the wasm is (the config's `Entrypoint`).
    pub wasm_path: Option<String>,
    /// The manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// What a component or module imports and exports: a component's WIT world (its
/// interfaces and functions), a core module's `module::field` imports and exports.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// A component's world, when it names one someone wrote.
    pub target: Option<String>,
    /// Imports.
    pub imports: Vec<String>,
    /// Exports.
    pub exports: Vec<String>,
}

impl From<&ComponentSection> for Component {
    fn from(c: &ComponentSection) -> Self {
        Component {
            target: c.target.clone().filter(|t| is_meaningful_world(t)),
            imports: c.imports.clone(),
            exports: c.exports.clone(),
        }
    }
}

impl Component {
    /// Its imports and exports, each sorted: what two descriptions are compared by.
    fn sorted(&self) -> (Vec<String>, Vec<String>) {
        let (mut imports, mut exports) = (self.imports.clone(), self.exports.clone());
        imports.sort();
        exports.sort();
        (imports, exports)
    }
}

/// What `wasm` imports and exports, read from the bytes.
fn from_bytes(wasm: &[u8], kind: WasmKind) -> Result<Component, wasmoci_spec::Error> {
    match kind {
        WasmKind::Component => component_section(wasm).map(|c| Component::from(&c)),
        WasmKind::Module => {
            let (imports, exports) = module_imports_exports(wasm)?;
            Ok(Component {
                target: None,
                imports,
                exports,
            })
        }
    }
}

/// The wasm of a loaded artifact: its name, bytes, kind and (stored) where it is.
fn wasm_of(loaded: &Loaded) -> Result<(String, Vec<u8>, WasmKind, Option<StoredWasm>)> {
    let (name, wasm, stored) = match loaded {
        Loaded::File { path, bytes } => (path.display().to_string(), bytes.clone(), None),
        Loaded::Stored(parts) => {
            let mut stored = parts.wasm()?;
            let bytes = std::mem::take(&mut stored.bytes);
            (parts.display.clone(), bytes, Some(stored))
        }
    };
    let Some(kind) = WasmKind::detect(&wasm) else {
        return Err(Error::NotWasmBinary(name));
    };
    Ok((name, wasm, kind, stored))
}

/// What `loaded` is. A stored artifact's facts come from its config when it is the CNCF
/// Wasm config (the caller says so when the bytes disagree), and from the wasm when it is
/// another tool's config (Spin, runwasi's OCI image config, an image-compat image).
pub fn inspect(loaded: &Loaded) -> Result<Inspected> {
    let (name, wasm, kind, stored_wasm) = wasm_of(loaded)?;
    let bytes_say = from_bytes(&wasm, kind);
    let metadata = embedded_metadata(&wasm);
    let (Loaded::Stored(parts), Some(stored_wasm)) = (loaded, stored_wasm) else {
        return Ok(Inspected {
            reference: name,
            kind: kind.as_str(),
            os: kind.os().as_str().to_owned(),
            size: wasm.len() as u64,
            digest: Digest::of(&wasm),
            stored: None,
            component: Some(bytes_say?),
            metadata,
            config_mismatch: false,
        });
    };
    let manifest = parts.manifest()?;
    let foreign = manifest.config.media_type != media_types::WASM_CONFIG_V0;
    let (os, created, author, component, config_mismatch) = if foreign {
        let (created, author) = parts.created_author();
        (
            kind.os(),
            created.map(|t| t.to_string()),
            author,
            bytes_say.ok(),
            false,
        )
    } else {
        let config = parts.config()?;
        // The config is what is shown; the caller says so when the bytes disagree with it.
        let from_config = config.component.as_ref().map(Component::from);
        let bytes_say = bytes_say.ok();
        let mismatch = kind.os() != config.os
            || (kind == WasmKind::Component
                && bytes_say.as_ref().map(Component::sorted)
                    != from_config.as_ref().map(Component::sorted));
        (
            config.os,
            config.created.map(|t| t.to_string()),
            config.author.clone(),
            // A module's config has no imports or exports: its bytes do.
            from_config.or(bytes_say.filter(|_| kind == WasmKind::Module)),
            mismatch,
        )
    };
    let wasm_path = stored_wasm
        .in_image
        .then(|| image_entrypoint(&parts.config_bytes).ok())
        .flatten();
    Ok(Inspected {
        reference: name,
        kind: kind.as_str(),
        os: os.as_str().to_owned(),
        size: wasm.len() as u64,
        digest: parts.stored.descriptor.digest,
        stored: Some(StoredFacts {
            created,
            author,
            manifest_size: parts.stored.manifest_bytes.len(),
            config_digest: manifest.config.digest,
            config_size: manifest.config.size,
            layer_digest: stored_wasm.layer.digest,
            layer_media_type: stored_wasm.layer.media_type,
            config_media_type: manifest.config.media_type.clone(),
            wasm_path,
            annotations: manifest.annotations.clone().unwrap_or_default(),
        }),
        component,
        metadata,
        config_mismatch,
    })
}

/// The WIT of a component, printed.
pub fn wit(loaded: &Loaded) -> Result<String> {
    let (name, wasm, kind, _) = wasm_of(loaded)?;
    if kind != WasmKind::Component {
        return Err(Error::NoWit(name));
    }
    let decoded = wasmoci_spec::decode_wit(&wasm).map_err(|e| Error::Wit {
        what: "decode",
        name: name.clone(),
        source: e.into(),
    })?;
    let (resolve, package) = match decoded {
        DecodedWasm::Component(resolve, world) => {
            let Some(package) = resolve.worlds[world].package else {
                return Err(Error::Wit {
                    what: "decode",
                    name,
                    source: "the decoded world has no package".into(),
                });
            };
            (resolve, package)
        }
        DecodedWasm::WitPackage(resolve, package) => (resolve, package),
    };
    let nested: Vec<_> = resolve
        .packages
        .iter()
        .map(|(id, _)| id)
        .filter(|id| *id != package)
        .collect();
    let mut printer = WitPrinter::default();
    printer
        .print(&resolve, package, &nested)
        .map_err(|e| Error::Wit {
            what: "print",
            name,
            source: e.into(),
        })?;
    Ok(printer.output.to_string())
}

/// The `wasm-metadata` fields of the outermost module or component.
fn embedded_metadata(wasm: &[u8]) -> Option<BTreeMap<&'static str, Option<String>>> {
    fn text<T: ToString>(value: Option<&T>) -> Option<String> {
        value.map(ToString::to_string)
    }
    let payload = wasm_metadata::Payload::from_binary(wasm).ok()?;
    let m = payload.metadata();
    Some(BTreeMap::from([
        ("name", text(m.name.as_ref())),
        ("version", text(m.version.as_ref())),
        ("authors", text(m.authors.as_ref())),
        ("licenses", text(m.licenses.as_ref())),
        ("description", text(m.description.as_ref())),
        ("source", text(m.source.as_ref())),
        ("homepage", text(m.homepage.as_ref())),
        ("revision", text(m.revision.as_ref())),
    ]))
}
