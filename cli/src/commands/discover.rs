//! `wasmoci discover`: what refers to an artifact (signatures, SBOMs, attestations).

use std::process::ExitCode;

use anyhow::{Context, Result};
use wasmoci_cli::ops::referrers::{Discovered, MAX_DEPTH, Referrer, discover};
use wasmoci_registry::Reference;
use wasmoci_spec::escape_controls;

use super::args::RegistryArgs;
use crate::output::{self, Report};

const DISCOVER_HELP: &str = concat!(
    "Lists the manifests whose `subject` is REF's manifest, from the registry's referrers API,
or, where it has none (distribution 2.8, GitLab), from the index at tag
`sha256-<hex>` (the OCI tag schema, which oras and `wasmoci attach` write). With
`--depth N`, the referrers of each referrer too (at most 16 levels; each manifest once).

Formats: `table` (default): one line per referrer, `DIGEST  ARTIFACT-TYPE`, indented by
level; `tree`: as `oras discover` draws it; `json` (or `--json`): every field.

Examples:
  wasmoci discover ghcr.io/acme/hello:0.1.0
  wasmoci discover localhost:5000/app@sha256:… --artifact-type application/spdx+json --json
  wasmoci discover localhost:5000/app:1 --format tree --depth 3",
    super::args::registry_exit_status!()
);

/// How `discover` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Tree,
    Json,
}

/// List the referrers of an artifact in a registry (signatures, SBOMs, attestations)
#[derive(Debug, clap::Args)]
#[command(after_help = DISCOVER_HELP)]
pub(crate) struct DiscoverArgs {
    /// `HOST/REPO:TAG` or `HOST/REPO@DIGEST`
    #[arg(value_name = "REF")]
    reference: String,
    /// Only referrers of this `artifactType` (at the first level)
    #[arg(long, value_name = "TYPE")]
    artifact_type: Option<String>,
    /// How many levels of referrers to follow
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=MAX_DEPTH as i64))]
    depth: u16,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object (`--format json`)
    #[arg(long)]
    json: bool,
}

/// What a registry says is untrusted: one line each, control characters shown escaped.
fn shown(text: &str) -> String {
    escape_controls(text, false).into_owned()
}

fn kind(r: &Referrer) -> String {
    shown(r.artifact_type.as_deref().unwrap_or(&r.media_type))
}

fn table(referrers: &[Referrer], level: usize, out: &mut Vec<String>) {
    for r in referrers {
        out.push(format!("{}{}  {}", "  ".repeat(level), r.digest, kind(r)));
        table(&r.referrers, level + 1, out);
    }
}

fn tree(referrers: &[Referrer], prefix: &str, out: &mut Vec<String>) {
    for (i, r) in referrers.iter().enumerate() {
        let last = i + 1 == referrers.len();
        let (branch, next) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        out.push(format!("{prefix}{branch}{}", kind(r)));
        let inner = format!("{prefix}{next}");
        out.push(format!("{inner}└── {}", r.digest));
        tree(&r.referrers, &format!("{inner}    "), out);
    }
}

struct Shown {
    discovered: Discovered,
    format: Format,
}

impl serde::Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.discovered.serialize(s)
    }
}

impl Report for Shown {
    fn status(&self) -> Option<String> {
        let source = match self.discovered.listed_by {
            "referrers-api" => "the referrers API",
            _ => "the tag schema",
        };
        Some(format!(
            "{} referrer(s) of `{}`, from {source}",
            self.discovered.referrers.len(),
            self.discovered.subject
        ))
    }
    fn text(&self) -> Option<String> {
        let mut out = Vec::new();
        match self.format {
            Format::Tree => {
                out.push(shown(&self.discovered.subject));
                tree(&self.discovered.referrers, "", &mut out);
            }
            _ => table(&self.discovered.referrers, 0, &mut out),
        }
        (!out.is_empty()).then(|| out.join("\n"))
    }
}

pub(crate) fn run(args: DiscoverArgs) -> Result<ExitCode> {
    let subject: Reference = args.reference.parse()?;
    args.registry.plain_http_note(&subject);
    let client = args.registry.client()?;
    let discovered = discover(
        &client,
        &subject,
        args.artifact_type.as_deref(),
        usize::from(args.depth),
    )
    .with_context(|| format!("failed to discover the referrers of `{subject}`"))?;
    let json = args.json || args.format == Format::Json;
    output::report(
        &Shown {
            discovered,
            format: args.format,
        },
        json,
    );
    Ok(ExitCode::SUCCESS)
}
