use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::json;
use wasmoci_cli::build::{PackageMetadata, WitWorld, componentize, read_wasm};
use wasmoci_cli::env::SOURCE_DATE_EPOCH;
use wasmoci_cli::policy::ImportPolicy;
use wasmoci_cli::project::{PROJECT_FILE, Project};
use wasmoci_cli::reference::{check_name, check_tag};
use wasmoci_registry::Layout;
use wasmoci_spec::{ArtifactInput, Timestamp, WasmKind, annotations, build_artifact};

use crate::Outcome;
use crate::output;

const EXAMPLES: &str = "\
Examples:
  wasmoci build                                  # the project in the current directory
  wasmoci build app.wasm --tag app:1.2.0          # a file, into the embedded store
  wasmoci build . --layout out -o app.wasm        # into ./out (an OCI image layout), and a copy
  wasmoci build core.wasm --wit wit --world app   # give a core module its world
  SOURCE_DATE_EPOCH=0 wasmoci build --json        # reproducible, machine-readable";

/// Build a module or component into a Wasm OCI artifact and store it.
///
/// A component is taken as is. A core module becomes a component from its embedded
/// component type, from `--wit`/`--world`, or, when it imports `wasi_snapshot_preview1`,
/// with the wasip1 adapter (`--module` keeps it a wasip1 module). Package metadata is
/// embedded and mirrored into `org.opencontainers.image.*` annotations. With
/// `SOURCE_DATE_EPOCH` set, the same input gives the same digests.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct BuildArgs {
    /// A `.wasm` or `.wat` file, or a directory holding `wasmoci.toml`
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Tag to store it under [default: from `wasmoci.toml`, or FILE_STEM:latest]
    #[arg(short, long, value_name = "NAME:VERSION")]
    tag: Option<String>,
    /// Store into this OCI image layout directory instead of the embedded store
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Also write the module or component alone to FILE
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Add or override a manifest annotation (repeatable)
    #[arg(short, long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Keep a wasip1 core module a module instead of adapting it into a component
    #[arg(long, conflicts_with = "wit")]
    module: bool,
    /// WIT directory giving a core module its world (with `deps/`)
    #[arg(long, value_name = "DIR")]
    wit: Option<PathBuf>,
    /// World in `--wit` [default: the package's only world]
    #[arg(long, value_name = "NAME", requires = "wit")]
    world: Option<String>,
    /// Source control revision to record
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Print a JSON object instead of the reference
    #[arg(long)]
    json: bool,
}

/// What a build made.
pub(crate) struct Built {
    /// `NAME:TAG@DIGEST` or `oci:DIR:TAG@DIGEST`.
    pub(crate) reference: String,
    /// The tag in the layout.
    pub(crate) tag: String,
    /// The layout it went into.
    pub(crate) layout: Layout,
    /// The `--json` object.
    pub(crate) report: serde_json::Value,
    /// The status line.
    pub(crate) summary: String,
}

impl BuildArgs {
    /// `wasmoci build PATH` with every option at its default, into `layout` (the store
    /// when `None`).
    pub(crate) fn for_path(path: PathBuf, layout: Option<PathBuf>) -> Self {
        BuildArgs {
            path,
            tag: None,
            layout,
            output: None,
            annotations: Vec::new(),
            module: false,
            wit: None,
            world: None,
            revision: None,
            json: false,
        }
    }
}

pub(crate) fn run(args: BuildArgs) -> Result<Outcome> {
    let Some(built) = build(&args)? else {
        return Ok(Outcome::Problems);
    };
    if args.json {
        output::json(&built.report);
    } else {
        output::status(&built.summary);
        output::data(&built.reference);
    }
    Ok(Outcome::Ok)
}

