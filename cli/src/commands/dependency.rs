//! `wasmoci dependency` (`dep`): Helm's `dependency update`/`build` for components:
//! resolve `[dependencies]` by semver range, pin the result by digest in `wasmoci.lock`,
//! fetch exactly what it says.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use wasmoci_cli::ops::artifact::store_layout;
use wasmoci_cli::ops::deps::build::{
    BuildReport, VENDOR_DIR, VendorReport, VendorTo, build_locked, offline_build, vendor,
};
use wasmoci_cli::ops::deps::list::{Listed, list};
use wasmoci_cli::ops::deps::lock::LockedPackage;
use wasmoci_cli::ops::deps::resolve::{Update, UpdateReport, update};
use wasmoci_cli::ops::deps::tree;
use wasmoci_cli::project::Project;

use super::args::{RegistryArgs, Strictness};
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
    /// Each dependency: its requirement, locked and latest versions, status
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// The locked graph, from wasmoci.lock alone
    Tree(TreeArgs),
    /// The locked closure as an OCI image layout, for builds without the registries
    Vendor(VendorArgs),
}

#[derive(Debug, clap::Args)]
struct VendorArgs {
    /// Where (default: `vendor/` beside wasmoci.toml, which `--offline` builds read)
    #[arg(value_name = "DIR", conflicts_with = "to")]
    dir: Option<PathBuf>,
    /// Mirror to another registry instead (`HOST/PREFIX/`: each package at
    /// `HOST/PREFIX/<ns>/<name>:<version>`), digests kept
    #[arg(long, value_name = "HOST/PREFIX")]
    to: Option<String>,
    /// Carry each artifact's referrers (SBOMs, attestations) and cosign signatures along,
    /// as `wasmoci copy --referrers`
    #[arg(long)]
    referrers: bool,
    #[command(flatten)]
    common: Common,
}

