//! `wasmoci node policy check`: what the node policy says of an artifact, rule by rule.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use wasmoci_cli::ops::node_policy::{PolicyReport, check, load};
use wasmoci_registry::Reference;
use wasmoci_spec::escape_controls;

use super::args::RegistryArgs;
use crate::failure::Problems;
use crate::output::{self, Report};

/// The node policy
#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    Check(CheckArgs),
}

const CHECK_HELP: &str = "\
Evaluates every rule of a node policy (see `wasmoci node install --policy`) on REF as the
shim does at Create on a node, and prints each rule's verdict: `images.allow` and
`images.require-digest` on REF as written, `components.max-size` and
`components.deny-imports` on its wasm (pulled into a scratch directory, never the store),
`signatures.keys` at the registry (cosign's signatures, no transparency log).
On a node the shim also knows the names containerd gives the image; here REF is the name.

Examples:
  wasmoci node policy check ghcr.io/acme/hello@sha256:… --policy policy.toml
  wasmoci node policy check localhost:5000/app:1.0.0 --json

Exit status:
  0  every rule passes or is not set
  1  a rule refuses it (each listed)
  2  usage error, or something failed here (the policy file, a key)
  4  the registry refused us (unauthorized, denied, not found)
  5  the transfer failed";

/// Check an artifact in a registry against a node policy, rule by rule
#[derive(Debug, clap::Args)]
#[command(after_help = CHECK_HELP)]
pub(crate) struct CheckArgs {
    /// `HOST/REPO:TAG` or `HOST/REPO@DIGEST`
    #[arg(value_name = "REF")]
    reference: String,
    /// The policy file
    #[arg(long, value_name = "FILE", default_value = wasmoci_spec::node_policy::DEFAULT_PATH)]
    policy: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl Report for PolicyReport {
    fn status(&self) -> Option<String> {
        // A refusal is the error, said once.
        self.allowed
            .then(|| format!("`{}` is allowed by the node policy", self.reference))
    }
    fn text(&self) -> Option<String> {
        let width = self.rules.iter().map(|r| r.rule.len()).max().unwrap_or(0);
        Some(
            self.rules
                .iter()
                .map(|r| {
                    let line = format!("{:width$}  {:8}  {}", r.rule, r.verdict, r.detail);
                    escape_controls(line.trim_end(), false).into_owned()
                })
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }
}

pub(crate) fn run(command: PolicyCommand) -> Result<ExitCode> {
    let PolicyCommand::Check(args) = command;
    let reference: Reference = args.reference.parse()?;
    let policy = load(&args.policy, false)?;
    args.registry.plain_http_note(&reference);
    let client = args.registry.client()?;
    let report = check(&client, &reference, &policy)
        .with_context(|| format!("failed to check `{reference}` against the node policy"))?;
    output::report(&report, args.json);
    if !report.allowed && args.json {
        // The report says it, with every probe.
        return Ok(ExitCode::FAILURE);
    }
    if !report.allowed {
        return Err(Problems {
            header: format!("`{}` is refused by the node policy", report.reference),
            problems: report
                .rules
                .iter()
                .filter(|r| r.verdict == "refused")
                .map(|r| format!("[{}] {}", r.rule, r.detail))
                .collect(),
        }
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
