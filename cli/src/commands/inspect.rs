use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_spec::{ComponentSection, Digest, WasmKind, component_section};
use wit_component::{DecodedWasm, WitPrinter};

use super::{Loaded, load};
use crate::{Outcome, output};

const EXAMPLES: &str = "\
Examples:
  wasmoci inspect hello:0.1.0
  wasmoci inspect oci:out:app:1.0.0 --json
  wasmoci inspect app.wasm --wit";

/// Show what an artifact is: kind, os, imports, exports, target, annotations, digests.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct InspectArgs {
    /// `FILE.wasm`, `FILE.wat`, `oci:DIR[:TAG|@DIGEST]` or `NAME:TAG` in the store
    #[arg(value_name = "ARTIFACT")]
    artifact: ArtifactRef,
    /// Print a JSON object
    #[arg(long, conflicts_with = "wit")]
    json: bool,
    /// Print the component's WIT instead
    #[arg(long)]
    wit: bool,
}

pub(crate) fn run(args: InspectArgs) -> Result<Outcome> {
    let loaded = load(&args.artifact)?;
    let (display, wasm) = match &loaded {
        Loaded::File { path, bytes } => (path.display().to_string(), bytes.as_slice()),
        Loaded::Stored(parts) => {
            parts.manifest()?;
            let Some((_, _, bytes)) = parts.wasm_layer() else {
                bail!(
                    "`{}` does not have exactly one wasm layer (run `wasmoci validate` on it)",
                    parts.display
                );
            };
            (parts.display.clone(), bytes)
        }
    };
    let kind = WasmKind::detect(wasm)
        .with_context(|| format!("`{display}` is not a WebAssembly module or component"))?;

    if args.wit {
        if kind != WasmKind::Component {
            bail!("`{display}` is a core module, which has no WIT");
        }
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
        output::data(&printer.output.to_string());
        return Ok(Outcome::Ok);
    }

    // From the bytes for a file; from the manifest and config for a stored artifact.
    let mut report = json!({ "reference": display, "kind": kind.as_str() });
    match &loaded {
        Loaded::File { bytes, .. } => {
            let section = match kind {
                WasmKind::Component => Some(component_section(bytes)?),
                WasmKind::Module => None,
            };
            report["os"] = json!(kind.os().as_str());
            report["size"] = json!(bytes.len());
            report["digest"] = json!(Digest::of(bytes).to_string());
            add_component(&mut report, section.as_ref());
        }
        Loaded::Stored(parts) => {
            let manifest = parts.manifest()?;
            let config = parts.config()?;
            let (_, layer, _) = parts.wasm_layer().expect("checked above");
            report["os"] = json!(config.os.as_str());
            report["created"] = json!(config.created.map(|t| t.to_string()));
            report["author"] = json!(config.author);
            report["digest"] = json!(parts.stored.descriptor.digest.to_string());
            report["manifest_size"] = json!(parts.stored.manifest_bytes.len());
            report["config_digest"] = json!(manifest.config.digest.to_string());
            report["config_size"] = json!(manifest.config.size);
            report["layer_digest"] = json!(layer.digest.to_string());
            report["layer_media_type"] = json!(layer.media_type);
            report["size"] = json!(layer.size);
            add_component(&mut report, config.component.as_ref());
            // The config is what is shown; say so when the bytes disagree with it.
            let (_, _, bytes) = parts.wasm_layer().expect("checked above");
            let from_bytes = match kind {
                WasmKind::Component => component_section(bytes).ok(),
                WasmKind::Module => None,
            };
            let lists = |c: Option<&ComponentSection>| {
                c.map(|c| {
                    let mut i = c.imports.clone();
                    let mut e = c.exports.clone();
                    i.sort();
                    e.sort();
                    (i, e)
                })
            };
            if kind.os() != config.os
                || lists(from_bytes.as_ref()) != lists(config.component.as_ref())
            {
                output::note(&format!(
                    "the config of `{display}` does not match its wasm layer; run `wasmoci validate` on it"
                ));
            }
            report["annotations"] = json!(manifest.annotations.clone().unwrap_or_default());
        }
    }
    report["metadata"] = embedded_metadata(wasm);

    if args.json {
        output::json(&report);
    } else {
        output::data(&human(&report));
    }
    Ok(Outcome::Ok)
}

fn add_component(report: &mut Value, section: Option<&ComponentSection>) {
    if let Some(section) = section {
        report["target"] = json!(section.target);
        report["imports"] = json!(section.imports);
        report["exports"] = json!(section.exports);
    }
}

/// The `wasm-metadata` fields of the outermost module or component.
fn embedded_metadata(wasm: &[u8]) -> Value {
    let Ok(payload) = wasm_metadata::Payload::from_binary(wasm) else {
        return Value::Null;
    };
    let m = payload.metadata();
    let text = |v: Option<String>| v.map_or(Value::Null, Value::String);
    json!({
        "name": m.name,
        "version": text(m.version.as_ref().map(ToString::to_string)),
        "authors": text(m.authors.as_ref().map(ToString::to_string)),
        "licenses": text(m.licenses.as_ref().map(ToString::to_string)),
        "description": text(m.description.as_ref().map(ToString::to_string)),
        "source": text(m.source.as_ref().map(ToString::to_string)),
        "homepage": text(m.homepage.as_ref().map(ToString::to_string)),
        "revision": text(m.revision.as_ref().map(ToString::to_string)),
    })
}

fn human(report: &Value) -> String {
    let mut out = String::new();
    let field = |out: &mut String, label: &str, value: &Value| {
        if let Some(v) = value.as_str() {
            let _ = writeln!(out, "{label:<15}{v}");
        } else if let Some(n) = value.as_u64() {
            let _ = writeln!(out, "{label:<15}{n}");
        }
    };
    for (label, key) in [
        ("reference", "reference"),
        ("kind", "kind"),
        ("os", "os"),
        ("target", "target"),
        ("created", "created"),
        ("author", "author"),
        ("digest", "digest"),
        ("config", "config_digest"),
        ("layer", "layer_digest"),
        ("media type", "layer_media_type"),
        ("size", "size"),
    ] {
        field(&mut out, label, &report[key]);
    }
    for key in ["imports", "exports"] {
        if let Some(list) = report[key].as_array() {
            let _ = writeln!(out, "{key} ({})", list.len());
            for item in list {
                let _ = writeln!(out, "  {}", item.as_str().unwrap_or_default());
            }
        }
    }
    if let Some(map) = report["annotations"].as_object()
        && !map.is_empty()
    {
        let _ = writeln!(out, "annotations");
        for (k, v) in map {
            let _ = writeln!(out, "  {k} = {}", v.as_str().unwrap_or_default());
        }
    }
    if let Some(map) = report["metadata"].as_object() {
        let set: Vec<_> = map.iter().filter(|(_, v)| !v.is_null()).collect();
        if !set.is_empty() {
            let _ = writeln!(out, "metadata");
            for (k, v) in set {
                let _ = writeln!(out, "  {k} = {}", v.as_str().unwrap_or_default());
            }
        }
    }
    out
}
