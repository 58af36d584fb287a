//! `wasmoci inspect` as a library call: what an artifact is, from the bytes for a file
//! and from the manifest and config for a stored artifact; and a component's WIT.

use std::collections::BTreeMap;

use serde::Serialize;
use wasmoci_spec::{ComponentSection, Descriptor, Digest, WasmKind, component_section};
use wit_component::{DecodedWasm, WitPrinter};

use crate::ops::artifact::Loaded;
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
    /// The manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A component's world, imports and exports.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// The world, when known.
    pub target: Option<String>,
    /// Imports.
    pub imports: Vec<String>,
    /// Exports.
    pub exports: Vec<String>,
}

impl From<&ComponentSection> for Component {
    fn from(c: &ComponentSection) -> Self {
        Component {
            target: c.target.clone(),
            imports: c.imports.clone(),
            exports: c.exports.clone(),
        }
    }
}

/// The wasm of a loaded artifact: its name, bytes, kind and (stored) layer descriptor.
fn wasm_of(loaded: &Loaded) -> Result<(String, Vec<u8>, WasmKind, Option<Descriptor>)> {
    let (name, wasm, layer) = match loaded {
        Loaded::File { path, bytes } => (path.display().to_string(), bytes.clone(), None),
        Loaded::Stored(parts) => {
            let (layer, bytes) = parts.wasm()?;
            (parts.display.clone(), bytes, Some(layer.clone()))
        }
    };
    let Some(kind) = WasmKind::detect(&wasm) else {
        return Err(Error::NotWasmBinary(name));
    };
    Ok((name, wasm, kind, layer))
}

/// What `loaded` is.
pub fn inspect(loaded: &Loaded) -> Result<Inspected> {
    let (name, wasm, kind, layer) = wasm_of(loaded)?;
    let from_bytes = match kind {
        WasmKind::Component => Some(component_section(&wasm)),
        WasmKind::Module => None,
    };
    let metadata = embedded_metadata(&wasm);
    let Loaded::Stored(parts) = loaded else {
        return Ok(Inspected {
            reference: name,
            kind: kind.as_str(),
            os: kind.os().as_str().to_owned(),
            size: wasm.len() as u64,
            digest: Digest::of(&wasm),
            stored: None,
            component: from_bytes.transpose()?.as_ref().map(Component::from),
            metadata,
            config_mismatch: false,
        });
    };
    let manifest = parts.manifest()?;
    let config = parts.config()?;
    let layer = layer.ok_or_else(|| Error::NotOneWasmLayer(name.clone()))?;
    // The config is what is shown; the caller says so when the bytes disagree with it.
    let lists = |c: Option<&ComponentSection>| {
        c.map(|c| {
            let (mut i, mut e) = (c.imports.clone(), c.exports.clone());
            i.sort();
            e.sort();
            (i, e)
        })
    };
    let from_bytes = from_bytes.and_then(Result::ok);
    let config_mismatch =
        kind.os() != config.os || lists(from_bytes.as_ref()) != lists(config.component.as_ref());
    Ok(Inspected {
        reference: name,
        kind: kind.as_str(),
        os: config.os.as_str().to_owned(),
        size: layer.size,
        digest: parts.stored.descriptor.digest,
        stored: Some(StoredFacts {
            created: config.created.map(|t| t.to_string()),
            author: config.author.clone(),
            manifest_size: parts.stored.manifest_bytes.len(),
            config_digest: manifest.config.digest,
            config_size: manifest.config.size,
            layer_digest: layer.digest,
            layer_media_type: layer.media_type,
            annotations: manifest.annotations.clone().unwrap_or_default(),
        }),
        component: config.component.as_ref().map(Component::from),
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
    let decoded = wit_component::decode(&wasm).map_err(|e| Error::Wit {
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
