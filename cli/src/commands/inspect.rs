//! `wasmoci inspect`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use wasmoci_cli::ops::artifact::load;
use wasmoci_cli::ops::inspect::{Inspected, inspect, wit};
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_spec::escape_controls;

use super::args::PullOnDemand;
use crate::output::{self, Report};

const EXAMPLES: &str = "\
Examples:
  wasmoci inspect hello:0.1.0
  wasmoci inspect oci:out:app:1.0.0 --json
  wasmoci inspect app.wasm --wit";

/// Show what an artifact is: kind, os, imports, exports, target, annotations, digests.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct InspectArgs {
    /// `FILE.wasm`, `FILE.wat`, `oci:DIR[:TAG|@DIGEST]`, `NAME:TAG` in the store or
    /// `HOST/REPO:TAG` (pulled into the store first)
    #[arg(value_name = "ARTIFACT")]
    artifact: ArtifactRef,
    /// Print a JSON object
    #[arg(long, conflicts_with = "wit")]
    json: bool,
    /// Print the component's WIT instead
    #[arg(long)]
    wit: bool,
    #[command(flatten)]
    pull: PullOnDemand,
}

impl Report for Inspected {
    fn text(&self) -> Option<String> {
        // Every value is one line, whatever the artifact put in it.
        let one = |text: &str| escape_controls(text, false).into_owned();
        let mut out = String::new();
        let mut field = |label: &str, value: Option<&str>| {
            if let Some(v) = value {
                let _ = writeln!(out, "{label:<15}{}", one(v));
            }
        };
        let stored = self.stored.as_ref();
        let (size, digest) = (self.size.to_string(), self.digest.to_string());
        let config = stored.map(|s| s.config_digest.to_string());
        let layer = stored.map(|s| s.layer_digest.to_string());
        field("reference", Some(&self.reference));
        field("kind", Some(self.kind));
        field("os", Some(&self.os));
        field(
            "target",
            self.component.as_ref().and_then(|c| c.target.as_deref()),
        );
        field("created", stored.and_then(|s| s.created.as_deref()));
        field("author", stored.and_then(|s| s.author.as_deref()));
        field("digest", Some(&digest));
        field("config", config.as_deref());
        field("layer", layer.as_deref());
        field("media type", stored.map(|s| s.layer_media_type.as_str()));
        field("wasm path", stored.and_then(|s| s.wasm_path.as_deref()));
        field(
            "config type",
            stored
                .map(|s| s.config_media_type.as_str())
                .filter(|t| *t != wasmoci_spec::media_types::WASM_CONFIG_V0),
        );
        field("size", Some(&size));
        if let Some(c) = &self.component {
            for (key, list) in [("imports", &c.imports), ("exports", &c.exports)] {
                let _ = writeln!(out, "{key} ({})", list.len());
                for item in list {
                    let _ = writeln!(out, "  {}", one(item));
                }
            }
        }
        if let Some(map) = stored.map(|s| &s.annotations).filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "annotations");
            for (k, v) in map {
                let _ = writeln!(out, "  {} = {}", one(k), one(v));
            }
        }
        let set: Vec<_> = self.metadata.iter().flatten().collect();
        let set: Vec<_> = set
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .collect();
        if !set.is_empty() {
            let _ = writeln!(out, "metadata");
            for (k, v) in set {
                let _ = writeln!(out, "  {k} = {}", one(v));
            }
        }
        Some(out)
    }
}

pub(crate) fn run(args: InspectArgs) -> Result<ExitCode> {
    args.pull.fetch(&args.artifact)?;
    let loaded = load(&args.artifact)?;
    if args.wit {
        output::data(&wit(&loaded)?);
        return Ok(ExitCode::SUCCESS);
    }
    let report = inspect(&loaded)?;
    if report.config_mismatch {
        output::note(&format!(
            "the config of `{}` does not match its wasm layer; run `wasmoci validate` on it",
            report.reference
        ));
    }
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}
