//! `wasmoci convert`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use wasmoci_cli::ops::artifact::{Endpoint, dest_tag, endpoint};
use wasmoci_cli::ops::convert::convert_into;
use wasmoci_registry::Layout;
use wasmoci_spec::Digest;

use super::args::RegistryArgs;
use crate::output::{self, Report};

const CONVERT_HELP: &str = "\
Puts the wasm of an artifact into an ordinary container image: one uncompressed tar layer
holding the `.wasm`, an OCI image config with `architecture: wasm`, `os: wasip1|wasip2`
and an `Entrypoint` naming the file. containerd before 1.6.25/1.7.7 cannot pull Wasm
artifacts but pulls this; the wasmoci shim runs it from the container's root filesystem,
and pods need no `command:`. The result keeps the artifact's `created` time, so the same
artifact always converts to the same digest. Prints `DEST@DIGEST`.

Examples:
  wasmoci convert hello:0.1.0 hello:0.1.0-image
  wasmoci convert hello:0.1.0 localhost:5000/hello:0.1.0-image
  wasmoci convert oci:out:app:1.0.0 oci:out:app:1.0.0-image --path /bin/app.wasm";

/// Convert an artifact to the image-compat format (wasm in a container image)
#[derive(Debug, clap::Args)]
#[command(after_help = CONVERT_HELP)]
pub(crate) struct ConvertArgs {
    /// `NAME:TAG` in the store, `oci:DIR[:TAG|@DIGEST]`, a `.wasm`/`.wat` file or a project
    #[arg(value_name = "SOURCE")]
    source: String,
    /// `NAME:TAG` in the store, `oci:DIR:TAG` or `HOST/REPO[:TAG]` (pushed)
    #[arg(value_name = "DEST")]
    dest: String,
    /// Where the wasm goes in the image [default: `/` + the layer's title, or `/app.wasm`]
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

/// What a conversion made.
#[derive(Serialize)]
struct Converted {
    source: String,
    reference: String,
    digest: Digest,
}

impl Report for Converted {
    fn text(&self) -> Option<String> {
        Some(self.reference.clone())
    }
}

pub(crate) fn run(args: ConvertArgs) -> Result<ExitCode> {
    let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
    let (layout, stored) = super::built::source(&args.source, scratch.path())?;
    let convert = |into: &Layout, tag: &str| {
        convert_into(
            &layout,
            &stored,
            &args.source,
            args.path.as_deref(),
            into,
            tag,
        )
    };
    let (digest, reference) = match endpoint(&args.dest)? {
        Endpoint::Local(into, reference) => {
            let digest = convert(&into, &dest_tag(&reference, &args.dest)?)?
                .descriptor
                .digest;
            (digest, format!("{}@{digest}", args.dest))
        }
        Endpoint::Registry(dest) => {
            let dest = if dest.tag.is_none() && dest.digest.is_none() {
                dest.with_tag("latest")
            } else {
                dest
            };
            if dest.digest.is_some() {
                bail!("invalid destination `{dest}`: name a tag, not a digest");
            }
            let into = Layout::at(scratch.path().join("image"));
            let converted = convert(&into, "image")?;
            args.registry.plain_http_note(&dest);
            let report = args
                .registry
                .client_writing_to(&dest)?
                .push(&into, &converted, &dest)
                .with_context(|| format!("failed to push `{}` to `{dest}`", args.source))?;
            let digest = report.digest.unwrap_or(converted.descriptor.digest);
            (digest, format!("{dest}@{digest}"))
        }
    };
    let report = Converted {
        source: args.source,
        reference,
        digest,
    };
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}
