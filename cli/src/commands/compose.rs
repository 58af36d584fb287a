//! `wasmoci compose`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use wasmoci_cli::ops::artifact::store_layout;
use wasmoci_cli::ops::build::{Build, BuildRequest, build};
use wasmoci_cli::ops::compose::inputs::{self, Locked};
use wasmoci_cli::ops::compose::{
    COMPOSED_FROM, Component, ComposeOptions, Composition, compose_plugs, compose_wac,
};
use wasmoci_cli::ops::deps::resolve::read_lock;
use wasmoci_cli::reference::ArtifactRef;

use super::args::{PullOnDemand, Strictness};
use super::built::{notes, refusal, running};
use crate::output;

const EXAMPLES: &str = "\
Examples:
  wasmoci compose app.wasm --plug greeter.wasm -o composed.wasm
  wasmoci compose app.wasm --plug acme:kv --plug acme:log     # locked dependencies
  wasmoci compose app:1.0.0 --plug ghcr.io/acme/greeter:1.2.0 --tag app-composed:1.0.0
  wasmoci compose app.wac --dep acme:greeter=greeter.wasm --layout out
  wasmoci compose app.wasm --plug greeter.wasm --graph dot | dot -Tsvg > wiring.svg";

/// Compose components: plug exports into imports, or follow a WAC document.
///
/// Plugging (`SOCKET --plug PLUG…`): each plug's exports fill the imports of the socket,
/// and of the other plugs, that have the same name, else a semver-compatible one, when
/// the types fit; a plug that fills nothing is an error saying why. A `.wac` document is
/// composed as `wac compose` does; its packages come from `--dep`, then the project's
/// wasmoci.lock, then `deps/` beside it. Inputs are files, stored or registry artifacts,
/// or the names of locked dependencies. The result is validated with the runtime's
/// features, stored like `build` (with `dev.wasmoci.composed-from` naming every input;
/// `-o FILE` alone writes only the file, as `wac` does), and reproducible with
/// `SOURCE_DATE_EPOCH`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ComposeArgs {
    /// The socket component, or a `.wac` document
    #[arg(value_name = "SOCKET|APP.wac")]
    input: String,
    /// A component whose exports fill imports (repeatable; the order breaks ties)
    #[arg(long = "plug", value_name = "PLUG")]
    plugs: Vec<String>,
    /// A package of the WAC document: `ns:pkg[@version]=ARTIFACT` (repeatable)
    #[arg(long = "dep", value_name = "PKG=ARTIFACT", value_parser = parse_dep)]
    deps: Vec<(String, String)>,
    /// The project whose wasmoci.lock names dependencies
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
    /// Tag to store it under [default: SOCKET_STEM-composed:latest]; with neither `--tag`
    /// nor `--layout`, `-o` writes only the file
    #[arg(short, long, value_name = "NAME:VERSION")]
    tag: Option<String>,
    /// Store into this OCI image layout directory instead of the embedded store
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Also write the composed component to FILE
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Import the inputs as components instead of embedding them
    #[arg(long)]
    import_dependencies: bool,
    /// Do not validate the composed component
    #[arg(long)]
    no_validate: bool,
    /// Print the wiring instead of storing (with `-o`, `--tag` or `--layout`: as well)
    #[arg(long, value_enum, value_name = "FORMAT")]
    graph: Option<GraphFormat>,
    #[command(flatten)]
    strictness: Strictness,
    #[command(flatten)]
    pull: PullOnDemand,
    /// Print a JSON object instead of the reference
    #[arg(long)]
    json: bool,
}

/// `--graph`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    Dot,
    Json,
}

fn parse_dep(text: &str) -> Result<(String, String), String> {
    let (package, artifact) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not `ns:pkg=ARTIFACT`"))?;
    if !package.contains(':') || artifact.is_empty() {
        return Err(format!("`{text}` is not `ns:pkg=ARTIFACT`"));
    }
    Ok((package.to_owned(), artifact.to_owned()))
}

/// The name the output is stored under when no `--tag` is given: `NAME-composed`, NAME
/// being the input's file stem, or the last path segment of its repository or name.
fn stem(input: &str) -> String {
    use wasmoci_registry::LayoutRef;
    let last = |name: &str| name.rsplit('/').next().unwrap_or(name).to_owned();
    let name = match input.parse::<ArtifactRef>() {
        Ok(ArtifactRef::File(path)) => path.file_stem().map(|s| s.to_string_lossy().into_owned()),
        Ok(ArtifactRef::Registry(r)) => Some(last(&r.repository)),
        Ok(ArtifactRef::Store(LayoutRef::Tag(tag)))
        | Ok(ArtifactRef::Layout {
            reference: LayoutRef::Tag(tag),
            ..
        }) => Some(last(tag.rsplit_once(':').map_or(tag.as_str(), |(n, _)| n))),
        Ok(ArtifactRef::Store(LayoutRef::Named { name, .. }))
        | Ok(ArtifactRef::Layout {
            reference: LayoutRef::Named { name, .. },
            ..
        }) => Some(last(&name)),
        _ => None,
    }
    .filter(|n| !n.is_empty())
    .unwrap_or_else(|| "composed".to_owned());
    format!("{}-composed", name.to_ascii_lowercase())
}

