//! `wasmoci manifest`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use wasmoci_registry::Reference;
use wasmoci_spec::ImageManifest;

use super::args::RegistryArgs;
use crate::output;

/// Print a manifest (or, with `--config`, its config) exactly as the registry stores it
#[derive(Debug, clap::Args)]
pub(crate) struct ManifestArgs {
    /// `HOST/REPO[:TAG|@DIGEST]`
    #[arg(value_name = "REF")]
    reference: String,
    /// Print the config blob instead
    #[arg(long)]
    config: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(args: ManifestArgs) -> Result<ExitCode> {
    let r: Reference = args.reference.parse()?;
    args.registry.plain_http_note(&r);
    let client = args.registry.client()?;
    let (bytes, _, _) = client
        .manifest(&r)
        .with_context(|| format!("failed to read `{}`", args.reference))?;
    let bytes = if args.config {
        let manifest = ImageManifest::from_json(&bytes)?;
        client
            .blob(&r, &manifest.config.digest)
            .with_context(|| format!("failed to read the config of `{}`", args.reference))?
    } else {
        bytes
    };
    output::raw(&bytes);
    Ok(ExitCode::SUCCESS)
}
