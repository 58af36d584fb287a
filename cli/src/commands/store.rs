//! `wasmoci store verify` (`fsck`): is the store sound?

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use wasmoci_cli::ops::artifact::store_layout;
use wasmoci_registry::{Garbage, Layout, VerifyReport};
use wasmoci_spec::escape_controls;

use crate::failure::Problems;
use crate::output::{self, Report};

/// The embedded store
#[derive(Debug, clap::Subcommand)]
pub(crate) enum StoreCommand {
    #[command(visible_alias = "fsck")]
    Verify(VerifyArgs),
}

const VERIFY_HELP: &str = "\
Re-hashes every blob of the store (or `--layout DIR`), follows every tag to its manifest,
config and wasm layers (layers that are not wasm may stay at the registry, as a pull leaves
them) and checks their sizes and media types. Reports damage (corrupt blobs, missing or
mis-sized blobs a tag needs, manifests that do not parse, unknown media types) and,
apart, garbage (temporary files a killed write left, blobs no tag reaches: `wasmoci gc`
removes them). `--repair` deletes corrupt blobs, never a good one; pull or build again
what needed them. Waits for a build or pull in progress.

Exit status:
  0  no damage (garbage is listed but allowed)
  1  damage found (each listed)
  2  the store could not be read

Examples:
  wasmoci store verify
  wasmoci store fsck --repair --json";

/// Check every blob and tag of the store; report damage and garbage
#[derive(Debug, clap::Args)]
#[command(after_help = VERIFY_HELP)]
pub(crate) struct VerifyArgs {
    /// Verify this OCI image layout instead of the embedded store
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Delete corrupt blobs
    #[arg(long)]
    repair: bool,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Verified {
    layout: PathBuf,
    healthy: bool,
    blobs_checked: usize,
    bytes_checked: u64,
    tags: usize,
    damage: Vec<String>,
    garbage: Vec<GarbageRow>,
    removed: Vec<String>,
}

#[derive(Serialize)]
struct GarbageRow {
    kind: &'static str,
    what: String,
    size: u64,
}

impl Report for Verified {
    fn status(&self) -> Option<String> {
        Some(format!(
            "`{}`: {} blob(s) ({} bytes) re-hashed, {} tag(s) followed: {} damaged, {} garbage{}",
            self.layout.display(),
            self.blobs_checked,
            self.bytes_checked,
            self.tags,
            self.damage.len(),
            self.garbage.len(),
            if self.removed.is_empty() {
                String::new()
            } else {
                format!(", {} corrupt blob(s) removed", self.removed.len())
            }
        ))
    }
    fn text(&self) -> Option<String> {
        // Damage is the error (stderr); garbage is data.
        let lines: Vec<String> = self
            .garbage
            .iter()
            .map(|g| {
                let line = format!("garbage  {} {} ({} bytes)", g.kind, g.what, g.size);
                escape_controls(&line, false).into_owned()
            })
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

pub(crate) fn run(command: StoreCommand) -> Result<ExitCode> {
    let StoreCommand::Verify(args) = command;
    let layout = match &args.layout {
        Some(dir) => Layout::at(dir),
        None => store_layout()?,
    };
    let report: VerifyReport = layout
        .verify(args.repair, || {
            output::status("waiting for a pull into the store to finish");
        })
        .with_context(|| format!("failed to verify `{}`", layout.root().display()))?;
    let verified = Verified {
        layout: layout.root().to_owned(),
        healthy: report.damage.is_empty(),
        blobs_checked: report.checked.0,
        bytes_checked: report.checked.1,
        tags: report.tags,
        damage: report.damage.iter().map(ToString::to_string).collect(),
        garbage: report
            .garbage
            .iter()
            .map(|g| match g {
                Garbage::Temporary(path, size) => GarbageRow {
                    kind: "temporary",
                    what: path.display().to_string(),
                    size: *size,
                },
                Garbage::Unreachable(digest, size) => GarbageRow {
                    kind: "unreachable",
                    what: digest.to_string(),
                    size: *size,
                },
            })
            .collect(),
        removed: report.removed.iter().map(ToString::to_string).collect(),
    };
    output::report(&verified, args.json);
    if verified.healthy {
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        // The report says it, with every item.
        return Ok(ExitCode::FAILURE);
    }
    Err(Problems {
        header: format!(
            "`{}` is damaged: {} problem(s)",
            verified.layout.display(),
            verified.damage.len()
        ),
        problems: verified.damage,
    }
    .into())
}
