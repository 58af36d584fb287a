//! `wasmoci dependency` (`dep`): Helm's `dependency update`/`build` for components:
//! resolve `[dependencies]` by semver range, pin the result by digest in `wasmoci.lock`,
//! fetch exactly what it says.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use wasmoci_cli::ops::artifact::store_layout;
use wasmoci_cli::ops::deps::lock::LockedPackage;
use wasmoci_cli::ops::deps::resolve::{BuildReport, Update, UpdateReport, build_locked, update};
use wasmoci_cli::project::Project;

use super::args::RegistryArgs;
use crate::output::{self, Report};

const HELP: &str = concat!(
    "`[dependencies]` of wasmoci.toml name WIT packages by semver range (cargo's meaning),
each an OCI repository whose tags are versions. `update` resolves them and what they
require (recorded in each artifact's `dev.wasmoci.dependencies` annotation by `wasmoci
build`), writes wasmoci.lock (manifest and layer digests) and fetches each into the store;
`build` fetches exactly what the lock says, by digest, and refuses a lock out of sync
with wasmoci.toml.

Examples:
  wasmoci dependency update
  wasmoci dep up acme:kv --precise 1.2.0
  wasmoci dependency build --project app",
    super::args::registry_exit_status!()
);

/// Resolve, lock and fetch component dependencies
#[derive(Debug, clap::Args)]
#[command(after_help = HELP)]
pub(crate) struct DependencyArgs {
    #[command(subcommand)]
    command: DependencyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DependencyCommand {
    /// Resolve `[dependencies]`, write wasmoci.lock, fetch into the store
    #[command(visible_alias = "up")]
    Update(UpdateArgs),
    /// Fetch exactly what wasmoci.lock says, by digest
    Build(BuildArgs),
}

#[derive(Debug, clap::Args)]
struct UpdateArgs {
    /// Move only these packages (and what they force); the rest keep their locked versions
    #[arg(value_name = "PKG")]
    packages: Vec<String>,
    /// With one PKG: exactly this version
    #[arg(long, value_name = "VERSION")]
    precise: Option<String>,
    /// The project directory
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print the lock's packages as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// The project directory
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print the lock's packages as JSON
    #[arg(long)]
    json: bool,
}

fn table(packages: &[LockedPackage]) -> Option<String> {
    (!packages.is_empty()).then(|| {
        packages
            .iter()
            .map(|p| {
                let name = match &p.alias {
                    Some(alias) => format!("{} (as {alias})", p.name),
                    None => p.name.clone(),
                };
                let pinned = p.manifest.as_deref().unwrap_or(&p.layer);
                wasmoci_spec::escape_controls(
                    &format!("{name}@{}  {}  {pinned}", p.version, p.source),
                    false,
                )
                .into_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

impl Report for UpdateReport {
    fn status(&self) -> Option<String> {
        let mut lines: Vec<String> = self
            .changes
            .iter()
            .map(|c| wasmoci_spec::escape_controls(c, false).into_owned())
            .collect();
        lines.push(format!(
            "wrote `{}`: {} package(s)",
            self.lock.display(),
            self.packages.len()
        ));
        Some(lines.join("\n"))
    }
    fn text(&self) -> Option<String> {
        table(&self.packages)
    }
}

impl Report for BuildReport {
    fn status(&self) -> Option<String> {
        Some(format!(
            "fetched {} package(s) as locked",
            self.packages.len()
        ))
    }
    fn text(&self) -> Option<String> {
        table(&self.packages)
    }
}

pub(crate) fn run(args: DependencyArgs) -> Result<ExitCode> {
    match args.command {
        DependencyCommand::Update(args) => {
            let project = Project::load(&args.project)?;
            let precise = args
                .precise
                .as_deref()
                .map(semver::Version::parse)
                .transpose()
                .context("invalid `--precise`")?;
            let client = args.registry.client()?;
            let layout = store_layout()?;
            let report = update(&Update {
                project: &project,
                client: &client,
                layout: &layout,
                only: &args.packages,
                precise: precise.as_ref(),
            })
            .context("failed to update the dependencies")?;
            output::report(&report, args.json);
        }
        DependencyCommand::Build(args) => {
            let project = Project::load(&args.project)?;
            let client = args.registry.client()?;
            let layout = store_layout()?;
            let report = build_locked(&project, &client, &layout)
                .context("failed to fetch the locked dependencies")?;
            output::report(&report, args.json);
        }
    }
    Ok(ExitCode::SUCCESS)
}
