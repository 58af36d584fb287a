//! `wasmoci build`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use wasmoci_cli::ops::build::{Build, BuildReport, BuildRequest, build};

use super::args::BuildFlags;
use super::built::{notes, refusal, running};
use crate::output::{self, Report};

const EXAMPLES: &str = "\
Examples:
  wasmoci build                                  # the project in the current directory
  wasmoci build app.wasm --tag app:1.2.0          # a file, into the embedded store
  wasmoci build . --layout out -o app.wasm        # into ./out (an OCI image layout), and a copy
  wasmoci build core.wasm --wit wit --world app   # give a core module its world
  SOURCE_DATE_EPOCH=0 wasmoci build --json        # reproducible, machine-readable";

/// Build a module or component into a Wasm OCI artifact and store it.
///
/// A component keeps its code, with package metadata added. A core module becomes a component from its embedded
/// component type, from `--wit`/`--world`, or, when it imports `wasi_snapshot_preview1`,
/// with the wasip1 adapter (`--module` keeps it a wasip1 module). Package metadata is
/// embedded into the wasm as custom sections (so the layer is not the input file byte for
/// byte; with `--no-metadata` a component is) and mirrored into
/// `org.opencontainers.image.*` annotations. With `SOURCE_DATE_EPOCH` set, the same input
/// gives the same digests.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct BuildArgs {
    /// A `.wasm` or `.wat` file, or a directory holding `wasmoci.toml`
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Tag to store it under [default: from `wasmoci.toml`, or FILE_STEM:latest]
    #[arg(short, long, value_name = "NAME:VERSION")]
    tag: Option<String>,
    /// Store into this OCI image layout directory instead of the embedded store
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Also write the module or component alone to FILE
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    flags: BuildFlags,
    /// Print a JSON object instead of the reference
    #[arg(long)]
    json: bool,
}

impl Report for BuildReport {
    fn status(&self) -> Option<String> {
        let changed = if !self.metadata.is_empty() {
            format!("metadata added: {}", self.metadata.join(", "))
        } else if self.unchanged {
            "stored byte for byte".to_owned()
        } else {
            "no metadata added".to_owned()
        };
        Some(format!(
            "built `{}`: {} ({} bytes, {changed})",
            self.tag, self.conversion, self.size
        ))
    }
    fn text(&self) -> Option<String> {
        Some(self.reference.clone())
    }
}

pub(crate) fn run(args: BuildArgs) -> Result<ExitCode> {
    let request = BuildRequest {
        tag: args.tag,
        layout: args.layout,
        output: args.output,
        ..args.flags.request(args.path)
    };
    match build(&request, &mut running)? {
        Build::Stored(report) => {
            notes(&report.notes);
            output::report(&*report, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Build::Refused(refused) => Err(refusal(&refused)),
    }
}
