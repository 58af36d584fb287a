//! `wasmoci publish`: build → validate (+ policy) → push, the CI one-liner.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use wasmoci_cli::ops::artifact::Loaded;
use wasmoci_cli::ops::build::{Build, BuildRequest, build};
use wasmoci_cli::ops::publish::{Receipt, Timings, check_built};
use wasmoci_cli::policy::ImportPolicy;
use wasmoci_registry::Reference;

use super::args::{BuildFlags, RegistryArgs};
use crate::failure::{BuildFailed, Problems};
use crate::output::{self, Report};

const PUBLISH_HELP: &str = "\
Builds PATH (a project directory or a .wasm/.wat file, default `.`) exactly as `wasmoci
build` (with the same `--wit`/`--world`, `--module`, `-a` and `--revision`), validates the
artifact (the CNCF layout, wasmparser, the project's `[policy]` and
`--deny-import`/`--allow-import`), then pushes it to DEST. Nothing is pushed unless every
step before succeeded. A DEST without a tag takes the version of what was built (the
project's `version`); a file has none, and goes to `latest`.

Exit status:
  0  published
  1  the artifact is invalid or the import policy refuses it
  2  usage error, or something unexpected
  3  the build failed
  4  the registry refused us (unauthorized, denied, not found)
  5  the transfer failed (unreachable, TLS, a digest mismatch, another registry error)

Examples:
  wasmoci publish ghcr.io/acme/hello:0.1.0
  wasmoci publish ./app localhost:5000/app:1.0.0 --receipt receipt.json --deny-import 'wasi:sockets/*'
  COSIGN_PASSWORD=… wasmoci publish ghcr.io/acme/hello:0.1.0 --sign cosign.key --sbom sbom.spdx.json

With `--sbom` and `--sign`, the SBOMs are attached (referrers of the pushed manifest) and
the manifest is signed after the push; the receipt lists the signature and the referrers.";

/// Build, validate and push in one step
#[derive(Debug, clap::Args)]
#[command(after_help = PUBLISH_HELP)]
pub(crate) struct PublishArgs {
    /// `[PATH] DEST`: what to build (default `.`) and `HOST/REPO[:TAG]` to push to
    #[arg(value_name = "[PATH] DEST", num_args = 1..=2, required = true)]
    targets: Vec<String>,
    /// Write a JSON receipt: every digest, size, annotation and timing
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// Refuse imports matching this glob (repeatable)
    #[arg(long = "deny-import", value_name = "PATTERN")]
    deny_imports: Vec<String>,
    /// Allow only imports matching these globs (repeatable)
    #[arg(long = "allow-import", value_name = "PATTERN")]
    allow_imports: Vec<String>,
    /// Do not compare the WIT with the repository's newest compatible earlier release
    #[arg(long)]
    skip_semver_check: bool,
    /// Sign what was pushed with this private key, as `wasmoci sign` (cosign's format;
    /// the password from `COSIGN_PASSWORD`, read before the build)
    #[arg(long = "sign", value_name = "KEY")]
    sign_key: Option<PathBuf>,
    /// Attach this SBOM to what was pushed, as `wasmoci attach` (SPDX or CycloneDX JSON,
    /// told apart by `bomFormat`; repeatable)
    #[arg(long = "sbom", value_name = "FILE")]
    sboms: Vec<PathBuf>,
    #[command(flatten)]
    build: BuildFlags,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print the receipt on stdout instead of the reference
    #[arg(long)]
    json: bool,
}

/// The receipt, and the summary line for people.
#[derive(Serialize)]
struct Published {
    #[serde(flatten)]
    receipt: Receipt,
    #[serde(skip)]
    summary: String,
}

impl Report for Published {
    fn status(&self) -> Option<String> {
        Some(self.summary.clone())
    }
    fn text(&self) -> Option<String> {
        Some(self.receipt.reference.clone())
    }
}

/// `dest` with a tag: its own, else the version the build gave the artifact (the
/// project's `version`, the version of `--tag`); `latest`, said in a note, when there is none.
fn destination(dest: Reference, built_tag: &str, path: &Path) -> Reference {
    if dest.tag.is_some() || dest.digest.is_some() {
        return dest;
    }
    let version = built_tag.rsplit_once(':').map_or("latest", |(_, v)| v);
    if version == "latest" {
        output::note(&format!(
            "`{dest}` names no tag and `{}` no version: pushing `latest`",
            path.display()
        ));
    }
    dest.with_tag(version)
}

pub(crate) fn run(args: PublishArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (path, dest) = match args.targets.as_slice() {
        [dest] => (PathBuf::from("."), dest.clone()),
        [path, dest] => (PathBuf::from(path), dest.clone()),
        _ => bail!("expected `[PATH] DEST`"),
    };
    let dest: Reference = dest.parse()?;
    args.registry.plain_http_note(&dest);
    let policy = ImportPolicy::new(&args.deny_imports, &args.allow_imports)?;
    let client = args.registry.client_writing_to(&dest)?;
    // The key first: a wrong password fails before anything is built or pushed.
    let signing_key = args
        .sign_key
        .as_ref()
        .map(|path| {
            wasmoci_cli::ops::signatures::signing_key(path, super::sign::password)
                .map(|key| (key, path))
        })
        .transpose()?;

    // 1. Build, into a scratch layout.
    let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
    let request = BuildRequest {
        layout: Some(scratch.path().join("layout")),
        ..args.build.request(path.clone())
    };
    let built = match build(&request, &mut super::built::running) {
        Ok(Build::Stored(built)) => built,
        Ok(Build::Refused(refused)) => return Err(super::built::refusal(&refused)),
        Err(e) => return Err(anyhow::Error::new(e).context(BuildFailed(path))),
    };
    for note in &built.notes {
        output::note(note);
    }
    if let Some(line) = built.status() {
        output::status(&line);
    }
    let build_ms = started.elapsed().as_millis();
    let dest = destination(dest, &built.tag, &path);

    // 2. Check what was built, as `wasmoci validate` would.
    let validating = Instant::now();
    let (loaded, checked) = check_built(&built, &policy)?;
    if !checked.valid {
        return Err(Problems {
            header: format!(
                "`{}` is not published: {} problem(s)",
                built.tag,
                checked.violations.len()
            ),
            problems: checked.violations.iter().map(ToString::to_string).collect(),
        }
        .into());
    }
    let Loaded::Stored(parts) = &loaded else {
        unreachable!("a layout holds stored artifacts");
    };
    if !args.skip_semver_check {
        semver_checked(&client, &dest, &parts.wasm()?.bytes)?;
    }
    let validate_ms = validating.elapsed().as_millis();

    // 3. Push.
    let pushing = Instant::now();
    let (layout, stored) = (&parts.layout, &parts.stored);
    let report = client
        .push(layout, stored, &dest)
        .with_context(|| format!("failed to push to `{dest}`"))?;
    let push_ms = pushing.elapsed().as_millis();
    // 4. Attach and sign what was pushed, by digest.
    let signing = Instant::now();
    let pushed = dest.with_digest(stored.descriptor.digest);
    let mut referrers = Vec::new();
    for sbom in &args.sboms {
        let files = [sbom.display().to_string()];
        let attached = wasmoci_cli::ops::referrers::attach(
            &client,
            wasmoci_cli::ops::referrers::AttachRequest {
                subject: &pushed,
                artifact_type: wasmoci_cli::ops::referrers::sbom_type(sbom),
                files: &files,
                annotations: Default::default(),
                created: wasmoci_cli::ops::build::build_time()?,
            },
        )
        .with_context(|| format!("failed to attach `{}` to `{pushed}`", sbom.display()))?;
        referrers.push(attached);
    }
    let signature = signing_key
        .map(|(key, path)| wasmoci_cli::ops::signatures::sign(&client, &pushed, &key, path))
        .transpose()?;
    let timings = Timings {
        build: build_ms,
        validate: validate_ms,
        push: push_ms,
        sign: signing.elapsed().as_millis(),
        total: started.elapsed().as_millis(),
    };
    let mut receipt = Receipt::new(&dest, parts, &report, timings)?;
    receipt.signature = signature;
    receipt.referrers = referrers;
    let published = Published {
        receipt,
        summary: format!(
            "published `{dest}`: {} blob(s) uploaded, {} already there",
            report.uploaded.len(),
            report.skipped.len()
        ),
    };
    if let Some(path) = &args.receipt {
        let mut text = serde_json::to_vec_pretty(
            &serde_json::to_value(&published.receipt).expect("the receipt serializes"),
        )
        .expect("JSON serializes");
        text.push(b'\n');
        super::args::write_atomically(path, &text, 0o644).context("failed to write the receipt")?;
    }
    // The summary goes to stderr even with `--json` (the receipt is the data).
    output::report(&published, args.json);
    if args.json {
        output::status(&published.summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses to publish `wasm` as `dest` when it breaks the WIT of the newest earlier
/// release it is semver-compatible with (as `wkg publish` does).
fn semver_checked(
    client: &wasmoci_registry::client::Client,
    dest: &Reference,
    wasm: &[u8],
) -> Result<()> {
    use wasmoci_cli::ops::semver::{previous_release, semver_check};
    let compare = || {
        format!(
            "failed to compare `{dest}` with its earlier releases (`--skip-semver-check` skips this)"
        )
    };
    let Some(earlier) = previous_release(client, dest).with_context(compare)? else {
        return Ok(());
    };
    let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
    let layout = wasmoci_registry::Layout::at(scratch.path());
    let pulled =
        wasmoci_cli::ops::artifact::pull(client, &earlier, &layout).with_context(compare)?;
    let reference = wasmoci_cli::reference::ArtifactRef::Layout {
        dir: scratch.path().to_owned(),
        reference: wasmoci_registry::LayoutRef::Digest(pulled.digest),
    };
    let old = wasmoci_cli::ops::artifact::wasm(&reference)?;
    let report = match semver_check(
        (&earlier.to_string(), &old.bytes),
        (&dest.to_string(), wasm),
        None,
    ) {
        Ok(report) => report,
        // A core module has no WIT, a package of several worlds no one world to compare.
        Err(
            e @ (wasmoci_cli::ops::semver::SemverError::Decode { .. }
            | wasmoci_cli::ops::semver::SemverError::World { .. }),
        ) => {
            output::note(&format!("not compared with `{earlier}`: {e}"));
            return Ok(());
        }
        Err(e) => return Err(anyhow::Error::new(e).context(compare())),
    };
    if report.compatible {
        output::status(&format!("semver-compatible with `{earlier}`"));
        return Ok(());
    }
    Err(Problems {
        header: format!(
            "`{dest}` is not published: it breaks `{earlier}`, an earlier compatible release (`--skip-semver-check` to publish anyway)"
        ),
        problems: report.break_lines(),
    }
    .into())
}
