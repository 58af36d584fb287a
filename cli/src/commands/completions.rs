//! `wasmoci completions`: shell completion scripts.

use anyhow::Result;
use clap_complete::Shell;

use crate::output;

const EXAMPLES: &str = "\
Examples:
  wasmoci completions bash > ~/.local/share/bash-completion/completions/wasmoci
  wasmoci completions zsh > ~/.zfunc/_wasmoci
  wasmoci completions fish > ~/.config/fish/completions/wasmoci.fish
  wasmoci completions powershell >> $PROFILE";

/// Print a shell completion script
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct CompletionsArgs {
    /// The shell
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

pub(crate) fn run(
    args: CompletionsArgs,
    mut command: clap::Command,
) -> Result<std::process::ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "wasmoci", &mut script);
    output::raw(&script);
    Ok(std::process::ExitCode::SUCCESS)
}
