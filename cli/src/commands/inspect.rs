//! `wasmoci inspect`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use wasmoci_cli::ops::artifact::{Loaded, load};
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_spec::{ComponentSection, Digest, WasmKind, component_section};
use wit_component::{DecodedWasm, WitPrinter};

use super::args::PullOnDemand;
use crate::output::{self, Report};

const EXAMPLES: &str = "\
Examples:
  wasmoci inspect hello:0.1.0
  wasmoci inspect oci:out:app:1.0.0 --json
  wasmoci inspect app.wasm --wit";

/// Show what an artifact is: kind, os, imports, exports, target, annotations, digests.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct InspectArgs {
    /// `FILE.wasm`, `FILE.wat`, `oci:DIR[:TAG|@DIGEST]`, `NAME:TAG` in the store or
    /// `HOST/REPO:TAG` (pulled into the store first)
    #[arg(value_name = "ARTIFACT")]
    artifact: ArtifactRef,
    /// Print a JSON object
    #[arg(long, conflicts_with = "wit")]
    json: bool,
    /// Print the component's WIT instead
    #[arg(long)]
    wit: bool,
    #[command(flatten)]
    pull: PullOnDemand,
}

/// What an artifact is: from the bytes for a file, from the manifest and config for a
/// stored artifact.
#[derive(Serialize)]
struct Inspected {
    reference: String,
    kind: &'static str,
    os: String,
    size: u64,
    digest: Digest,
    #[serde(flatten)]
    stored: Option<StoredFacts>,
    #[serde(flatten)]
    component: Option<Component>,
    metadata: Option<BTreeMap<&'static str, Option<String>>>,
}

/// What only a stored artifact has.
#[derive(Serialize)]
struct StoredFacts {
    created: Option<String>,
    author: Option<String>,
    manifest_size: usize,
    config_digest: Digest,
    config_size: u64,
    layer_digest: Digest,
    layer_media_type: String,
    annotations: BTreeMap<String, String>,
}

/// A component's world, imports and exports.
#[derive(Serialize)]
struct Component {
    target: Option<String>,
    imports: Vec<String>,
    exports: Vec<String>,
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

impl Report for Inspected {
    fn text(&self) -> Option<String> {
        let mut out = String::new();
        let mut field = |label: &str, value: Option<&str>| {
            if let Some(v) = value {
                let _ = writeln!(out, "{label:<15}{v}");
            }
        };
        let stored = self.stored.as_ref();
        let (size, digest) = (self.size.to_string(), self.digest.to_string());
        let config = stored.map(|s| s.config_digest.to_string());
        let layer = stored.map(|s| s.layer_digest.to_string());
        field("reference", Some(&self.reference));
        field("kind", Some(self.kind));
        field("os", Some(&self.os));
        field(
            "target",
            self.component.as_ref().and_then(|c| c.target.as_deref()),
        );
        field("created", stored.and_then(|s| s.created.as_deref()));
        field("author", stored.and_then(|s| s.author.as_deref()));
        field("digest", Some(&digest));
        field("config", config.as_deref());
        field("layer", layer.as_deref());
        field("media type", stored.map(|s| s.layer_media_type.as_str()));
        field("size", Some(&size));
        if let Some(c) = &self.component {
            for (key, list) in [("imports", &c.imports), ("exports", &c.exports)] {
                let _ = writeln!(out, "{key} ({})", list.len());
                for item in list {
                    let _ = writeln!(out, "  {item}");
                }
            }
        }
        if let Some(map) = stored.map(|s| &s.annotations).filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "annotations");
            for (k, v) in map {
                let _ = writeln!(out, "  {k} = {v}");
            }
        }
        let set: Vec<_> = self.metadata.iter().flatten().collect();
        let set: Vec<_> = set
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .collect();
        if !set.is_empty() {
            let _ = writeln!(out, "metadata");
            for (k, v) in set {
                let _ = writeln!(out, "  {k} = {v}");
            }
        }
        Some(out)
    }
}

pub(crate) fn run(args: InspectArgs) -> Result<ExitCode> {
    args.pull.fetch(&args.artifact)?;
    let loaded = load(&args.artifact)?;
    let (display, wasm, layer) = match &loaded {
        Loaded::File { path, bytes } => (path.display().to_string(), bytes.clone(), None),
        Loaded::Stored(parts) => {
            let (layer, bytes) = parts.wasm()?;
            (parts.display.clone(), bytes, Some(layer.clone()))
        }
    };
    let kind = WasmKind::detect(&wasm)
        .with_context(|| format!("`{display}` is not a WebAssembly module or component"))?;
    if args.wit {
        if kind != WasmKind::Component {
            bail!("`{display}` is a core module, which has no WIT");
        }
        output::data(&wit(&wasm, &display)?);
        return Ok(ExitCode::SUCCESS);
    }
    let from_bytes = match kind {
        WasmKind::Component => Some(component_section(&wasm)),
        WasmKind::Module => None,
    };
    let report = match &loaded {
        Loaded::File { bytes, .. } => Inspected {
            reference: display,
            kind: kind.as_str(),
            os: kind.os().as_str().to_owned(),
            size: bytes.len() as u64,
            digest: Digest::of(bytes),
            stored: None,
            component: from_bytes.transpose()?.as_ref().map(Component::from),
            metadata: embedded_metadata(&wasm),
        },
        Loaded::Stored(parts) => {
            let manifest = parts.manifest()?;
            let config = parts.config()?;
            let layer = layer.expect("a stored artifact has its wasm layer");
            // The config is what is shown; say so when the bytes disagree with it.
            let lists = |c: Option<&ComponentSection>| {
                c.map(|c| {
                    let (mut i, mut e) = (c.imports.clone(), c.exports.clone());
                    i.sort();
                    e.sort();
                    (i, e)
                })
            };
            let from_bytes = from_bytes.and_then(Result::ok);
            if kind.os() != config.os
                || lists(from_bytes.as_ref()) != lists(config.component.as_ref())
            {
                output::note(&format!(
                    "the config of `{display}` does not match its wasm layer; run `wasmoci validate` on it"
                ));
            }
            Inspected {
                reference: display,
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
                    layer_media_type: layer.media_type.clone(),
                    annotations: manifest.annotations.clone().unwrap_or_default(),
                }),
                component: config.component.as_ref().map(Component::from),
                metadata: embedded_metadata(&wasm),
            }
        }
    };
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}

/// The component's WIT, printed.
fn wit(wasm: &[u8], display: &str) -> Result<String> {
    let decoded = wit_component::decode(wasm)
        .with_context(|| format!("failed to decode the WIT of `{display}`"))?;
    let (resolve, package) = match decoded {
        DecodedWasm::Component(resolve, world) => {
            let package = resolve.worlds[world]
                .package
                .context("the decoded world has no package")?;
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
        .with_context(|| format!("failed to print the WIT of `{display}`"))?;
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