/// Builds and stores; `None` when the project's policy refuses the result (already
/// reported on stderr).
pub(crate) fn build(args: &BuildArgs) -> Result<Option<Built>> {
    let created = build_time()?;
    let extra_annotations = parse_annotations(&args.annotations)?;

    // 1. The input: a project directory or a file.
    let project = if args.path.is_dir() {
        Some(Project::load(&args.path)?)
    } else {
        None
    };
    let (wasm_path, mut metadata, keep_module, wit, policy) = match &project {
        Some(project) => {
            if let Some(command) = &project.build.command {
                run_build_command(command, &project.dir)?;
            }
            let p = &project.package;
            let metadata = PackageMetadata {
                name: p.name.clone(),
                version: Some(p.version.clone()),
                authors: p.authors.clone(),
                license: p.license.clone(),
                description: p.description.clone(),
                source: p.source.clone(),
                homepage: p.homepage.clone(),
                revision: p.revision.clone(),
            };
            let wit = project.build.wit.as_ref().map(|dir| WitWorld {
                dir: project.dir.join(dir),
                world: project.build.world.clone(),
            });
            let policy =
                ImportPolicy::new(&project.policy.deny_imports, &project.policy.allow_imports)
                    .with_context(|| {
                        format!(
                            "invalid `[policy]` in `{}`",
                            project.dir.join(PROJECT_FILE).display()
                        )
                    })?;
            (
                project.dir.join(&project.build.wasm),
                metadata,
                project.build.module,
                wit,
                policy,
            )
        }
        None => {
            if !args.path.exists() {
                bail!(
                    "failed to read `{}`: no such file or directory",
                    args.path.display()
                );
            }
            let stem = args
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            let metadata = PackageMetadata {
                name: stem,
                ..PackageMetadata::default()
            };
            (
                args.path.clone(),
                metadata,
                false,
                None,
                ImportPolicy::new(&[], &[])?,
            )
        }
    };
    let (name, version) = match &args.tag {
        Some(tag) => {
            let (name, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
            check_name(name).map_err(|r| anyhow::anyhow!("invalid `--tag {tag}`: {r}"))?;
            check_tag(version).map_err(|r| anyhow::anyhow!("invalid `--tag {tag}`: {r}"))?;
            if project.is_none() {
                metadata.name = name.to_owned();
                if semver::Version::parse(version).is_ok() {
                    metadata.version = Some(version.to_owned());
                }
            }
            (name.to_owned(), version.to_owned())
        }
        None => {
            check_name(&metadata.name).map_err(|r| {
                anyhow::anyhow!(
                    "failed to name the artifact after the file: {r}; pass `--tag NAME:VERSION`"
                )
            })?;
            let version = metadata.version.clone().unwrap_or_else(|| "latest".into());
            (metadata.name.clone(), version)
        }
    };
    if let Some(revision) = &args.revision {
        metadata.revision = Some(revision.clone());
    }
    let wit = args
        .wit
        .as_ref()
        .map(|dir| WitWorld {
            dir: dir.clone(),
            world: args.world.clone(),
        })
        .or(wit);

    // 2. Make it what goes into the artifact.
    let input = read_wasm(&wasm_path)?;
    let built = componentize(input, &wasm_path, keep_module || args.module, wit.as_ref())?;
    for note in &built.notes {
        output::note(note);
    }
    if !policy.is_empty() {
        let imports = match built.kind {
            WasmKind::Component => wasmoci_spec::component_section(&built.wasm)?.imports,
            WasmKind::Module => wasmoci_spec::module_import_names(&built.wasm),
        };
        let refused = policy.check(imports.iter().map(String::as_str));
        if !refused.is_empty() {
            output::status(&format!(
                "error: `{}` imports what the `[policy]` of `{PROJECT_FILE}` refuses; nothing was stored",
                wasm_path.display()
            ));
            for r in refused {
                output::status(&format!("  [policy-import] `{}`: {}", r.import, r.reason));
            }
            return Ok(None);
        }
    }
    let wasm = metadata.embed(&built.wasm, &wasm_path)?;

    // 3. The artifact.
    let mut manifest_annotations = metadata.annotations();
    manifest_annotations.extend(extra_annotations);
    let mut input = ArtifactInput::new(&wasm, created);
    input.author = metadata.authors_text();
    input.target = built.target.clone();
    input.annotations = manifest_annotations;
    input.layer_annotations = BTreeMap::from([(
        annotations::TITLE.to_owned(),
        format!("{}.wasm", name.rsplit('/').next().unwrap_or(&name)),
    )]);
    let artifact = build_artifact(input)?;

    // 4. Write: `-o` to a temporary file first, then the layout, then rename `-o`, so a
    // failure anywhere leaves nothing behind.
    let staged_output = match &args.output {
        Some(path) => Some(stage(path, &wasm)?),
        None => None,
    };
    let (layout, in_store) = match &args.layout {
        Some(dir) => (Layout::at(dir), false),
        None => (super::store_layout()?, true),
    };
    let tag = format!("{name}:{version}");
    let layer = artifact.layer().clone();
    layout
        .store(
            &artifact.manifest_bytes,
            &[
                (&artifact.manifest.config, artifact.config_bytes.as_slice()),
                (&layer, wasm.as_slice()),
            ],
            Some(&tag),
        )
        .with_context(|| format!("failed to store `{tag}` in `{}`", layout.root().display()))?;
    if let (Some(file), Some(path)) = (staged_output, &args.output) {
        file.commit(0o644)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }

    let reference = if in_store {
        format!("{tag}@{}", artifact.manifest_digest)
    } else {
        format!(
            "oci:{}:{tag}@{}",
            layout.root().display(),
            artifact.manifest_digest
        )
    };
    let component = artifact.config.component.as_ref();
    let report = json!({
        "reference": reference,
        "tag": tag,
        "layout": layout.root(),
        "digest": artifact.manifest_digest.to_string(),
        "manifest_size": artifact.manifest_bytes.len(),
        "config_digest": artifact.manifest.config.digest.to_string(),
        "config_size": artifact.config_bytes.len(),
        "layer_digest": layer.digest.to_string(),
        "size": layer.size,
        "kind": artifact.kind.as_str(),
        "os": artifact.config.os.as_str(),
        "conversion": built.conversion.describe(),
        "target": component.and_then(|c| c.target.clone()),
        "imports": component.map(|c| &c.imports),
        "exports": component.map(|c| &c.exports),
        "annotations": artifact.manifest.annotations,
        "output": args.output,
    });
    let summary = format!(
        "built `{tag}`: {} ({} bytes)",
        built.conversion.describe(),
        layer.size
    );
    Ok(Some(Built {
        reference,
        tag,
        layout,
        report,
        summary,
    }))
}

/// `SOURCE_DATE_EPOCH` when set, else now.
fn build_time() -> Result<Timestamp> {
    match wasmoci_cli::env::source_date_epoch() {
        Some(text) => {
            let seconds: i64 = text.trim().parse().with_context(|| {
                format!("invalid `{SOURCE_DATE_EPOCH}` `{text}`: expected seconds since 1970-01-01")
            })?;
            if !(0..=253_402_300_799).contains(&seconds) {
                bail!(
                    "invalid `{SOURCE_DATE_EPOCH}` `{text}`: expected a time between 1970 and 9999"
                );
            }
            Ok(Timestamp::from_unix_seconds(seconds)?)
        }
        None => Ok(Timestamp::from_datetime(time::OffsetDateTime::now_utc())),
    }
}

fn parse_annotations(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => bail!("invalid annotation `{pair}`: expected `KEY=VALUE`"),
        })
        .collect()
}

fn run_build_command(command: &str, dir: &Path) -> Result<()> {
    output::status(&format!("running `{command}` in `{}`", dir.display()));
    // The command's stdout goes to our stderr: our stdout carries only the result.
    let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .with_context(|| format!("failed to run `build.command` `{command}`"))?;
    if !status.success() {
        bail!("`build.command` `{command}` failed with {status}; nothing was stored");
    }
    Ok(())
}

fn stage(path: &Path, bytes: &[u8]) -> Result<wasmoci_fs::AtomicFile> {
    let mut file = wasmoci_fs::AtomicFile::create(path)
        .and_then(|mut f| f.write_all(bytes).map(|()| f))
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    file.flush()
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(file)
}
