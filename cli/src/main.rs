//! `wasmoci`: build, validate, inspect and store WebAssembly components as OCI artifacts.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod output;
mod progress;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  the artifact was checked and has problems (validation or policy)
  2  usage error, or something failed (I/O, a missing file or tag, a build error)
  `run` exits with the guest's own status (see `wasmoci run --help`)";

/// Build, validate, inspect, store and run WebAssembly components as OCI artifacts
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
    Run(commands::run::RunArgs),
    Serve(commands::run::ServeArgs),
    Compile(commands::run::CompileArgs),
    Push(commands::transfer::PushArgs),
    Pull(commands::transfer::PullArgs),
    Tag(commands::transfer::TagArgs),
    Tags(commands::transfer::TagsArgs),
    Manifest(commands::transfer::ManifestArgs),
    Login(commands::transfer::LoginArgs),
    Logout(commands::transfer::LogoutArgs),
    Publish(commands::publish::PublishArgs),
    Copy(commands::transfer::CopyArgs),
    Convert(commands::transfer::ConvertArgs),
    #[command(subcommand)]
    Node(commands::node::NodeCommand),
}

/// What a command found, as an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the command ran and found problems.
    Problems,
}

impl Outcome {
    fn code(self) -> ExitCode {
        match self {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Problems => ExitCode::from(1),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => commands::build::run(args).map(Outcome::code),
        Command::Validate(args) => commands::validate::run(args).map(Outcome::code),
        Command::Inspect(args) => commands::inspect::run(args).map(Outcome::code),
        Command::Run(args) => commands::run::run(args),
        Command::Serve(args) => commands::run::serve_command(args),
        Command::Compile(args) => commands::run::compile_command(args),
        Command::Push(args) => commands::transfer::push(args).map(Outcome::code),
        Command::Pull(args) => commands::transfer::pull(args).map(Outcome::code),
        Command::Tag(args) => commands::transfer::tag(args).map(Outcome::code),
        Command::Tags(args) => commands::transfer::tags(args).map(Outcome::code),
        Command::Manifest(args) => commands::transfer::manifest(args).map(Outcome::code),
        Command::Login(args) => commands::transfer::login(args).map(Outcome::code),
        Command::Logout(args) => commands::transfer::logout(args).map(Outcome::code),
        Command::Publish(args) => commands::publish::publish(args),
        Command::Copy(args) => commands::transfer::copy(args).map(Outcome::code),
        Command::Convert(args) => commands::transfer::convert(args).map(Outcome::code),
        Command::Node(command) => commands::node::run(command).map(Outcome::code),
    };
    match result {
        Ok(code) => code,
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
