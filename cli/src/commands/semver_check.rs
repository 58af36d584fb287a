//! `wasmoci semver-check`.

use std::process::ExitCode;

use anyhow::Result;
use wasmoci_cli::ops::artifact::wasm;
use wasmoci_cli::ops::semver::{SemverReport, semver_check};
use wasmoci_cli::reference::ArtifactRef;

use super::args::PullOnDemand;
use crate::failure::Problems;
use crate::output::{self, Report};

const EXAMPLES: &str = "\
Examples:
  wasmoci semver-check greeter-1.0.0.wasm greeter-1.1.0.wasm
  wasmoci semver-check ghcr.io/acme/greet:1.0.0 wit.wasm --world greeter";

/// Check that NEW's WIT keeps OLD's promises within a semver-compatible version.
///
/// Components are compared by their worlds; WIT packages by `--world` (or their only
/// world; a package without worlds by all its interfaces). Every import and export that
/// breaks is listed, and the exit status is 1; `publish` runs the same check against the
/// repository's newest compatible release.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct SemverCheckArgs {
    /// The earlier release: a file, a stored artifact or `HOST/REPO:TAG`
    #[arg(value_name = "OLD")]
    old: ArtifactRef,
    /// The candidate
    #[arg(value_name = "NEW")]
    new: ArtifactRef,
    /// The world to compare, in WIT packages with several
    #[arg(long, value_name = "WORLD")]
    world: Option<String>,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pull: PullOnDemand,
}

impl Report for SemverReport {
    fn text(&self) -> Option<String> {
        self.compatible
            .then(|| format!("compatible: world `{}`", self.world))
    }
}

pub(crate) fn run(args: SemverCheckArgs) -> Result<ExitCode> {
    args.pull.fetch(&args.old)?;
    args.pull.fetch(&args.new)?;
    let (old, new) = (wasm(&args.old)?, wasm(&args.new)?);
    let (old_name, new_name) = (args.old.to_string(), args.new.to_string());
    let report = semver_check(
        (&old_name, &old.bytes),
        (&new_name, &new.bytes),
        args.world.as_deref(),
    )?;
    if report.compatible || args.json {
        output::report(&report, args.json);
        return Ok(if report.compatible {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let n = report.breaks.len();
    Err(Problems {
        header: format!(
            "`{new_name}` breaks `{old_name}` (world `{}`): {n} break{}",
            report.world,
            if n == 1 { "" } else { "s" }
        ),
        problems: report.break_lines(),
    }
    .into())
}
