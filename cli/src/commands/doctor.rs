//! `wasmoci doctor`: what a registry can do for wasmoci.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use wasmoci_registry::Reference;
use wasmoci_registry::client::Doctor;
use wasmoci_spec::escape_controls;

use super::args::RegistryArgs;
use crate::failure::Problems;
use crate::output::{self, Report};

const DOCTOR_HELP: &str = "\
Probes REGISTRY by doing what wasmoci does, in a throwaway repository below REPO (default
`wasmoci-doctor/`), and prints what it can and cannot do:
  api                        `GET /v2/` (needed)
  auth                       anonymous, Basic or Bearer (its realm), with your credentials (needed)
  monolithic-upload          one `PUT` of a blob (needed)
  chunked-upload             `PATCH` chunks (wasmoci uses them above 512 MiB)
  cross-repo-mount           a blob mounted from another repository (pushes skip uploads)
  wasm-config                a manifest with config `application/vnd.wasm.config.v0+json` (needed)
  artifact-type-and-subject  OCI 1.1 `artifactType` and `subject` (`attach`, needed)
  referrers                  the referrers API, or the tag schema in its place (needed)
  tag-pagination             `tags/list?n=` and `Link` (every page is read either way)
  manifest-delete            deleting manifests (to clean up here)
What it pushed is deleted again where the registry allows it; what it could not delete
is listed.

Examples:
  wasmoci doctor ghcr.io/acme
  wasmoci doctor localhost:5000 --json

Exit status:
  0  the registry can do everything wasmoci needs
  1  it cannot (each missing capability listed)
  2  usage error
  4  the registry refused us (unauthorized, denied)
  5  the registry cannot be reached";

/// Probe a registry for what wasmoci needs (in a throwaway repository, cleaned up)
#[derive(Debug, clap::Args)]
#[command(after_help = DOCTOR_HELP)]
pub(crate) struct DoctorArgs {
    /// `HOST[:PORT]` or `HOST[:PORT]/REPO`
    #[arg(value_name = "REGISTRY[/REPO]")]
    target: String,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ProbeRow {
    name: &'static str,
    result: &'static str,
    needed: bool,
    detail: String,
}

#[derive(Serialize)]
struct Checked {
    registry: String,
    repository: String,
    ready: bool,
    probes: Vec<ProbeRow>,
    left: Vec<String>,
}

impl Report for Checked {
    fn status(&self) -> Option<String> {
        self.ready.then(|| {
            format!(
                "`{}` can do everything wasmoci needs (probed in `{}`)",
                self.registry, self.repository
            )
        })
    }
    fn text(&self) -> Option<String> {
        let mut lines: Vec<String> = self
            .probes
            .iter()
            .map(|p| {
                let line = format!(
                    "{:26} {:8} {}{}",
                    p.name,
                    p.result,
                    if p.needed { "" } else { "(optional) " },
                    p.detail
                );
                escape_controls(line.trim_end(), false).into_owned()
            })
            .collect();
        for left in &self.left {
            lines.push(format!("left behind: {}", escape_controls(left, false)));
        }
        Some(lines.join("\n"))
    }
}

fn target(text: &str) -> Result<Reference> {
    Ok(match text.split_once('/') {
        Some(_) => text
            .parse::<Reference>()
            .with_context(|| format!("invalid `{text}`: expected `HOST[:PORT][/REPO]`"))?,
        None => {
            let with_repo: Reference = format!("{text}/wasmoci-doctor")
                .parse()
                .with_context(|| format!("invalid `{text}`: expected `HOST[:PORT][/REPO]`"))?;
            Reference {
                repository: String::new(),
                ..with_repo
            }
        }
    })
}

pub(crate) fn run(args: DoctorArgs) -> Result<ExitCode> {
    let at = target(&args.target)?;
    args.registry.plain_http_note(&at);
    let client = args.registry.client_writing_to(&at)?;
    let doctor: Doctor = client
        .doctor(&at)
        .with_context(|| format!("failed to probe `{}`", at.registry))?;
    let checked = Checked {
        registry: at.registry.clone(),
        repository: doctor.repository.clone(),
        ready: doctor.missing().next().is_none(),
        probes: doctor
            .probes
            .iter()
            .map(|p| ProbeRow {
                name: p.name,
                result: p.outcome.as_str(),
                needed: p.needed,
                detail: p.detail.clone(),
            })
            .collect(),
        left: doctor.left.clone(),
    };
    output::report(&checked, args.json);
    if !checked.ready && args.json {
        // The report says it, with every probe.
        return Ok(ExitCode::FAILURE);
    }
    if !checked.ready {
        return Err(Problems {
            header: format!("`{}` cannot do everything wasmoci needs", at.registry),
            problems: doctor
                .missing()
                .map(|p| format!("[{}] {}", p.name, p.detail))
                .collect(),
        }
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
