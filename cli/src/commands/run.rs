//! `wasmoci run`: a command component or wasip1 module on the engine of
//! `wasmoci-runtime`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use wasmoci_runtime::exit::{Exit, StopHandle};
use wasmoci_runtime::host::{Input, Output, Stdio};
use wasmoci_runtime::program::Want;
use wasmoci_runtime::run::Guest;

use super::guest::{RunCommon, engine, limits, program_of, sandbox};
use crate::output;

const RUN_HELP: &str = "\
Exit status: the guest's own exit code; 134 when it traps (the message and the wasm
backtrace go to stderr), 124 when it hits `--timeout`, 137 when it hits `--memory`,
133 when it runs out of `--fuel`; when wasmoci cannot run it at all, 2, or 4/5 when
pulling it failed (see `wasmoci --help`).

`--json`: after the guest's own output, one line on stdout with the outcome (on a line of
its own when the guest ended its output with a newline, as most do):
  {\"artifact\", \"digest\", \"exit_code\", \"outcome\", \"message\"}
(`outcome`: exited, trapped, timeout, memory-limit, out-of-fuel, killed).

Examples:
  wasmoci run hello:0.1.0
  wasmoci run app.wasm --dir ./data::/data:ro --env RUST_LOG=info -- --verbose input.txt
  wasmoci run oci:out:tool:1.0.0 --timeout 2s --memory 64MiB
  wasmoci run localhost:5000/demo/hello:0.1.0 --pull always";

/// Run a command component (`wasi:cli/run`) or a wasip1 module (`_start`)
#[derive(Debug, clap::Args)]
#[command(after_help = RUN_HELP)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    common: RunCommon,
    /// Arguments for the guest (after `--`)
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    /// After the guest's output, print how it ended as one JSON line
    #[arg(long)]
    json: bool,
}

/// How a run ended (`--json`).
#[derive(serde::Serialize)]
struct Ran<'a> {
    artifact: &'a str,
    digest: String,
    exit_code: i32,
    outcome: &'static str,
    message: Option<String>,
}

fn outcome(exit: &Exit) -> &'static str {
    match exit {
        Exit::Code(_) => "exited",
        Exit::Trap { .. } => "trapped",
        Exit::Timeout(_) => "timeout",
        Exit::MemoryLimit(_) => "memory-limit",
        Exit::OutOfFuel => "out-of-fuel",
        Exit::Killed(_) => "killed",
    }
}

/// One command on the current thread: no worker threads to start for a single guest.
fn tokio_single() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

pub(crate) fn run(args: RunArgs) -> Result<ExitCode> {
    let common = &args.common;
    let engine = engine(common, false)?;
    // `wasmoci run` runs commands; `Program::target` says what else it is.
    let wasm = program_of(common, &engine, Want::Command)?;
    let program = &wasm.program;
    let sandbox = sandbox(common, wasm.name.clone(), args.args.clone())?;
    let limits = limits(common, None);
    let stdio = Stdio {
        stdin: Input::Inherit,
        stdout: Output::Inherit,
        stderr: Output::Inherit,
    };
    let guest = Guest {
        engine: &engine,
        program,
        name: &wasm.name,
        sandbox: &sandbox,
        limits: &limits,
    };
    let exit = tokio_single()?.block_on(guest.run(stdio, &StopHandle::default()))?;
    if args.json {
        output::json_line(&Ran {
            artifact: &wasm.name,
            digest: wasm.digest.to_string(),
            exit_code: exit.status(),
            outcome: outcome(&exit),
            message: exit.describe(),
        });
    }
    if let Some(description) = exit.describe() {
        output::problem(&format!("error: `{}`: {description}", wasm.name));
        if let Exit::Trap {
            backtrace: Some(backtrace),
            ..
        } = &exit
        {
            output::problem(backtrace);
        }
    }
    // A status outside 0..=255 cannot be an exit code; never let it wrap to success.
    Ok(ExitCode::from(u8::try_from(exit.status()).unwrap_or(1)))
}
