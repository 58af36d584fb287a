//! `wasmoci tag`: more tags for a manifest in a registry.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use wasmoci_registry::Reference;
use wasmoci_spec::{Digest, ImageManifest};

use super::args::RegistryArgs;
use crate::output::{self, Report};

/// Give a manifest in a registry more tags (no blob is copied)
#[derive(Debug, clap::Args)]
#[command(after_help = concat!("Examples:\n  wasmoci tag ghcr.io/acme/hello:1.2.3 1.2 1 latest", super::args::registry_exit_status!()))]
pub(crate) struct TagArgs {
    /// `HOST/REPO[:TAG|@DIGEST]`
    #[arg(value_name = "REF")]
    reference: String,
    /// The new tags
    #[arg(value_name = "NEW_TAG", required = true)]
    tags: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

/// What `tag` did.
#[derive(Serialize)]
struct Tagged {
    digest: Digest,
    tags: Vec<String>,
}

impl Report for Tagged {
    fn status(&self) -> Option<String> {
        Some(format!(
            "tagged `{}` as {} tag(s)",
            self.digest,
            self.tags.len()
        ))
    }
}

pub(crate) fn run(args: TagArgs) -> Result<ExitCode> {
    let r: Reference = args.reference.parse()?;
    args.registry.plain_http_note(&r);
    // It writes a tag to the registry it reads from.
    let client = args.registry.client_writing_to(&r)?;
    let (bytes, digest, content_type) = client
        .manifest(&r)
        .with_context(|| format!("failed to read `{}`", args.reference))?;
    let media_type = ImageManifest::from_json(&bytes)
        .ok()
        .and_then(|m| m.media_type)
        .unwrap_or(content_type);
    for tag in &args.tags {
        // Validate the tag with the reference grammar before touching the registry.
        let target: Reference = r.with_tag(tag).to_string().parse()?;
        client
            .put_manifest(&target, &bytes, &media_type)
            .with_context(|| format!("failed to tag `{target}`"))?;
    }
    let report = Tagged {
        digest,
        tags: args.tags,
    };
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}
