//! `wasmoci compile`: an artifact into the compile cache.

use std::process::ExitCode;

use anyhow::Result;
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_runtime::cache::CacheOutcome;
use wasmoci_runtime::engine::{EngineSettings, build_engine};

use super::args::PullOnDemand;
use super::guest::{cache, wasm_of};
use crate::output::{self, Report};

const COMPILE_HELP: &str = "\
Compiles the artifact for this machine into the compile cache, so the next `run` or
`serve` starts without compiling. Prints the cache entry.

Examples:
  wasmoci compile hello:0.1.0
  wasmoci compile app.wasm";

/// Precompile an artifact into the compile cache
#[derive(Debug, clap::Args)]
#[command(after_help = COMPILE_HELP)]
pub(crate) struct CompileArgs {
    /// `FILE.wasm`, `FILE.wat`, `oci:DIR[:TAG|@DIGEST]`, `NAME:TAG` in the store or
    /// `HOST/REPO:TAG` (pulled into the store first)
    #[arg(value_name = "ARTIFACT")]
    artifact: ArtifactRef,
    #[command(flatten)]
    pull: PullOnDemand,
    /// Print a JSON object: the artifact, its digest, the cache entry and what was done
    #[arg(long)]
    json: bool,
}

/// What `compile` did.
#[derive(serde::Serialize)]
struct Compiled {
    artifact: String,
    digest: String,
    entry: String,
    /// `compiled`, `already-compiled` or `compiled-again`.
    outcome: &'static str,
    /// Why an unusable entry was compiled again.
    reason: Option<String>,
}

impl Report for Compiled {
    fn status(&self) -> Option<String> {
        let what = match (&self.reason, self.outcome) {
            (Some(reason), _) => format!("compiled again ({reason})"),
            (None, outcome) => outcome.replace('-', " "),
        };
        Some(format!("`{}`: {what}", self.artifact))
    }
    fn text(&self) -> Option<String> {
        Some(self.entry.clone())
    }
}

pub(crate) fn run(args: CompileArgs) -> Result<ExitCode> {
    let wasm = wasm_of(&args.artifact, &args.pull)?;
    let engine = build_engine(&EngineSettings {
        pooling: Some(false),
        ..EngineSettings::default()
    })?;
    let cache = cache()?;
    let (_, outcome) = cache.load(&engine, &wasm.name, &wasm.bytes, &wasm.digest)?;
    let (outcome, reason) = match outcome {
        CacheOutcome::Hit => ("already-compiled", None),
        CacheOutcome::Miss | CacheOutcome::Uncached => ("compiled", None),
        CacheOutcome::Replaced(reason) => ("compiled-again", Some(reason.to_string())),
    };
    let report = Compiled {
        artifact: wasm.name.clone(),
        digest: wasm.digest.to_string(),
        entry: cache
            .entry_path(&engine, &wasm.digest)
            .display()
            .to_string(),
        outcome,
        reason,
    };
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}
