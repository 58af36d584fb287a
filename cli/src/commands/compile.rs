//! `wasmoci compile`: an artifact into the compile cache.

use std::process::ExitCode;

use anyhow::Result;
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_runtime::cache::CacheOutcome;
use wasmoci_runtime::engine::{EngineSettings, build_engine};

use super::args::PullOnDemand;
use super::guest::{cache, wasm_of};
use crate::output;

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
}

pub(crate) fn run(args: CompileArgs) -> Result<ExitCode> {
    let wasm = wasm_of(&args.artifact, &args.pull)?;
    let engine = build_engine(&EngineSettings {
        pooling: Some(false),
        ..EngineSettings::default()
    })?;
    let cache = cache()?;
    let (_, outcome) = cache.load(&engine, &wasm.name, &wasm.bytes, &wasm.digest)?;
    let what = match outcome {
        CacheOutcome::Hit => "already compiled".to_owned(),
        CacheOutcome::Miss | CacheOutcome::Uncached => "compiled".to_owned(),
        CacheOutcome::Replaced(reason) => format!("compiled again ({reason})"),
    };
    output::status(&format!("`{}`: {what}", wasm.name));
    output::data(
        &cache
            .entry_path(&engine, &wasm.digest)
            .display()
            .to_string(),
    );
    Ok(ExitCode::SUCCESS)
}
