//! `wasmoci push`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use wasmoci_cli::ops::Blob;
use wasmoci_cli::ops::convert::convert_into;
use wasmoci_registry::{Layout, Reference};
use wasmoci_spec::Digest;

use super::args::RegistryArgs;
use crate::output::{self, Report};

const PUSH_HELP: &str = concat!(
    "Uploads the blobs the registry lacks (streamed, hashed on the way), then the manifest. A
file or project directory is built first, exactly as `wasmoci build` would. A blob the
store knows to be in another repository of the registry (pulled from or pushed to it) is
mounted from there instead of uploaded.
Prints `DEST@sha256:…`. Credentials: `--username` + `--password-stdin`, then
`WASMOCI_REGISTRY_<HOST>_USERNAME`/`_PASSWORD`, then
`WASMOCI_REGISTRY_USERNAME`/`WASMOCI_REGISTRY_PASSWORD` (only for the registry a command
writes to), then docker's `config.json`.

Examples:
  wasmoci push hello:0.1.0 ghcr.io/acme/hello:0.1.0
  wasmoci push oci:out:app:1.0.0 localhost:5000/app:1.0.0 --json
  wasmoci push . ghcr.io/acme/app:1.0.0",
    super::args::registry_exit_status!()
);

/// Push a stored artifact to a registry
#[derive(Debug, clap::Args)]
#[command(after_help = PUSH_HELP)]
pub(crate) struct PushArgs {
    /// `NAME:TAG` in the store, a pulled `HOST/REPO:TAG` in the store,
    /// `oci:DIR[:TAG|@DIGEST]`, a `.wasm`/`.wat` file or a project directory (files and
    /// projects are built on the fly, as `wasmoci build`)
    #[arg(value_name = "SOURCE")]
    source: String,
    /// `HOST/REPO[:TAG]`
    #[arg(value_name = "DEST")]
    dest: String,
    /// Push the image-compat format instead: the wasm as a file in an ordinary container
    /// image, for containerd before 1.6.25/1.7.7 (as `wasmoci convert`)
    #[arg(long)]
    as_image: bool,
    /// With `--as-image`: where the wasm goes in the image [default: `/` + the layer's
    /// title, or `/app.wasm`]
    #[arg(long, value_name = "PATH", requires = "as_image")]
    path: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object with every digest and size
    #[arg(long)]
    json: bool,
}

/// What a push did.
#[derive(Serialize)]
struct Pushed {
    reference: String,
    digest: Digest,
    manifest_size: usize,
    uploaded: Vec<Blob>,
    skipped: Vec<Blob>,
    mounted: Vec<Blob>,
    uploaded_bytes: u64,
    #[serde(skip)]
    dest: Reference,
}

impl Report for Pushed {
    fn status(&self) -> Option<String> {
        let mounted = match self.mounted.len() {
            0 => String::new(),
            n => format!(", {n} mounted from another repository"),
        };
        Some(format!(
            "pushed `{}`: {} blob(s) uploaded ({} bytes){mounted}, {} already there",
            self.dest,
            self.uploaded.len(),
            self.uploaded_bytes,
            self.skipped.len()
        ))
    }
    fn text(&self) -> Option<String> {
        Some(self.reference.clone())
    }
}

pub(crate) fn run(args: PushArgs) -> Result<ExitCode> {
    let dest: Reference = args.dest.parse()?;
    if dest.digest.is_some() {
        bail!(
            "invalid push destination `{dest}`: name a tag (`HOST/REPO:TAG`); a digest names content already in the registry"
        );
    }
    let dest = if dest.tag.is_none() {
        dest.with_tag("latest")
    } else {
        dest
    };
    let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
    let (layout, stored) = super::built::source(&args.source, scratch.path())?;
    let (layout, stored) = if args.as_image {
        let converted = Layout::at(scratch.path().join("image"));
        let stored = convert_into(
            &layout,
            &stored,
            &args.source,
            args.path.as_deref(),
            &converted,
            "image",
        )?;
        (converted, stored)
    } else {
        (layout, stored)
    };
    args.registry.plain_http_note(&dest);
    let client = args.registry.client_writing_to(&dest)?;
    let report = client
        .push(&layout, &stored, &dest)
        .with_context(|| format!("failed to push `{}` to `{dest}`", args.source))?;
    let digest = report.digest.unwrap_or(stored.descriptor.digest);
    let pushed = Pushed {
        reference: format!(
            "{}@{digest}",
            dest.with_tag(dest.tag.as_deref().unwrap_or("latest"))
        ),
        digest,
        manifest_size: stored.manifest_bytes.len(),
        uploaded_bytes: report.uploaded.iter().map(|(_, s)| s).sum(),
        uploaded: Blob::list(&report.uploaded),
        skipped: Blob::list(&report.skipped),
        mounted: Blob::list(&report.mounted),
        dest,
    };
    output::report(&pushed, args.json);
    Ok(ExitCode::SUCCESS)
}