pub(crate) fn run(args: ComposeArgs) -> Result<ExitCode> {
    let layout = store_layout()?;
    // A lock that cannot be read matters only when an input names a locked dependency:
    // then that name is not found, and this note says why.
    let lock = match read_lock(&args.project) {
        Ok(lock) => lock,
        Err(e) => {
            output::note(&format!(
                "not using `{}`: {e}",
                args.project.join("wasmoci.lock").display()
            ));
            None
        }
    };
    if args.strictness.locked() && lock.is_some() {
        let project = wasmoci_cli::project::Project::load(&args.project)?;
        wasmoci_cli::ops::deps::build::check_lock(&project)?;
    }
    let locked = lock.as_ref().map(|lock| Locked {
        lock,
        dir: &args.project,
        layout: &layout,
    });
    // Registry artifacts go into the store first (not with `--offline`).
    let fetch = |text: &str| -> Result<()> {
        if locked
            .as_ref()
            .is_some_and(|l| l.find(text, None).is_some())
        {
            return Ok(());
        }
        let reference: ArtifactRef = text.parse()?;
        if !args.strictness.offline() {
            args.pull.fetch(&reference)?;
        }
        Ok(())
    };
    let file_only = args.output.is_some() && args.tag.is_none() && args.layout.is_none();
    let options = ComposeOptions {
        import_dependencies: args.import_dependencies,
        validate: !args.no_validate,
        // What went in is recorded when stored, printed with `--json` or `--graph`.
        describe: !file_only || args.json || args.graph.is_some(),
    };
    let composition = if args.input.ends_with(".wac") {
        if !args.plugs.is_empty() {
            bail!("`--plug` is for plugging into a socket, not for a `.wac` document: use `--dep`");
        }
        let path = PathBuf::from(&args.input);
        let source = std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        for (_, artifact) in &args.deps {
            fetch(artifact)?;
        }
        let deps_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("deps");
        let mut find = |name: &str, version: Option<&semver::Version>| {
            inputs::package(name, version, &args.deps, locked.as_ref(), &deps_dir)
        };
        compose_wac(&path, &source, &mut find, options)
            .map_err(|e| wasmoci_cli::ops::Error::Compose(Box::new(e)))
            .with_context(|| format!("failed to compose `{}`", path.display()))?
    } else {
        if !args.deps.is_empty() {
            bail!("`--dep` is for a `.wac` document: plug components with `--plug`");
        }
        if args.plugs.is_empty() {
            bail!(
                "nothing to plug into `{}`: name plugs with `--plug`",
                args.input
            );
        }
        let mut components: Vec<Component> = Vec::new();
        for text in std::iter::once(&args.input).chain(&args.plugs) {
            fetch(text)?;
            components.push(
                inputs::named(text, locked.as_ref())
                    .with_context(|| format!("failed to read `{text}`"))?,
            );
        }
        let socket = components.remove(0);
        compose_plugs(socket, components, options)
            .map_err(|e| wasmoci_cli::ops::Error::Compose(Box::new(e)))
            .with_context(|| format!("failed to compose `{}`", args.input))?
    };
    if let Some(format) = args.graph {
        match format {
            GraphFormat::Dot => output::data(composition.wiring.to_dot().trim_end()),
            GraphFormat::Json => output::json(&composition.wiring),
        }
    }
    let store = args.tag.is_some() || args.layout.is_some();
    match (&args.output, store) {
        // `-o` alone: the file, as `wac` writes it; nothing is stored.
        (Some(path), false) => {
            super::args::write_atomically(path, &composition.bytes, 0o644)?;
            let written = Written {
                output: path.clone(),
                size: composition.bytes.len(),
                // Hashing 20 MB is not free: only when asked for the JSON.
                digest: args
                    .json
                    .then(|| wasmoci_spec::Digest::of(&composition.bytes).to_string()),
                inputs: composition.inputs.clone(),
            };
            if args.graph.is_none() {
                output::report(&written, args.json);
            }
            Ok(ExitCode::SUCCESS)
        }
        (None, false) if args.graph.is_some() => Ok(ExitCode::SUCCESS),
        _ => stored(&args, &composition),
    }
}

/// A composition written to a file only.
#[derive(serde::Serialize)]
struct Written {
    output: PathBuf,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inputs: Vec<wasmoci_cli::ops::compose::ComposedFrom>,
}

impl output::Report for Written {
    fn status(&self) -> Option<String> {
        Some(format!(
            "composed `{}` ({} bytes)",
            self.output.display(),
            self.size
        ))
    }
}

/// Stores the composition as `build` stores a component.
fn stored(args: &ComposeArgs, composition: &Composition) -> Result<ExitCode> {
    let staging = tempfile::tempdir().context("failed to make a temporary directory")?;
    let file = staging.path().join(format!("{}.wasm", stem(&args.input)));
    std::fs::write(&file, &composition.bytes)
        .with_context(|| format!("failed to write `{}`", file.display()))?;
    let request = BuildRequest {
        path: file,
        tag: args.tag.clone(),
        layout: args.layout.clone(),
        output: args.output.clone(),
        annotations: vec![format!("{COMPOSED_FROM}={}", composition.annotation())],
        ..BuildRequest::default()
    };
    match build(&request, &mut running)? {
        Build::Stored(report) => {
            notes(&report.notes);
            if args.graph.is_none() {
                output::report(&*report, args.json);
            } else {
                output::status(&format!("composed `{}`", report.tag));
            }
            Ok(ExitCode::SUCCESS)
        }
        Build::Refused(refused) => Err(refusal(&refused)),
    }
}

#[cfg(test)]
mod tests {
    /// The default name comes from the input's name, never from its tag or digest.
    #[test]
    fn the_default_name_is_the_inputs() {
        assert_eq!(super::stem("x/greet-socket.wasm"), "greet-socket-composed");
        assert_eq!(super::stem("app:1.0.0"), "app-composed");
        assert_eq!(super::stem("ghcr.io/acme/app:1.2.0"), "app-composed");
        assert_eq!(super::stem("oci:out:app:1.0.0"), "app-composed");
    }
}
