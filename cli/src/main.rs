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
    /// No status lines, notes or progress bars on stderr (problems and errors still show)
    #[arg(short, long, global = true, display_order = 100)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Build(commands::build::BuildArgs),
    Validate(commands::validate::ValidateArgs),
    Inspect(commands::inspect::InspectArgs),
    Run(commands::run::RunArgs),
    Serve(commands::serve::ServeArgs),
    Compile(commands::compile::CompileArgs),
    Push(commands::push::PushArgs),
    Pull(commands::pull::PullArgs),
    Tag(commands::tags::TagArgs),
    Tags(commands::tags::TagsArgs),
    Manifest(commands::manifest::ManifestArgs),
    Login(commands::login::LoginArgs),
    Logout(commands::login::LogoutArgs),
    Publish(commands::publish::PublishArgs),
    Copy(commands::copy::CopyArgs),
    Convert(commands::convert::ConvertArgs),
    #[command(subcommand)]
    Node(commands::node::NodeCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_quiet(cli.quiet);
    let result = match cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Compile(args) => commands::compile::run(args),
        Command::Push(args) => commands::push::run(args),
        Command::Pull(args) => commands::pull::run(args),
        Command::Tag(args) => commands::tags::tag(args),
        Command::Tags(args) => commands::tags::run(args),
        Command::Manifest(args) => commands::manifest::run(args),
        Command::Login(args) => commands::login::run(args),
        Command::Logout(args) => commands::login::logout(args),
        Command::Publish(args) => commands::publish::run(args),
        Command::Copy(args) => commands::copy::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Node(command) => commands::node::run(command),
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
