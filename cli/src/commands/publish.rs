//! `wasmoci publish`: build → validate (+ policy) → push, the CI one-liner.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use wasmoci_cli::policy::ImportPolicy;
use wasmoci_registry::client::RegistryError;
use wasmoci_registry::{LayoutRef, Reference};
use wasmoci_spec::{ImageManifest, validate, validate_wasm};

use super::build::{BuildArgs, build};
use super::transfer::RegistryArgs;
use crate::output;

const PUBLISH_HELP: &str = "\
Builds PATH (a project directory or a .wasm/.wat file, default `.`) exactly as `wasmoci
build`, validates the artifact (the CNCF layout, wasmparser, the project's `[policy]` and
`--deny-import`/`--allow-import`), then pushes it to DEST. Nothing is pushed unless every
step before succeeded.

Exit status:
  0  published
  1  the artifact is invalid or the import policy refuses it
  2  usage error, or something unexpected
  3  the build failed
  4  the registry refused us (unauthorized, denied, not found)
  5  the transfer failed (unreachable, TLS, a digest mismatch, another registry error)

Examples:
  wasmoci publish ghcr.io/acme/hello:0.1.0
  wasmoci publish ./app localhost:5000/app:1.0.0 --receipt receipt.json --deny-import 'wasi:sockets/*'";

/// Build, validate and push in one step
#[derive(Debug, clap::Args)]
#[command(after_help = PUBLISH_HELP)]
pub(crate) struct PublishArgs {
    /// `[PATH] DEST`: what to build (default `.`) and `HOST/REPO[:TAG]` to push to
    #[arg(value_name = "[PATH] DEST", num_args = 1..=2, required = true)]
    targets: Vec<String>,
    /// Write a JSON receipt: every digest, size, annotation and timing
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// Refuse imports matching this glob (repeatable)
    #[arg(long = "deny-import", value_name = "PATTERN")]
    deny_imports: Vec<String>,
    /// Allow only imports matching these globs (repeatable)
    #[arg(long = "allow-import", value_name = "PATTERN")]
    allow_imports: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print the receipt on stdout instead of the reference
    #[arg(long)]
    json: bool,
}

fn fail(code: u8, error: anyhow::Error) -> ExitCode {
    output::error(&error);
    ExitCode::from(code)
}

pub(crate) fn publish(args: PublishArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (path, dest) = match args.targets.as_slice() {
        [dest] => (PathBuf::from("."), dest.clone()),
        [path, dest] => (PathBuf::from(path), dest.clone()),
        _ => bail!("expected `[PATH] DEST`"),
    };
    let dest: Reference = dest.parse()?;
    let dest = if dest.tag.is_none() && dest.digest.is_none() {
        dest.with_tag("latest")
    } else {
        dest
    };
    super::transfer::plain_http_note(&dest, &args.registry);
    let policy = ImportPolicy::new(&args.deny_imports, &args.allow_imports)?;
    let client = args.registry.client()?;

    // 1. Build, into a scratch layout.
    let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
    let build_args = BuildArgs::for_path(path.clone(), Some(scratch.path().join("layout")));
    let built = match build(&build_args) {
        Ok(Some(built)) => built,
        Ok(None) => return Ok(ExitCode::from(1)),
        Err(e) => {
            return Ok(fail(
                3,
                e.context(format!("failed to build `{}`", path.display())),
            ));
        }
    };
    output::status(&built.summary);
    let build_ms = started.elapsed().as_millis();

    // 2. Validate what was built, as `wasmoci validate` would.
    let validating = Instant::now();
    let layout = &built.layout;
    let stored = layout.resolve(&LayoutRef::Tag(built.tag.clone()))?;
    let manifest: ImageManifest = stored.manifest()?;
    let config = layout.read_blob(&manifest.config.digest)?;
    let layers = manifest
        .layers
        .iter()
        .map(|l| layout.read_blob(&l.digest))
        .collect::<Result<Vec<_>, _>>()?;
    let slices: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let mut problems: Vec<String> = validate(&stored.manifest_bytes, &config, &slices)
        .iter()
        .map(ToString::to_string)
        .collect();
    if let Some((index, _)) = manifest.wasm_layers().next() {
        let wasm = &layers[index];
        if let Err(e) = validate_wasm(wasm, wasmparser::WasmFeatures::all()) {
            problems.push(format!("[wasm-invalid] manifest.layers[{index}]: {e}"));
        }
        let imports = match wasmoci_spec::WasmKind::detect(wasm) {
            Some(wasmoci_spec::WasmKind::Component) => {
                wasmoci_spec::component_section(wasm)?.imports
            }
            _ => wasmoci_spec::module_import_names(wasm),
        };
        for refusal in policy.check(imports.iter().map(String::as_str)) {
            problems.push(format!(
                "[policy-import] manifest.layers[{index}]: imports `{}`, which {}",
                refusal.import, refusal.reason
            ));
        }
    }
    if !problems.is_empty() {
        output::status(&format!(
            "error: `{}` is not published: {} problem(s)",
            built.tag,
            problems.len()
        ));
        for p in problems {
            output::status(&format!("  {p}"));
        }
        return Ok(ExitCode::from(1));
    }
    let validate_ms = validating.elapsed().as_millis();

    // 3. Push.
    let pushing = Instant::now();
    let report = match client.push(layout, &stored, &dest) {
        Ok(report) => report,
        Err(e) => {
            let code = match &e {
                RegistryError::Unauthorized { .. }
                | RegistryError::Denied { .. }
                | RegistryError::NotFound { .. } => 4,
                _ => 5,
            };
            return Ok(fail(
                code,
                anyhow::Error::new(e).context(format!("failed to push to `{dest}`")),
            ));
        }
    };
    let push_ms = pushing.elapsed().as_millis();
    let reference = format!("{dest}@{}", stored.descriptor.digest);

    {
        let blobs = |list: &[(wasmoci_spec::Digest, u64)]| {
            list.iter()
                .map(|(d, s)| json!({ "digest": d.to_string(), "size": s }))
                .collect::<Vec<_>>()
        };
        let receipt = json!({
            "reference": reference,
            "registry": dest.registry,
            "repository": dest.repository,
            "tag": dest.tag,
            "digest": stored.descriptor.digest.to_string(),
            "manifest": { "digest": stored.descriptor.digest.to_string(), "size": stored.manifest_bytes.len() },
            "config": { "digest": manifest.config.digest.to_string(), "size": manifest.config.size, "mediaType": manifest.config.media_type },
            "layers": manifest.layers.iter().map(|l| json!({ "digest": l.digest.to_string(), "size": l.size, "mediaType": l.media_type })).collect::<Vec<_>>(),
            "annotations": manifest.annotations,
            "uploaded": blobs(&report.uploaded),
            "skipped": blobs(&report.skipped),
            "timings_ms": { "build": build_ms, "validate": validate_ms, "push": push_ms, "total": started.elapsed().as_millis() },
            "wasmoci": env!("CARGO_PKG_VERSION"),
        });
        if args.json {
            output::json(&receipt);
        }
        let Some(path) = &args.receipt else {
            return Ok(finish(&dest, &report, &reference, args.json));
        };
        let mut text = serde_json::to_vec_pretty(&receipt).expect("JSON serializes");
        text.push(b'\n');
        super::write_atomically(path, &text, 0o644).context("failed to write the receipt")?;
    }
    Ok(finish(&dest, &report, &reference, args.json))
}

fn finish(
    dest: &Reference,
    report: &wasmoci_registry::client::PushReport,
    reference: &str,
    json: bool,
) -> ExitCode {
    output::status(&format!(
        "published `{dest}`: {} blob(s) uploaded, {} already there",
        report.uploaded.len(),
        report.skipped.len()
    ));
    if !json {
        output::data(reference);
    }
    ExitCode::SUCCESS
}
