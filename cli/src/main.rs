//! `wasmoci`: build, validate, inspect and store WebAssembly components as OCI artifacts.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod commands;
mod debug;
mod failure;
mod output;
mod progress;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  the artifact was checked and has problems (validation or policy)
  2  usage error, or something failed (I/O, a missing file or tag, a build error)
  3  `publish`: the build failed
  4  the registry refused us (unauthorized, denied, not found)
  5  the transfer failed (unreachable, TLS, a digest mismatch, rate-limited, another
     registry error)
  `run` exits with the guest's own status (see `wasmoci run --help`)

With `--json`, a failure is also one JSON object on stdout:
  {\"error\": {\"message\", \"causes\", \"class\", \"exit_code\", \"command\"}}

Errors never carry a Rust backtrace; `WASMOCI_LOG=debug` prints wasmoci's debug log and,
with `RUST_BACKTRACE=1`, each error's backtrace (levels: off, error, warn, info, debug, trace)";

/// Build, validate, inspect, store and run WebAssembly components as OCI artifacts
/// (the CNCF Wasm OCI artifact layout).
#[derive(Debug, Parser)]
#[command(name = "wasmoci", version, after_help = EXIT_CODES, max_term_width = 100)]
struct Cli {
    /// No status lines, notes, summaries or progress bars (data, problems and errors still show)
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
    Tag(commands::tag::TagArgs),
    Tags(commands::tags::TagsArgs),
    Manifest(commands::manifest::ManifestArgs),
    Login(commands::login::LoginArgs),
    Logout(commands::logout::LogoutArgs),
    Doctor(commands::doctor::DoctorArgs),
    Publish(commands::publish::PublishArgs),
    Sign(commands::sign::SignArgs),
    Verify(commands::sign::VerifyArgs),
    Attach(commands::attach::AttachArgs),
    Discover(commands::discover::DiscoverArgs),
    Copy(commands::copy::CopyArgs),
    Convert(commands::convert::ConvertArgs),
    Compose(commands::compose::ComposeArgs),
    SemverCheck(commands::semver_check::SemverCheckArgs),
    #[command(visible_alias = "dep")]
    Dependency(commands::dependency::DependencyArgs),
    #[command(visible_alias = "images")]
    Ls(commands::ls::LsArgs),
    Rm(commands::rm::RmArgs),
    #[command(visible_alias = "prune")]
    Gc(commands::gc::GcArgs),
    #[command(subcommand)]
    Store(commands::store::StoreCommand),
    Completions(commands::completions::CompletionsArgs),
    #[command(subcommand)]
    Node(commands::node::NodeCommand),
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
    output::set_quiet(cli.quiet);
    debug::init();
    let (invoked, json) = failure::invoked(&matches);
    let result = match cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Compile(args) => commands::compile::run(args),
        Command::Push(args) => commands::push::run(args),
        Command::Attach(args) => commands::attach::run(args),
        Command::Discover(args) => commands::discover::run(args),
        Command::Sign(args) => commands::sign::run_sign(args),
        Command::Verify(args) => commands::sign::run_verify(args),
        Command::Doctor(args) => commands::doctor::run(args),
        Command::Pull(args) => commands::pull::run(args),
        Command::Tag(args) => commands::tag::run(args),
        Command::Tags(args) => commands::tags::run(args),
        Command::Manifest(args) => commands::manifest::run(args),
        Command::Login(args) => commands::login::run(args),
        Command::Logout(args) => commands::logout::run(args),
        Command::Publish(args) => commands::publish::run(args),
        Command::Copy(args) => commands::copy::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Compose(args) => commands::compose::run(args),
        Command::SemverCheck(args) => commands::semver_check::run(args),
        Command::Dependency(args) => commands::dependency::run(args),
        Command::Node(command) => commands::node::run(command),
        Command::Ls(args) => commands::ls::run(args),
        Command::Rm(args) => commands::rm::run(args),
        Command::Gc(args) => commands::gc::run(args),
        Command::Store(command) => commands::store::run(command),
        Command::Completions(args) => commands::completions::run(args, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(e) => failure::fail(&invoked, &e, json),
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
