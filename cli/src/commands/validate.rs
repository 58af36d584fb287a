//! `wasmoci validate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use wasmoci_cli::ops::check::{CheckOptions, CheckReport, check};
use wasmoci_cli::ops::componentize::WitWorld;
use wasmoci_cli::policy::ImportPolicy;
use wasmoci_cli::project::{PROJECT_FILE, Project};
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_spec::wasm_features;

use super::args::PullOnDemand;
use crate::failure::Problems;
use crate::output::{self, Report};

const AFTER_HELP: &str = "\
Checks:
  - the bytes validate with wasmparser (every feature on unless `--features` says otherwise)
  - for layout and store artifacts, the CNCF Wasm OCI artifact layout: media types, sizes
    and digests, exactly one wasm layer, `layerDigests`, `architecture`, `os` against the
    bytes, `component` present iff the layer is a component, imports and exports as the
    bytes declare them
  - `--world`: the component fits the world (like `wasm-tools component targets`)
  - import policy: `--deny-import`/`--allow-import` and `[policy]` in `wasmoci.toml`
    (globs over `ns:pkg/iface@version` for components, over import module names such as
    `wasi_snapshot_preview1` for core modules)

Every problem is printed on stderr as `[code] path: message`; `--json` prints a report
on stdout instead.

Exit status:
  0  valid
  1  invalid, or the policy refuses an import
  2  usage error, or the artifact could not be read

Examples:
  wasmoci validate app.wasm
  wasmoci validate hello:0.1.0 --deny-import 'wasi:sockets/*'
  wasmoci validate oci:out:app:1.0.0 --world wit:proxy --json
  wasmoci validate app.wasm --features wasm2,component-model";

/// Check an artifact: the wasm, the OCI layout, a world, an import policy.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ValidateArgs {
    /// `FILE.wasm`, `FILE.wat`, `oci:DIR[:TAG|@DIGEST]`, `NAME:TAG` in the store or
    /// `HOST/REPO:TAG` (pulled into the store first)
    #[arg(value_name = "ARTIFACT")]
    artifact: ArtifactRef,
    /// Wasm features to allow, comma-separated (`wasm2,simd`, `-gc`, `all`) [default: all]
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    features: Option<String>,
    /// Check that the component fits a world: a WIT directory, `:WORLD` to pick one
    #[arg(long, value_name = "WIT_DIR[:WORLD]")]
    world: Option<String>,
    /// Refuse imports matching this glob (repeatable), e.g. `wasi:sockets/*`
    #[arg(long = "deny-import", value_name = "PATTERN")]
    deny_imports: Vec<String>,
    /// Allow only imports matching these globs (repeatable)
    #[arg(long = "allow-import", value_name = "PATTERN")]
    allow_imports: Vec<String>,
    /// Read `[policy]` from this `wasmoci.toml` (or its directory) [default: ./wasmoci.toml if present]
    #[arg(long, value_name = "PATH")]
    project: Option<PathBuf>,
    /// Print a JSON report on stdout
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pull: PullOnDemand,
}

impl Report for CheckReport {
    fn status(&self) -> Option<String> {
        self.valid.then(|| {
            format!(
                "`{}` is valid{}",
                self.reference,
                self.wasm_kind
                    .map_or(String::new(), |k| format!(": a {} {k}", k.os()))
            )
        })
    }
}

pub(crate) fn run(args: ValidateArgs) -> Result<ExitCode> {
    let features = match &args.features {
        Some(list) => {
            wasm_features(list).map_err(|e| anyhow::anyhow!("invalid `--features`: {e}"))?
        }
        None => wasmparser::WasmFeatures::all(),
    };
    let policy = policy(&args)?;
    let world = args.world.as_deref().map(|w| match w.split_once(':') {
        Some((dir, world)) => WitWorld {
            dir: dir.into(),
            world: Some(world.into()),
        },
        None => WitWorld {
            dir: w.into(),
            world: None,
        },
    });
    let world = world.map(|w| w.load()).transpose()?;
    args.pull.fetch(&args.artifact)?;
    let options = CheckOptions {
        features,
        policy: &policy,
        world: world.as_ref(),
    };
    let report = check(&args.artifact, &options)?;
    output::report(&report, args.json);
    if report.valid {
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        // The report says it (`valid: false`, every violation).
        return Ok(ExitCode::FAILURE);
    }
    let n = report.violations.len();
    Err(Problems {
        header: format!(
            "`{}` is invalid: {n} problem{}",
            report.reference,
            if n == 1 { "" } else { "s" }
        ),
        problems: report.violations.iter().map(ToString::to_string).collect(),
    }
    .into())
}

fn policy(args: &ValidateArgs) -> Result<ImportPolicy> {
    let mut deny = args.deny_imports.clone();
    let mut allow = args.allow_imports.clone();
    let project_dir = match &args.project {
        Some(path) if path.is_dir() => Some(path.clone()),
        Some(path) => Some(path.parent().map(PathBuf::from).unwrap_or_default()),
        None => std::path::Path::new(PROJECT_FILE)
            .exists()
            .then(|| PathBuf::from(".")),
    };
    if let Some(dir) = project_dir {
        let project = Project::load(&dir)?;
        deny.extend(project.policy.deny_imports);
        allow.extend(project.policy.allow_imports);
    }
    ImportPolicy::new(&deny, &allow).context("invalid import policy")
}
