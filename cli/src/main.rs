//! `wasmoci`: build, validate, inspect and store WebAssembly components as OCI artifacts.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod output;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  the artifact was checked and has problems (validation or policy)
  2  usage error, or something failed (I/O, a missing file or tag, a build error)";

/// Build, validate, inspect and store WebAssembly components as OCI artifacts
/// (the CNCF Wasm OCI artifact layout).
#[derive(Debug, Parser)]
#[command(name = "wasmoci", version, after_help = EXIT_CODES, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Build(commands::build::BuildArgs),
    Validate(commands::validate::ValidateArgs),
    Inspect(commands::inspect::InspectArgs),
}

/// What a command found, as an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the command ran and found problems.
    Problems,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(e) => {
            output::error(&e);
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
