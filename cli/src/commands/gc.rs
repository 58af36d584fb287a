//! `wasmoci gc`: free what nothing in the store uses.

use anyhow::Result;
use wasmoci_cli::env;
use wasmoci_cli::ops::store::{self, GcReport, human_size};

use crate::output;

const HELP: &str = "\
Deletes every blob of the embedded store that no manifest in it reaches (after `wasmoci rm`,
or a tag moved by a new build), temporary files of writes killed more than an hour ago, and
compile cache entries whose artifact the store no longer holds (files run directly too) or
that this wasmtime cannot load. Waits for a build or pull in progress; builds and pulls wait
for it. Prints what it freed.

Exit status:
  0  done (also when nothing was freed)
  2  the store or the cache could not be read or changed (nothing is deleted when a
     manifest cannot be read)

Examples:
  wasmoci gc --dry-run
  wasmoci prune
  wasmoci gc --json";

/// Delete the blobs no stored artifact uses, and stale compiled code
#[derive(Debug, clap::Args)]
#[command(after_help = HELP)]
pub(crate) struct GcArgs {
    /// Only show what would be deleted
    #[arg(long)]
    dry_run: bool,
    /// Print a JSON object with every file
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: GcArgs) -> Result<std::process::ExitCode> {
    let report = store::gc(&env::home()?, args.dry_run, || {
        output::status("waiting for a pull into the store to finish");
    })?;
    if args.json {
        output::json(&serde_json::to_value(&report)?);
    } else {
        output::summary(&summary(&report));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn summary(report: &GcReport) -> String {
    let bytes = |files: &[store::Freed]| human_size(files.iter().map(|f| f.size).sum());
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{} {} ({}) and {} ({}): {} in all",
        if report.dry_run {
            "would delete"
        } else {
            "deleted"
        },
        plural(report.blobs.len(), "blob", "blobs"),
        bytes(&report.blobs),
        plural(report.compiled.len(), "compiled entry", "compiled entries"),
        bytes(&report.compiled),
        human_size(report.freed_bytes),
    )
}
