use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use wasmoci_cli::build::WitWorld;
use wasmoci_cli::policy::ImportPolicy;
use wasmoci_cli::project::{PROJECT_FILE, Project};
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_spec::{
    Violation, WasmKind, component_section, validate, validate_wasm, wasm_features,
};

use super::{Loaded, load};
use crate::{Outcome, output};

const AFTER_HELP: &str = "\
Checks:
  - the bytes validate with wasmparser (every feature on unless `--features` says otherwise)
  - for layout and store artifacts, the CNCF Wasm OCI artifact layout: media types, sizes
    and digests, exactly one wasm layer, `layerDigests`, `architecture`, `os` against the
    bytes, `component` present iff the layer is a component, imports and exports as the
    bytes declare them
  - `--world`: the component fits the world (like `wasm-tools component targets`)
  - import policy: `--deny-import`/`--allow-import` and `[policy]` in `wasmoci.toml`
    (globs over `ns:pkg/iface@version` for components, over import module names such as
    `wasi_snapshot_preview1` for core modules)

Every problem is printed on stderr as `[code] path: message`; `--json` prints a report
on stdout instead.

Exit status:
  0  valid
  1  invalid, or the policy refuses an import
  2  usage error, or the artifact could not be read

Examples:
  wasmoci validate app.wasm
  wasmoci validate hello:0.1.0 --deny-import 'wasi:sockets/*'
  wasmoci validate oci:out:app:1.0.0 --world wit:proxy --json
  wasmoci validate app.wasm --features wasm2,component-model";

/// Check an artifact: the wasm, the OCI layout, a world, an import policy.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ValidateArgs {
    /// `FILE.wasm`, `FILE.wat`, `oci:DIR[:TAG|@DIGEST]` or `NAME:TAG` in the store
    #[arg(value_name = "ARTIFACT")]
    artifact: ArtifactRef,
    /// Wasm features to allow, comma-separated (`wasm2,simd`, `-gc`, `all`) [default: all]
    #[arg(long, value_name = "LIST")]
    features: Option<String>,
    /// Check that the component fits a world: a WIT directory, `:WORLD` to pick one
    #[arg(long, value_name = "WIT_DIR[:WORLD]")]
    world: Option<String>,
    /// Refuse imports matching this glob (repeatable), e.g. `wasi:sockets/*`
    #[arg(long = "deny-import", value_name = "PATTERN")]
    deny_imports: Vec<String>,
    /// Allow only imports matching these globs (repeatable)
    #[arg(long = "allow-import", value_name = "PATTERN")]
    allow_imports: Vec<String>,
    /// Read `[policy]` from this `wasmoci.toml` (or its directory) [default: ./wasmoci.toml if present]
    #[arg(long, value_name = "PATH")]
    project: Option<PathBuf>,
    /// Print a JSON report on stdout
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: ValidateArgs) -> Result<Outcome> {
    let features = match &args.features {
        Some(list) => {
            wasm_features(list).map_err(|e| anyhow::anyhow!("invalid `--features`: {e}"))?
        }
        None => wasmparser::WasmFeatures::all(),
    };
    let policy = policy(&args)?;
    let world = args.world.as_deref().map(|w| match w.split_once(':') {
        Some((dir, world)) => WitWorld {
            dir: dir.into(),
            world: Some(world.into()),
        },
        None => WitWorld {
            dir: w.into(),
            world: None,
        },
    });
    let world = world.map(|w| w.load()).transpose()?;

    let loaded = match load(&args.artifact) {
        Ok(loaded) => loaded,
        // WAT that does not parse is an invalid artifact, not a failure to check one.
        Err(e) => match e.downcast_ref::<wasmoci_cli::build::BuildError>() {
            Some(wasmoci_cli::build::BuildError::Wat { path, reason }) => {
                let v = violation("wat-invalid", &path.display().to_string(), reason.clone());
                return Ok(report(&args, &path.display().to_string(), None, vec![v]));
            }
            _ => return Err(e),
        },
    };
    let mut violations: Vec<Violation> = Vec::new();
    let (display, wasm, wasm_path): (String, Option<&[u8]>, String) = match &loaded {
        Loaded::File { path, bytes } => (
            path.display().to_string(),
            Some(bytes.as_slice()),
            path.display().to_string(),
        ),
        Loaded::Stored(parts) => {
            let layers: Vec<&[u8]> = parts.layers.iter().map(Vec::as_slice).collect();
            violations.extend(validate(
                &parts.stored.manifest_bytes,
                &parts.config_bytes,
                &layers,
            ));
            let layer = parts.wasm_layer();
            (
                parts.display.clone(),
                layer.map(|(_, _, bytes)| bytes),
                layer.map_or_else(String::new, |(i, _, _)| format!("manifest.layers[{i}]")),
            )
        }
    };

    let mut kind = None;
    if let Some(bytes) = wasm {
        kind = WasmKind::detect(bytes);
        match kind {
            None => {
                if matches!(loaded, Loaded::File { .. }) {
                    violations.push(violation(
                        "wasm-not-wasm",
                        &wasm_path,
                        "not a WebAssembly binary: no `\\0asm` preamble with a known version"
                            .into(),
                    ));
                }
            }
            Some(k) => match validate_wasm(bytes, features) {
                Err(e) => violations.push(violation("wasm-invalid", &wasm_path, e.to_string())),
                Ok(()) if k == WasmKind::Component => {
                    check_component(bytes, &wasm_path, &policy, world.as_ref(), &mut violations);
                }
                Ok(()) => {
                    let names = wasmoci_spec::module_import_names(bytes);
                    for refusal in policy.check(names.iter().map(String::as_str)) {
                        violations.push(violation(
                            "policy-import",
                            &wasm_path,
                            format!(
                                "imports from `{}`, which {}",
                                refusal.import, refusal.reason
                            ),
                        ));
                    }
                    if world.is_some() {
                        violations.push(violation(
                            "world-mismatch",
                            &wasm_path,
                            "a core module cannot target a world; make it a component first".into(),
                        ));
                    }
                }
            },
        }
    }

    Ok(report(&args, &display, kind, violations))
}

