//! `wasmoci build` as a library call: a file or project directory into a Wasm OCI
//! artifact in a layout (the store by default), with a report of what was made.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;
use wasmoci_registry::Layout;
use wasmoci_spec::{ArtifactInput, Digest, Timestamp, annotations, build_artifact};

use crate::ops::artifact::store_layout;
use crate::ops::componentize::{
    Conversion, PackageMetadata, WitWorld, componentize, is_wat, read_wasm,
};
use crate::ops::{Error, Result, check};
use crate::policy::{ImportPolicy, Refusal};
use crate::project::{PROJECT_FILE, Project};
use crate::reference::{check_name, check_tag};

/// What to build, and where to put it.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// A `.wasm` or `.wat` file, or a directory holding `wasmoci.toml`.
    pub path: PathBuf,
    /// `NAME:VERSION` to store it under (default: from the project, or the file's stem).
    pub tag: Option<String>,
    /// A layout directory instead of the embedded store.
    pub layout: Option<PathBuf>,
    /// Also write the module or component alone here.
    pub output: Option<PathBuf>,
    /// `KEY=VALUE` manifest annotations to add or override.
    pub annotations: Vec<String>,
    /// Keep a wasip1 core module a module.
    pub module: bool,
    /// A WIT directory giving a core module its world.
    pub wit: Option<PathBuf>,
    /// The world in `wit`.
    pub world: Option<String>,
    /// The source control revision to record.
    pub revision: Option<String>,
    /// Store the wasm without embedding the package metadata (annotations still carry it).
    pub no_metadata: bool,
    /// `--locked`: a project with `[dependencies]` needs a `wasmoci.lock` in sync.
    pub locked: bool,
}

impl BuildRequest {
    /// `wasmoci build PATH` with every option at its default, into `layout` (the store
    /// when `None`).
    pub fn for_path(path: PathBuf, layout: Option<PathBuf>) -> Self {
        BuildRequest {
            path,
            layout,
            ..BuildRequest::default()
        }
    }
}

/// What a build did.
#[derive(Debug)]
pub enum Build {
    /// The artifact is stored.
    Stored(Box<BuildReport>),
    /// The project's `[policy]` refused the result; nothing was stored.
    Refused(Refused),
}

/// A stored build: the `--json` report, and the notes for people.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// `NAME:TAG@DIGEST` or `oci:DIR:TAG@DIGEST`.
    pub reference: String,
    /// The tag in the layout.
    pub tag: String,
    /// The layout it went into.
    pub layout: PathBuf,
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest's size.
    pub manifest_size: usize,
    /// The config digest.
    pub config_digest: Digest,
    /// The config's size.
    pub config_size: usize,
    /// The wasm layer's digest.
    pub layer_digest: Digest,
    /// The wasm layer's size.
    pub size: u64,
    /// `component` or `module`.
    pub kind: &'static str,
    /// `wasip1` or `wasip2`.
    pub os: String,
    /// How the input became what is stored.
    pub conversion: &'static str,
    /// The package metadata fields embedded into the wasm (none with `--no-metadata`).
    pub metadata: Vec<&'static str>,
    /// Whether the layer is the input file byte for byte.
    pub unchanged: bool,
    /// The world, when known.
    pub target: Option<String>,
    /// A component's imports.
    pub imports: Option<Vec<String>>,
    /// A component's exports.
    pub exports: Option<Vec<String>>,
    /// The manifest annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// The `-o` copy.
    pub output: Option<PathBuf>,
    /// Things worth telling the user.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// A build the project's `[policy]` refused.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The wasm that was refused.
    pub path: PathBuf,
    /// Each refused import.
    pub refusals: Vec<Refusal>,
    /// Things worth telling the user.
    pub notes: Vec<String>,
}

/// What the project directory or file gives the build.
struct Input {
    wasm_path: PathBuf,
    metadata: PackageMetadata,
    keep_module: bool,
    wit: Option<WitWorld>,
    policy: ImportPolicy,
    from_project: bool,
    /// The project's requirements, for `dev.wasmoci.dependencies`.
    dependencies: Option<String>,
    /// `[compose]`, and the project directory.
    compose: Option<(crate::project::ComposeSection, PathBuf)>,
}

