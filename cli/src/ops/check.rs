//! The one check of an artifact, used by `validate`, `publish` and `build`'s policy gate:
//! the wasm (wasmparser), the CNCF Wasm OCI artifact layout, a world, an import policy.

use std::borrow::Cow;

use serde::Serialize;
use wasmoci_spec::{Violation, WasmKind, is_image, validate, validate_image, validate_wasm};
use wasmparser::WasmFeatures;
use wit_parser::{Resolve, WorldId};

use crate::ops::artifact::{Blobs, Loaded, load_with};
use crate::ops::componentize::BuildError;
use crate::ops::{Error, Result};
use crate::policy::ImportPolicy;
use crate::reference::ArtifactRef;

/// What to hold an artifact to.
pub struct CheckOptions<'a> {
    /// The wasm features allowed.
    pub features: WasmFeatures,
    /// The import policy.
    pub policy: &'a ImportPolicy,
    /// A world the component must fit: the resolved WIT, the world and its name.
    pub world: Option<&'a (Resolve, WorldId, String)>,
}

/// What a check found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The artifact, as named.
    pub reference: String,
    /// Whether nothing was found.
    pub valid: bool,
    /// `component` or `module`, when the bytes say.
    pub kind: Option<&'static str>,
    /// `wasip1` or `wasip2`, when the bytes say.
    pub os: Option<String>,
    /// Every problem.
    pub violations: Vec<Violation>,
    /// The kind, for people.
    #[serde(skip)]
    pub wasm_kind: Option<WasmKind>,
}

pub use wasmoci_spec::policy::imports;

/// Checks the artifact `reference` names. WAT that does not parse is an invalid
/// artifact, not a failure to check one.
pub fn check(reference: &ArtifactRef, options: &CheckOptions<'_>) -> Result<CheckReport> {
    match load_with(reference, Blobs::AsStored) {
        Ok(loaded) => check_loaded(&loaded, options),
        Err(Error::Build(BuildError::Wat { path, reason })) => {
            let path = path.display().to_string();
            let v = violation("wat-invalid", &path, reason);
            Ok(report(path, None, vec![v]))
        }
        Err(e) => Err(e),
    }
}

/// Checks a loaded artifact.
pub fn check_loaded(loaded: &Loaded, options: &CheckOptions<'_>) -> Result<CheckReport> {
    let mut violations: Vec<Violation> = Vec::new();
    // A file's bytes are borrowed, not copied: they are the whole file.
    let (display, wasm, wasm_path): (String, Option<Cow<'_, [u8]>>, String) = match loaded {
        Loaded::File { path, bytes } => (
            path.display().to_string(),
            Some(Cow::Borrowed(bytes.as_slice())),
            path.display().to_string(),
        ),
        Loaded::Stored(parts) if parts.manifest.as_ref().is_ok_and(is_image) => {
            let manifest = parts.manifest()?;
            let layers = parts.layers()?;
            let (found, wasm) = validate_image(manifest, &parts.config_bytes, &layers[0]);
            violations.extend(found);
            (
                parts.display.clone(),
                wasm.map(Cow::Owned),
                "the wasm in the image".to_owned(),
            )
        }
        Loaded::Stored(parts) => {
            let layers = parts.layers()?;
            let slices: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
            violations.extend(validate(
                &parts.stored.manifest_bytes,
                &parts.config_bytes,
                &slices,
            ));
            let layer = parts.wasm_descriptor().map(|(i, _)| i);
            (
                parts.display.clone(),
                layer
                    .and_then(|i| layers.into_iter().nth(i))
                    .map(Cow::Owned),
                layer.map_or_else(String::new, |i| format!("manifest.layers[{i}]")),
            )
        }
    };
    let mut kind = None;
    if let Some(bytes) = &wasm {
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
            Some(k) => match validate_wasm(bytes, options.features, crate::ops::threads()) {
                Err(e) => violations.push(violation("wasm-invalid", &wasm_path, e.to_string())),
                Ok(()) => check_wasm(bytes, k, &wasm_path, options, &mut violations),
            },
        }
    }
    Ok(report(display, kind, violations))
}

fn report(reference: String, kind: Option<WasmKind>, violations: Vec<Violation>) -> CheckReport {
    CheckReport {
        reference,
        valid: violations.is_empty(),
        kind: kind.map(WasmKind::as_str),
        os: kind.map(|k| k.os().as_str().to_owned()),
        violations,
        wasm_kind: kind,
    }
}

fn violation(code: &'static str, path: &str, message: String) -> Violation {
    Violation {
        code,
        path: path.to_owned(),
        message,
    }
}

/// The policy and the world, for wasm that validates.
fn check_wasm(
    bytes: &[u8],
    kind: WasmKind,
    path: &str,
    options: &CheckOptions<'_>,
    violations: &mut Vec<Violation>,
) {
    if !options.policy.is_empty() {
        match imports(bytes, kind) {
            Ok(imports) => {
                for refusal in options.policy.check(imports.iter().map(String::as_str)) {
                    let what = match kind {
                        WasmKind::Component => format!("imports `{}`", refusal.import),
                        WasmKind::Module => format!("imports from `{}`", refusal.import),
                    };
                    violations.push(violation(
                        "policy-import",
                        path,
                        format!("{what}, which {}", refusal.reason),
                    ));
                }
            }
            Err(e) => violations.push(violation("layer-component-decode", path, e.to_string())),
        }
    }
    match (kind, options.world) {
        (_, None) => {}
        (WasmKind::Component, Some((resolve, world, name))) => {
            if let Err(e) = wit_component::targets(resolve, *world, bytes) {
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
        (WasmKind::Module, Some(_)) => violations.push(violation(
            "world-mismatch",
            path,
            "a core module cannot target a world; make it a component first".into(),
        )),
    }
}