impl Report for VendorReport {
    fn status(&self) -> Option<String> {
        Some(format!(
            "vendored {} artifact(s) into `{}`",
            self.artifacts.len(),
            self.to
        ))
    }
    fn text(&self) -> Option<String> {
        (!self.artifacts.is_empty())
            .then(|| wasmoci_spec::escape_controls(&self.artifacts.join("\n"), true).into_owned())
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TreeFormat {
    Text,
    Dot,
    Json,
}

#[derive(Debug, clap::Args)]
struct TreeArgs {
    /// The project directory
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    format: TreeFormat,
    /// Show what pulls PKG in, instead of what the project pulls in
    #[arg(long, value_name = "PKG")]
    invert: Option<String>,
    /// At most N levels below the top
    #[arg(long, value_name = "N")]
    depth: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// The project directory
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
    /// No network: leave LATEST, `tag moved` and `tag deleted` out
    #[arg(long)]
    offline: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON array
    #[arg(long)]
    json: bool,
}

struct Listing(Vec<Listed>);

impl Serialize for Listing {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl Report for Listing {
    fn text(&self) -> Option<String> {
        let mut rows = vec![
            [
                "NAME",
                "REQUIREMENT",
                "LOCKED",
                "LATEST",
                "SOURCE",
                "STATUS",
            ]
            .map(str::to_owned),
        ];
        for row in &self.0 {
            rows.push([
                row.name.clone(),
                row.requirement.clone(),
                row.locked.clone().unwrap_or_else(|| "-".into()),
                row.latest.clone().unwrap_or_else(|| "-".into()),
                row.source.clone(),
                row.status.to_owned(),
            ]);
        }
        Some(wasmoci_spec::escape_controls(output::columns(&rows).trim_end(), true).into_owned())
    }
}

#[derive(Debug, clap::Args)]
struct UpdateArgs {
    /// Move only these packages (and what they force); the rest keep their locked versions
    #[arg(value_name = "PKG")]
    packages: Vec<String>,
    /// With one PKG: exactly this version
    #[arg(long, value_name = "VERSION")]
    precise: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// Refuse a locked registry dependency without a valid cosign signature by this public
    /// key (repeatable: any one of them), checked at the registry by the locked digest
    #[arg(long = "verify-key", value_name = "PUB")]
    verify_keys: Vec<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// What `update` and `build` share.
#[derive(Debug, clap::Args)]
struct Common {
    /// The project directory
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
    #[command(flatten)]
    strictness: Strictness,
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
        let n = self.packages.len();
        let mut lines = vec![format!(
            "the store holds the {n} package(s) the lock pins ({} fetched now)",
            self.fetched
        )];
        lines.extend(
            self.wit
                .iter()
                .map(|path| format!("wrote `{}`", path.display())),
        );
        Some(lines.join("\n"))
    }
    fn text(&self) -> Option<String> {
        table(&self.packages)
    }
}

pub(crate) fn run(args: DependencyArgs) -> Result<ExitCode> {
    match args.command {
        DependencyCommand::Update(UpdateArgs {
            packages,
            precise,
            common: args,
        }) => {
            let project = Project::load(&args.project)?;
            let precise = precise
                .as_deref()
                .map(semver::Version::parse)
                .transpose()
                .context("invalid `--precise`")?;
            if args.strictness.offline() {
                anyhow::bail!(
                    "`dependency update --offline` cannot resolve without the registries: use `dependency build --offline` to check the store against the lock"
                );
            }
            let client = args.registry.client()?;
            let layout = store_layout()?;
            let report = update(&Update {
                project: &project,
                client: &client,
                layout: &layout,
                only: &packages,
                precise: precise.as_ref(),
                locked: args.strictness.locked(),
            })
            .context("failed to update the dependencies")?;
            output::report(&report, args.json);
        }
        DependencyCommand::Build(BuildArgs {
            verify_keys,
            common: args,
        }) => {
            let project = Project::load(&args.project)?;
            let layout = store_layout()?;
            if args.strictness.offline() && !verify_keys.is_empty() {
                anyhow::bail!(
                    "`--verify-key` checks signatures at the registry: drop `--offline`/`--frozen`"
                );
            }
            let report = if args.strictness.offline() {
                offline_build(&project, &layout)
            } else {
                let client = args.registry.client()?;
                if !verify_keys.is_empty() {
                    // Before anything is fetched or written: the lock's digests, signed.
                    let lock = wasmoci_cli::ops::deps::build::check_lock(&project)?;
                    let checked = wasmoci_cli::ops::signatures::verify_locked(
                        &client,
                        &lock.packages,
                        &verify_keys,
                    )?;
                    output::status(&format!(
                        "{} locked dependenc(ies) signed by the given key(s)",
                        checked.len()
                    ));
                }
                build_locked(&project, &client, &layout)
            }
            .context("failed to fetch the locked dependencies")?;
            output::report(&report, args.json);
        }
        DependencyCommand::Vendor(VendorArgs {
            dir,
            to,
            referrers,
            common: args,
        }) => {
            let project = Project::load(&args.project)?;
            if args.strictness.offline() {
                anyhow::bail!("`dependency vendor` fetches what the store lacks: drop `--offline`");
            }
            let layout = store_layout()?;
            let dir = dir.unwrap_or_else(|| project.dir.join(VENDOR_DIR));
            // `HOST/PREFIX/`, whatever the trailing slash: packages go below it.
            let prefix = to.map(|p| format!("{}/", p.trim_end_matches('/')));
            let (client, destination) = match &prefix {
                Some(prefix) => {
                    // A repository below the prefix names the registry written to.
                    let below: wasmoci_registry::Reference = format!("{prefix}wasmoci")
                        .parse()
                        .with_context(|| format!("invalid `--to {prefix}`"))?;
                    (
                        args.registry.client_writing_to(&below)?,
                        VendorTo::Registry(prefix),
                    )
                }
                None => (args.registry.client()?, VendorTo::Layout(&dir)),
            };
            let report = vendor(&project, &client, &layout, &destination, referrers)
                .context("failed to vendor the dependencies")?;
            output::report(&report, args.json);
        }
        DependencyCommand::Tree(args) => {
            let project = Project::load(&args.project)?;
            let nodes = tree::tree(&project, args.invert.as_deref(), args.depth)
                .context("failed to show the dependency tree")?;
            match args.format {
                TreeFormat::Text => output::data(
                    wasmoci_spec::escape_controls(tree::text(&nodes).trim_end(), true).as_ref(),
                ),
                TreeFormat::Dot => output::data(tree::dot(&nodes).trim_end()),
                TreeFormat::Json => output::json(&nodes),
            }
        }
        DependencyCommand::List(args) => {
            let project = Project::load(&args.project)?;
            let layout = store_layout()?;
            let client = if args.offline {
                None
            } else {
                Some(args.registry.client()?)
            };
            let rows = list(&project, client.as_ref(), &layout)
                .context("failed to list the dependencies")?;
            output::report(&Listing(rows), args.json);
        }
    }
    Ok(ExitCode::SUCCESS)
}