fn report(
    args: &ValidateArgs,
    display: &str,
    kind: Option<WasmKind>,
    violations: Vec<Violation>,
) -> Outcome {
    if args.json {
        output::json(&json!({
            "reference": display,
            "valid": violations.is_empty(),
            "kind": kind.map(WasmKind::as_str),
            "os": kind.map(|k| k.os().as_str().to_owned()),
            "violations": violations,
        }));
    } else if violations.is_empty() {
        output::status(&format!(
            "`{display}` is valid{}",
            kind.map_or(String::new(), |k| format!(": a {} {k}", k.os()))
        ));
    } else {
        output::status(&format!(
            "error: `{display}` is invalid: {} problem{}",
            violations.len(),
            if violations.len() == 1 { "" } else { "s" }
        ));
        for v in &violations {
            output::status(&format!("  {v}"));
        }
    }
    if violations.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Problems
    }
}

fn violation(code: &'static str, path: &str, message: String) -> Violation {
    Violation {
        code,
        path: path.to_owned(),
        message,
    }
}

fn check_component(
    bytes: &[u8],
    path: &str,
    policy: &ImportPolicy,
    world: Option<&(wit_parser::Resolve, wit_parser::WorldId, String)>,
    violations: &mut Vec<Violation>,
) {
    if !policy.is_empty() {
        match component_section(bytes) {
            Ok(section) => {
                for refusal in policy.check(section.imports.iter().map(String::as_str)) {
                    violations.push(violation(
                        "policy-import",
                        path,
                        format!("imports `{}`, which {}", refusal.import, refusal.reason),
                    ));
                }
            }
            Err(e) => violations.push(violation("layer-component-decode", path, e.to_string())),
        }
    }
    if let Some((resolve, world, name)) = world
        && let Err(e) = wit_component::targets(resolve, *world, bytes, false)
    {
        violations.push(violation(
            "world-mismatch",
            path,
            format!(
                "does not fit `{name}`: {}",
                format!("{e:#}").replace('\n', " ")
            ),
        ));
    }
}

fn policy(args: &ValidateArgs) -> Result<ImportPolicy> {
    let mut deny = args.deny_imports.clone();
    let mut allow = args.allow_imports.clone();
    let project_dir = match &args.project {
        Some(path) if path.is_dir() => Some(path.clone()),
        Some(path) => Some(path.parent().map(PathBuf::from).unwrap_or_default()),
        None => std::path::Path::new(PROJECT_FILE)
            .exists()
            .then(|| PathBuf::from(".")),
    };
    if let Some(dir) = project_dir {
        let project = Project::load(&dir)?;
        deny.extend(project.policy.deny_imports);
        allow.extend(project.policy.allow_imports);
    }
    ImportPolicy::new(&deny, &allow).context("invalid import policy")
}