fn input(request: &BuildRequest, on_command: &mut dyn FnMut(&str, &Path)) -> Result<Input> {
    if request.path.is_dir() {
        let project = Project::load(&request.path)?;
        if request.locked && !project.dependencies.is_empty() {
            crate::ops::deps::build::check_lock(&project)
                .map_err(|e| Error::Dependencies(Box::new(e)))?;
        }
        if let Some(command) = &project.build.command {
            on_command(command, &project.dir);
            run_build_command(command, &project.dir)?;
        }
        let wit = project.build.wit.as_ref().map(|dir| WitWorld {
            dir: project.dir.join(dir),
            world: project.build.world.clone(),
        });
        let policy = ImportPolicy::new(&project.policy.deny_imports, &project.policy.allow_imports)
            .map_err(|source| Error::ProjectPolicy {
                path: project.dir.join(PROJECT_FILE),
                source,
            })?;
        return Ok(Input {
            wasm_path: project.dir.join(&project.build.wasm),
            metadata: PackageMetadata::from(&project.package),
            keep_module: project.build.module,
            wit,
            policy,
            from_project: true,
            dependencies: crate::ops::deps::resolve::annotation(&project)
                .map_err(|e| Error::Dependencies(Box::new(e)))?,
            compose: project.compose.clone().map(|c| (c, project.dir.clone())),
        });
    }
    if !request.path.exists() {
        return Err(Error::NoInput(request.path.clone()));
    }
    let stem = request
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    Ok(Input {
        wasm_path: request.path.clone(),
        metadata: PackageMetadata {
            name: stem,
            ..PackageMetadata::default()
        },
        keep_module: false,
        wit: None,
        policy: ImportPolicy::new(&[], &[])?,
        from_project: false,
        dependencies: None,
        compose: None,
    })
}

