//! `wasmoci tags`: every tag of a repository.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use wasmoci_registry::Reference;

use super::args::RegistryArgs;
use crate::output::{self, Report};

/// List every tag of a repository (all pages)
#[derive(Debug, clap::Args)]
#[command(
    after_help = concat!("Examples:\n  wasmoci tags ghcr.io/acme/hello\n  wasmoci tags localhost:5000/app --semver --json", super::args::registry_exit_status!())
)]
pub(crate) struct TagsArgs {
    /// `HOST/REPO`
    #[arg(value_name = "REPO")]
    repository: String,
    /// Only semver tags, sorted by version
    #[arg(long)]
    semver: bool,
    /// Give up on a listing of more than N tags
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_tags: usize,
    /// Give up on a listing of more than N pages
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_pages: usize,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON array
    #[arg(long)]
    json: bool,
}

/// The tags of a repository.
#[derive(Serialize)]
#[serde(transparent)]
struct Tags(Vec<String>);

impl Report for Tags {
    fn text(&self) -> Option<String> {
        // A registry's tags, one line each whatever they hold (`--json` is exact).
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|t| wasmoci_spec::escape_controls(t, false))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }
}

pub(crate) fn run(args: TagsArgs) -> Result<ExitCode> {
    let repo: Reference = args.repository.parse()?;
    args.registry.plain_http_note(&repo);
    let mut tags = args
        .registry
        .client_with(|o| {
            o.max_tags = args.max_tags;
            o.max_tag_pages = args.max_pages;
        })?
        .tags(&repo)
        .with_context(|| format!("failed to list the tags of `{}`", args.repository))?;
    if args.semver {
        let mut versions: Vec<(semver::Version, String)> = tags
            .into_iter()
            .filter_map(|t| {
                semver::Version::parse(t.strip_prefix('v').unwrap_or(&t))
                    .ok()
                    .map(|v| (v, t))
            })
            .collect();
        versions.sort();
        tags = versions.into_iter().map(|(_, t)| t).collect();
    }
    output::report(&Tags(tags), args.json);
    Ok(ExitCode::SUCCESS)
}
