//! `wasmoci copy`.

use std::process::ExitCode;

use anyhow::Result;
use wasmoci_cli::ops::artifact::{Endpoint, endpoint};
use wasmoci_cli::ops::copy::{CopyReport, copy};

use super::args::{DownloadLimits, RegistryArgs};
use crate::output::{self, Report};

const COPY_HELP: &str = concat!(
    "Copies the manifest and its blobs as they are, so the digest stays the same. Between two
repositories of one registry, blobs are mounted rather than uploaded.
With `--referrers`, what refers to it goes along, so a mirror or an air-gapped layout
can still be verified: its referrers (`wasmoci attach`, `oras attach`; and theirs) and
cosign's signature manifest (`sha256-<hex>.sig`), listed at the destination as the
registry lists referrers (the referrers API, else the tag schema); in a layout, referrers
are entries named `NAME@DIGEST` and the signatures are tagged `NAME:sha256-<hex>.sig`.

Examples:
  wasmoci copy ghcr.io/acme/app:1.0.0 registry.internal:5000/mirror/app:1.0.0
  wasmoci copy ghcr.io/acme/app:1.0.0 oci:vendor:app:1.0.0
  wasmoci copy oci:vendor:app:1.0.0 localhost:5000/app:1.0.0
  wasmoci copy ghcr.io/acme/app:1.0.0 oci:airgap:app:1.0.0 --referrers",
    super::args::registry_exit_status!()
);

/// Copy an artifact between registries and layouts, keeping its digest
#[derive(Debug, clap::Args)]
#[command(after_help = COPY_HELP)]
pub(crate) struct CopyArgs {
    /// `HOST/REPO[:TAG|@DIGEST]`, `oci:DIR[:TAG|@DIGEST]` or `NAME:TAG` in the store
    #[arg(value_name = "SRC")]
    source: String,
    /// `HOST/REPO[:TAG]`, `oci:DIR:TAG` or `NAME:TAG` in the store
    #[arg(value_name = "DST")]
    dest: String,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Carry the artifact's referrers (SBOMs, attestations, recursively) and cosign
    /// signatures along
    #[arg(long)]
    referrers: bool,
    #[command(flatten)]
    limits: DownloadLimits,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl Report for CopyReport {
    fn text(&self) -> Option<String> {
        Some(self.reference.clone())
    }
}

pub(crate) fn run(args: CopyArgs) -> Result<ExitCode> {
    let source = endpoint(&args.source)?;
    let dest = endpoint(&args.dest)?;
    let client = args.registry.client_with(|o| {
        args.limits.apply(o);
        // The generic credentials go to the destination only, never to the source.
        if let Endpoint::Registry(dest) = &dest {
            o.env_credentials_for = Some(dest.registry.clone());
        }
    })?;
    let report = copy(
        &client,
        source,
        &args.source,
        dest,
        &args.dest,
        args.referrers,
    )?;
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}