/// Builds and stores. `on_command` is told before a project's `build.command` runs
/// (whose stdout goes to this process's stderr: stdout carries only results).
pub fn build(request: &BuildRequest, on_command: &mut dyn FnMut(&str, &Path)) -> Result<Build> {
    let created = build_time()?;
    let extra_annotations = parse_annotations(&request.annotations)?;

    // 1. The input: a project directory or a file.
    let Input {
        wasm_path,
        mut metadata,
        keep_module,
        wit,
        policy,
        from_project,
        dependencies,
        compose,
    } = input(request, on_command)?;
    let (name, version) = match &request.tag {
        Some(tag) => {
            let (name, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
            let invalid = |reason| Error::Tag {
                tag: tag.clone(),
                reason,
            };
            check_name(name).map_err(invalid)?;
            check_tag(version).map_err(invalid)?;
            if !from_project {
                metadata.name = name.to_owned();
                if semver::Version::parse(version).is_ok() {
                    metadata.version = Some(version.to_owned());
                }
            }
            (name.to_owned(), version.to_owned())
        }
        None => {
            check_name(&metadata.name).map_err(Error::Unnamed)?;
            let version = metadata.version.clone().unwrap_or_else(|| "latest".into());
            (metadata.name.clone(), version)
        }
    };
    if let Some(revision) = &request.revision {
        metadata.revision = Some(revision.clone());
    }
    let wit = request
        .wit
        .as_ref()
        .map(|dir| WitWorld {
            dir: dir.clone(),
            world: request.world.clone(),
        })
        .or(wit);

    // 2. Make it what goes into the artifact, and hold it to the project's policy.
    let input = read_wasm(&wasm_path)?;
    let mut built = componentize(
        input,
        &wasm_path,
        keep_module || request.module,
        wit.as_ref(),
    )?;
    // `[compose]`: the built component with the locked dependencies.
    let mut composed_from = None;
    if let Some((section, dir)) = &compose {
        let composition = crate::ops::compose::project::compose_project(
            dir,
            section,
            (&name, metadata.version.as_deref()),
            &built.wasm,
            &store_layout()?,
            None,
        )?;
        composed_from = Some(composition.annotation());
        built.wasm = composition.bytes;
        built.section = None;
    }
    if !policy.is_empty() {
        let imports = check::imports(&built.wasm, built.kind)?;
        let refusals = policy.check(imports.iter().map(String::as_str));
        if !refusals.is_empty() {
            return Ok(Build::Refused(Refused {
                path: wasm_path,
                refusals,
                notes: built.notes,
            }));
        }
    }
    let (wasm, embedded) = if request.no_metadata {
        (built.wasm, Vec::new())
    } else {
        (metadata.embed(&built.wasm, &wasm_path)?, metadata.fields())
    };
    // Components and kept modules are stored as read, unless metadata was added.
    let unchanged = embedded.is_empty()
        && matches!(built.conversion, Conversion::Component | Conversion::Module)
        && !is_wat(&wasm_path);

    // 3. The artifact.
    let mut manifest_annotations = metadata.annotations();
    if let Some(dependencies) = dependencies {
        manifest_annotations.insert(
            crate::ops::deps::resolve::ANNOTATION.to_owned(),
            dependencies,
        );
    }
    if let Some(from) = composed_from {
        manifest_annotations.insert(crate::ops::compose::COMPOSED_FROM.to_owned(), from);
    }
    manifest_annotations.extend(extra_annotations);
    let mut input = ArtifactInput::new(&wasm, created);
    input.author = metadata.authors_text();
    input.target = built.target.clone();
    // Read while componentizing: the metadata added since changes no import or export.
    input.section = built.section.take();
    input.annotations = manifest_annotations;
    input.layer_annotations = BTreeMap::from([(
        annotations::TITLE.to_owned(),
        format!("{}.wasm", name.rsplit('/').next().unwrap_or(&name)),
    )]);
    let artifact = build_artifact(input)?;

    // 4. Write: `-o` to a temporary file first, then the layout, then rename `-o`, so a
    // failure anywhere leaves nothing behind.
    let staged_output = match &request.output {
        Some(path) => Some(stage(path, &wasm)?),
        None => None,
    };
    let (layout, in_store) = match &request.layout {
        Some(dir) => (Layout::at(dir), false),
        None => (store_layout()?, true),
    };
    let tag = format!("{name}:{version}");
    layout
        .store(&artifact.manifest_bytes, &artifact.blobs(), Some(&tag))
        .map_err(|source| Error::Store {
            tag: tag.clone(),
            layout: layout.root().to_owned(),
            source: Box::new(source),
        })?;
    if let (Some(file), Some(path)) = (staged_output, &request.output) {
        file.commit(0o644).map_err(|e| write_error(path, e))?;
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
    Ok(Build::Stored(Box::new(BuildReport {
        reference,
        tag,
        layout: layout.root().to_owned(),
        digest: artifact.manifest_digest,
        manifest_size: artifact.manifest_bytes.len(),
        config_digest: artifact.manifest.config.digest,
        config_size: artifact.config_bytes.len(),
        layer_digest: artifact.layer().digest,
        size: artifact.layer().size,
        kind: artifact.kind.as_str(),
        os: artifact.config.os.as_str().to_owned(),
        conversion: built.conversion.describe(),
        metadata: embedded,
        unchanged,
        target: component.and_then(|c| c.target.clone()),
        imports: component.map(|c| c.imports.clone()),
        exports: component.map(|c| c.exports.clone()),
        annotations: artifact.manifest.annotations.clone(),
        output: request.output.clone(),
        notes: built.notes,
    })))
}

/// `SOURCE_DATE_EPOCH` when set, else now.
/// When an artifact is made: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
pub fn build_time() -> Result<Timestamp> {
    match crate::env::source_date_epoch() {
        Some(text) => {
            let seconds: i64 = match text.trim().parse() {
                Ok(seconds) => seconds,
                Err(source) => return Err(Error::SourceDateEpoch { text, source }),
            };
            if !(0..=253_402_300_799).contains(&seconds) {
                return Err(Error::SourceDateEpochRange { text });
            }
            Ok(Timestamp::from_unix_seconds(seconds)?)
        }
        None => Ok(Timestamp::from_datetime(time::OffsetDateTime::now_utc())),
    }
}

/// `KEY=VALUE` pairs (`-a`) as annotations; an empty key or no `=` is an error naming it.
pub fn parse_annotations(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(Error::Annotation(pair.clone())),
        })
        .collect()
}

fn run_build_command(command: &str, dir: &Path) -> Result<()> {
    // The command's stdout goes to our stderr: our stdout carries only the result.
    let failed = |source| Error::RunCommand {
        command: command.to_owned(),
        source,
    };
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(failed)?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .map_err(failed)?;
    if !status.success() {
        return Err(Error::CommandFailed {
            command: command.to_owned(),
            status,
        });
    }
    Ok(())
}

fn stage(path: &Path, bytes: &[u8]) -> Result<wasmoci_fs::AtomicFile> {
    let mut file = wasmoci_fs::AtomicFile::create(path)
        .and_then(|mut f| f.write_all(bytes).map(|()| f))
        .map_err(|e| write_error(path, e))?;
    file.flush().map_err(|e| write_error(path, e))?;
    Ok(file)
}

fn write_error(path: &Path, source: std::io::Error) -> Error {
    Error::WriteFile {
        path: path.to_owned(),
        source,
    }
}
