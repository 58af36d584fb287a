//! `wasmoci pull`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use wasmoci_cli::ops::artifact::{Pulled, pull_any, store_layout};
use wasmoci_cli::ops::referrers::write_files;
use wasmoci_registry::{Layout, LayoutRef, Reference};

use super::args::{DownloadLimits, RegistryArgs};
use crate::output::{self, Report};

const PULL_HELP: &str = concat!(
    "Fetches the manifest (checked against its digest), then each blob the store lacks,
streamed to a temporary file while hashed and kept only when it matches. The artifact is
stored under its full reference, so `wasmoci run HOST/REPO:TAG` finds it afterwards.

Examples:
  wasmoci pull ghcr.io/acme/hello:0.1.0
  wasmoci pull localhost:5000/app@sha256:… -o app.wasm
  wasmoci pull localhost:5000/app:1.0.0 --layout out
  wasmoci pull localhost:5000/app@sha256:… -o sbom/   (a referrer: its files, by title)

An artifact with no wasm layer that refers to another (an SBOM or a signature `wasmoci
attach` or `oras attach` pushed: it has a `subject` or an `artifactType`) is pulled whole,
and `-o DIR` writes each titled layer into DIR under its title, as `oras pull` does.",
    super::args::registry_exit_status!()
);

/// Pull an artifact from a registry into the store (or a layout)
#[derive(Debug, clap::Args)]
#[command(after_help = PULL_HELP)]
pub(crate) struct PullArgs {
    /// `HOST/REPO[:TAG|@DIGEST]`
    #[arg(value_name = "REF")]
    reference: String,
    /// Store into this OCI image layout directory instead of the embedded store
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Also write the wasm layer to FILE (for an attached artifact: its files into
    /// the directory FILE)
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    limits: DownloadLimits,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

/// The status line of a pull.
pub(crate) fn summary(pulled: &Pulled) -> String {
    let mut line = format!(
        "pulled `{}`: {} blob(s) downloaded ({} bytes), {} already here",
        pulled.source,
        pulled.downloaded.len(),
        pulled.downloaded_bytes,
        pulled.reused.len()
    );
    if !pulled.skipped.is_empty() {
        line.push_str(&format!(
            ", {} layer(s) not wasm left at the registry",
            pulled.skipped.len()
        ));
    }
    line
}

impl Report for Pulled {
    fn status(&self) -> Option<String> {
        Some(summary(self))
    }
    fn text(&self) -> Option<String> {
        Some(self.reference.clone())
    }
}

pub(crate) fn run(args: PullArgs) -> Result<ExitCode> {
    let source: Reference = args.reference.parse()?;
    args.registry.plain_http_note(&source);
    let layout = match &args.layout {
        Some(dir) => Layout::at(dir),
        None => store_layout()?,
    };
    let client = args.registry.client_with(|o| args.limits.apply(o))?;
    let mut pulled = pull_any(&client, &source, &layout, true)?;
    if let Some(path) = &args.output {
        let stored = layout.resolve(&LayoutRef::Digest(pulled.digest))?;
        if stored.manifest()?.wasm_layers().next().is_some() {
            write_wasm(&layout, &pulled, path)?;
        } else {
            pulled.files = write_files(&layout, pulled.digest, path)
                .with_context(|| format!("failed to write the files of `{source}`"))?;
        }
        pulled.output = Some(path.clone());
    }
    output::report(&pulled, args.json);
    Ok(ExitCode::SUCCESS)
}

/// Streams the wasm layer of what was pulled to `path` (readable by all), checking its
/// digest on the way; nothing is left at `path` unless it matches.
fn write_wasm(layout: &Layout, pulled: &Pulled, path: &std::path::Path) -> Result<()> {
    let stored = layout.resolve(&LayoutRef::Digest(pulled.digest))?;
    let manifest = stored.manifest()?;
    let (_, layer) = manifest
        .wasm_layers()
        .next()
        .context("the artifact has no wasm layer")?;
    let digest = layer.digest;
    let fail = || format!("failed to write `{}`", path.display());
    let source = std::fs::File::open(layout.blob_path(&digest))
        .with_context(|| format!("failed to read blob `{digest}`"))?;
    let mut file = wasmoci_fs::AtomicFile::create(path).with_context(fail)?;
    let mut reader = wasmoci_spec::HashingReader::new(source);
    std::io::copy(&mut reader, &mut file).with_context(fail)?;
    let (actual, _) = reader.finish();
    if actual != digest {
        bail!(
            "blob `{digest}` in `{}` is corrupt: it hashes to `{actual}`",
            layout.root().display()
        );
    }
    file.commit(0o644).with_context(fail)?;
    Ok(())
}
