//! Composition of components, on `wac-graph`: plugging (`--plug`, transitive) and WAC
//! documents (`app.wac`). Inputs come in as bytes with the names people know them by;
//! the result is the composed component, validated with the runtime's wasm features (so
//! `compose` never makes what `run` refuses), the wiring (for `--graph`) and what went
//! in (for the `dev.wasmoci.composed-from` annotation).

mod error;
pub mod inputs;
mod plug;
pub mod project;
mod wac;
mod wiring;

use serde::Serialize;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, Processor};

pub use error::ComposeError;
pub use wac::{FindPackage, compose_wac};
pub use wiring::Wiring;

use plug::Registered;

/// The annotation naming what went into a composition: a sorted JSON list of
/// [`ComposedFrom`].
pub const COMPOSED_FROM: &str = "dev.wasmoci.composed-from";

/// One input, as the annotation records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ComposedFrom {
    /// As named on the command line, in the document or in the lock.
    pub name: String,
    /// The package version, when known (the lock's, or the reference's tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The manifest digest, for an artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The digest of the component's bytes (its layer, for an artifact); empty until
    /// described (a file's is hashed only when it is needed).
    pub layer: String,
}

/// A component to compose.
#[derive(Debug, Clone)]
pub struct Component {
    /// Its name in messages and in the wiring.
    pub shown: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its record in the annotation.
    pub from: ComposedFrom,
}

/// How to encode.
#[derive(Debug, Clone, Copy)]
pub struct ComposeOptions {
    /// Import the inputs as components instead of embedding them (wac's
    /// `--import-dependencies`).
    pub import_dependencies: bool,
    /// Validate the result with the runtime's features (`--no-validate`: do not).
    pub validate: bool,
    /// Describe what went in and the wiring (the inputs' digests are hashed for it); off
    /// when only the composed bytes are wanted.
    pub describe: bool,
}

impl Default for ComposeOptions {
    fn default() -> Self {
        ComposeOptions {
            import_dependencies: false,
            validate: true,
            describe: true,
        }
    }
}

/// A composition made.
#[derive(Debug, Clone)]
pub struct Composition {
    /// The composed component.
    pub bytes: Vec<u8>,
    /// Which instance fills which import, and what is left to the host.
    pub wiring: Wiring,
    /// What went in, sorted.
    pub inputs: Vec<ComposedFrom>,
}

impl Composition {
    /// The value of [`COMPOSED_FROM`].
    pub fn annotation(&self) -> String {
        serde_json::to_string(&self.inputs).unwrap_or_default()
    }
}

/// Registers `component` under the package name `key`, moving its bytes into the graph
/// (no copy of a large input): what is left of it names and describes it.
fn register(
    graph: &mut CompositionGraph,
    key: &str,
    mut component: Component,
) -> Result<(Registered, Component), ComposeError> {
    let not_component = |reason: String| ComposeError::NotComponent {
        name: component.shown.clone(),
        reason,
    };
    match wasmoci_spec::WasmKind::detect(&component.bytes) {
        Some(wasmoci_spec::WasmKind::Component) => {}
        Some(wasmoci_spec::WasmKind::Module) => {
            return Err(not_component(
                "it is a core module (build it into a component first: `wasmoci build`)".into(),
            ));
        }
        None => return Err(not_component("it is not WebAssembly".into())),
    }
    let bytes = std::mem::take(&mut component.bytes);
    let package = Package::from_bytes(key, None, bytes, graph.types_mut())
        .map_err(|e| not_component(format!("{e:#}")))?;
    let id = graph
        .register_package(package)
        .map_err(|e| not_component(e.to_string()))?;
    let registered = Registered {
        id,
        shown: component.shown.clone(),
    };
    Ok((registered, component))
}

/// Plugs `plugs` into `socket` (see [`plug`]).
pub fn compose_plugs(
    socket: Component,
    plugs: Vec<Component>,
    options: ComposeOptions,
) -> Result<Composition, ComposeError> {
    let mut graph = CompositionGraph::new();
    // Package names (what `--import-dependencies` imports them as): valid WIT names.
    let (socket_key, socket) = register(&mut graph, "wasmoci:socket", socket)?;
    let mut registered = Vec::new();
    let mut inputs = vec![socket];
    for (i, plug) in plugs.into_iter().enumerate() {
        let (key, plug) = register(&mut graph, &format!("wasmoci:plug-{}", letters(i)), plug)?;
        registered.push(key);
        inputs.push(plug);
    }
    plug::plug(&mut graph, &socket_key, &registered)?;
    let mut shown = vec![socket_key.clone()];
    shown.extend(registered);
    let inputs = inputs.iter().collect::<Vec<_>>();
    finish(&graph, &shown, &inputs, options)
}

/// `a`, `b`, …, `z`, `aa`, `ab`, …: a kebab-case word for an index.
fn letters(mut i: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Encodes `graph`, validates it, and describes it.
fn finish(
    graph: &CompositionGraph,
    registered: &[Registered],
    inputs: &[&Component],
    options: ComposeOptions,
) -> Result<Composition, ComposeError> {
    let bytes = encode(graph, options)?;
    if !options.describe {
        return Ok(Composition {
            bytes,
            wiring: Wiring::default(),
            inputs: Vec::new(),
        });
    }
    // `inputs[i]` is `registered[i]`, whose bytes the graph holds now.
    let described: Vec<Component> = inputs
        .iter()
        .zip(registered)
        .map(|(c, r)| {
            let mut c = (*c).clone();
            if c.from.layer.is_empty() {
                c.from.layer = wasmoci_spec::Digest::of(graph[r.id].bytes()).to_string();
            }
            c
        })
        .collect();
    let inputs: Vec<&Component> = described.iter().collect();
    let wiring = Wiring::of(graph, registered, &inputs);
    let mut from: Vec<ComposedFrom> = inputs.iter().map(|c| c.from.clone()).collect();
    from.sort();
    from.dedup();
    Ok(Composition {
        bytes,
        wiring,
        inputs: from,
    })
}

fn encode(graph: &CompositionGraph, options: ComposeOptions) -> Result<Vec<u8>, ComposeError> {
    let bytes = graph
        .encode(EncodeOptions {
            define_components: !options.import_dependencies,
            validate: false,
            processor: Some(Processor {
                name: "wasmoci",
                version: env!("CARGO_PKG_VERSION"),
            }),
        })
        .map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            ComposeError::Encode(text)
        })?;
    if options.validate {
        validate(&bytes)?;
    }
    Ok(bytes)
}

/// Validates with the runtime's features.
fn validate(bytes: &[u8]) -> Result<(), ComposeError> {
    let features = wasmoci_spec::wasm_features(wasmoci_runtime::engine::ENGINE_FEATURES)
        .map_err(ComposeError::Invalid)?;
    wasmoci_spec::validate_wasm(bytes, features, crate::ops::threads())
        .map_err(|e| ComposeError::Invalid(e.to_string()))
}
