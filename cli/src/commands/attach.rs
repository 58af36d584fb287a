//! `wasmoci attach`: an artifact that refers to another (an SBOM, a provenance document).

use std::process::ExitCode;

use anyhow::{Context, Result};
use wasmoci_cli::ops::referrers::{AttachRequest, Attached, attach};
use wasmoci_registry::Reference;

use super::args::RegistryArgs;
use crate::output::{self, Report};

const ATTACH_HELP: &str = concat!(
    "Pushes an OCI 1.1 artifact manifest whose `subject` is REF's manifest (a tag is resolved
to its digest first): `artifactType` TYPE, an empty config, one layer per file titled with
its file name (`org.opencontainers.image.title`), as `oras attach` does. A file is `PATH`
or `PATH:MEDIA_TYPE` (default `application/vnd.oci.image.layer.v1.tar`).
A registry with the referrers API lists it by itself; for one without (distribution 2.8,
GitLab) the index at tag `sha256-<hex of REF's digest>` is updated, as the OCI
distribution spec's tag schema says: read, add, write (with `If-Match` where the registry
honours it), read back; every entry already there is kept.
Prints `HOST/REPO@sha256:…` of the new artifact.

Examples:
  wasmoci attach ghcr.io/acme/hello:0.1.0 --artifact-type application/spdx+json sbom.spdx.json
  wasmoci attach localhost:5000/app@sha256:… --artifact-type application/vnd.acme.review \\
      review.md:text/markdown -a org.opencontainers.image.authors=qa --json",
    super::args::registry_exit_status!()
);

/// Attach files to an artifact in a registry, as a referrer (OCI 1.1 `subject`)
#[derive(Debug, clap::Args)]
#[command(after_help = ATTACH_HELP)]
pub(crate) struct AttachArgs {
    /// `HOST/REPO:TAG` or `HOST/REPO@DIGEST`: what the new artifact refers to
    #[arg(value_name = "REF")]
    reference: String,
    /// The new artifact's `artifactType`
    #[arg(long, value_name = "TYPE")]
    artifact_type: String,
    /// Files to attach, each `PATH` or `PATH:MEDIA_TYPE`
    #[arg(value_name = "FILE", required = true)]
    files: Vec<String>,
    /// Add a manifest annotation (repeatable)
    #[arg(short, long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object with every digest
    #[arg(long)]
    json: bool,
}

impl Report for Attached {
    fn status(&self) -> Option<String> {
        let listed = match &self.index {
            Some(index) => format!("listed in `{index}` (tag schema)"),
            None => "listed by the registry (referrers API)".to_owned(),
        };
        Some(format!(
            "attached `{}` ({} file(s)) to `{}`: {listed}",
            self.artifact_type,
            self.files.len(),
            self.subject
        ))
    }
    fn text(&self) -> Option<String> {
        Some(self.reference.clone())
    }
}

pub(crate) fn run(args: AttachArgs) -> Result<ExitCode> {
    let subject: Reference = args.reference.parse()?;
    let annotations = wasmoci_cli::ops::build::parse_annotations(&args.annotations)?;
    args.registry.plain_http_note(&subject);
    let client = args.registry.client_writing_to(&subject)?;
    let attached = attach(
        &client,
        AttachRequest {
            subject: &subject,
            artifact_type: &args.artifact_type,
            files: &args.files,
            annotations,
            created: wasmoci_cli::ops::build::build_time()?,
        },
    )
    .with_context(|| format!("failed to attach to `{subject}`"))?;
    output::report(&attached, args.json);
    Ok(ExitCode::SUCCESS)
}
