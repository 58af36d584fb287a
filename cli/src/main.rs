//! `wasmoci`: build, validate, inspect and store WebAssembly components as OCI artifacts.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    #[command(visible_alias = "images")]
    Ls(commands::ls::LsArgs),
    Rm(commands::rm::RmArgs),
    #[command(visible_alias = "prune")]
    Gc(commands::gc::GcArgs),
    Completions(commands::completions::CompletionsArgs),
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

/// `--version`: ours, the engine's and where the store is, one line each (`-V`: ours).
fn long_version() -> String {
    let store = wasmoci_cli::env::home().map_or_else(
        |_| format!("(unknown: set `{}`)", wasmoci_cli::env::WASMOCI_HOME),
        |home| home.store().display().to_string(),
    );
    format!(
        "{}\nwasmtime {}\nstore {store}",
        env!("CARGO_PKG_VERSION"),
        wasmoci_runtime::cache::WASMTIME_VERSION
    )
}

fn main() -> ExitCode {
    // Built once per process: leaking it is how clap takes a `'static` text.
    let version: &'static str = long_version().leak();
    let matches = Cli::command().long_version(version).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
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
        Command::Ls(args) => commands::ls::run(args).map(Outcome::code),
        Command::Rm(args) => commands::rm::run(args).map(Outcome::code),
        Command::Gc(args) => commands::gc::run(args).map(Outcome::code),
        Command::Completions(args) => {
            commands::completions::run(args, Cli::command()).map(Outcome::code)
        }
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
