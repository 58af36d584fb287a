//! Test fixtures for wasmoci, built from text at test time.
//!
//! No wasm32 target can be installed on our machines, so every module and component
//! comes from the WAT in `wat/` and the worlds in `wit/`: core modules are compiled with
//! `wat`, given their world with `wit-component` (`embed_component_metadata` +
//! `ComponentEncoder`), and wasip1 modules are adapted with the preview1 adapter that
//! matches wasmtime 48. The WASI 0.2.12 WIT packages are not copied into the repository:
//! they are read from the `wasmtime-wasi-http` 48 crate's source, found with
//! `cargo metadata` (run `cargo fetch` once so it is there).
//!
//! Spec cases (`spec/<case>/`) are manifest and config *templates*: `{{digest:FILE}}` and
//! `{{size:FILE}}` are replaced by the digest and size of another file of the case (a
//! `.wat` file is compiled first), so the cases stay readable text.

#![allow(clippy::print_stderr, reason = "a test helper reports what it builds")]

pub mod fake;
pub mod load;
pub mod python;
pub mod registry;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

/// The `testdata/` directory.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The WIT directory of the `wasmtime-wasi-http` 48 crate: `wasi:http` with every WASI
/// 0.2.12 package it needs under `deps/`.
pub fn wasi_wit_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = root().parent().expect("testdata/ sits in the workspace");
        let output = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--offline", "--locked"])
            .arg("--manifest-path")
            .arg(workspace.join("Cargo.toml"))
            .output()
            .expect("failed to run `cargo metadata`");
        assert!(
            output.status.success(),
            "failed to run `cargo metadata` (run `cargo fetch` first): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("`cargo metadata` prints JSON");
        let manifest = metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "wasmtime-wasi-http")
            .and_then(|p| p["manifest_path"].as_str())
            .expect("`wasmtime-wasi-http` is in the lock file (testdata/Cargo.toml)");
        let dir = Path::new(manifest).with_file_name("wit");
        assert!(
            dir.join("deps").is_dir(),
            "`{}` has no WIT deps: run `cargo fetch`",
            dir.display()
        );
        dir
    })
}

/// A `Resolve` holding the WASI packages and `wit/fixtures.wit`.
pub fn resolve() -> (Resolve, wit_parser::PackageId) {
    let mut resolve = Resolve::default();
    resolve
        .push_dir(wasi_wit_dir())
        .expect("the WASI WIT packages parse");
    let package = resolve
        .push_file(root().join("wit/fixtures.wit"))
        .expect("wit/fixtures.wit parses");
    (resolve, package)
}

/// Compiles `wat/<name>.wat` into a core module.
/// A WIT package as wasm (what `wkg wit build` publishes): `acme:types@0.1.0`.
pub fn wit_package() -> Vec<u8> {
    let mut resolve = Resolve::default();
    let package = resolve
        .push_str(
            "types.wit",
            "package acme:types@0.1.0;\n\ninterface store {\n  get: func(key: string) -> option<string>;\n}\n",
        )
        .unwrap();
    wit_component::encode(&resolve, package).unwrap()
}

pub fn core(name: &str) -> Vec<u8> {
    let path = root().join("wat").join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("failed to compile `{}`: {e}", path.display()))
}

/// `wat/<name>.wat` with the component type of `world` embedded (what wit-bindgen
/// leaves in a core module).
pub fn embedded(name: &str, world: &str) -> Vec<u8> {
    let (resolve, package) = resolve();
    embed(name, &resolve, package, world)
}

/// `wat/<name>.wat` with the component type of `world` (in `package` of `resolve`).
fn embed(name: &str, resolve: &Resolve, package: wit_parser::PackageId, world: &str) -> Vec<u8> {
    let world = resolve
        .select_world(&[package], Some(world))
        .expect("the world exists");
    let mut module = core(name);
    wit_component::embed_component_metadata(&mut module, resolve, world, StringEncoding::UTF8)
        .expect("failed to embed component metadata");
    module
}

/// `wat/<name>.wat` made into a component of `world` (from `wit/fixtures.wit`).
pub fn component(name: &str, world: &str) -> Vec<u8> {
    encode(name, &embedded(name, world))
}

/// A core module with its component type embedded, made a component.
fn encode(name: &str, module: &[u8]) -> Vec<u8> {
    ComponentEncoder::default()
        .validate(true)
        .module(module)
        .and_then(|e| e.encode())
        .unwrap_or_else(|e| panic!("failed to make `{name}` a component: {e:#}"))
}

/// `wat/<name>.wat` made into a component of `world` from `wit/compose/<wit>.wit` (with
/// the WASI packages): the composition fixtures.
pub fn compose_component(name: &str, wit: &str, world: &str) -> Vec<u8> {
    let mut resolve = Resolve::default();
    resolve
        .push_dir(wasi_wit_dir())
        .expect("the WASI WIT packages parse");
    let package = resolve
        .push_file(root().join("wit/compose").join(format!("{wit}.wit")))
        .unwrap_or_else(|e| panic!("wit/compose/{wit}.wit does not parse: {e:#}"));
    encode(name, &embed(name, &resolve, package, world))
}

/// `http-greet` with `greet-plug` plugged in by wac-graph's own `plug`: a composed HTTP
/// handler answering `greeting: 42` (for the shim's CRI test).
pub fn composed_http() -> Vec<u8> {
    use wac_graph::types::Package;
    let mut graph = wac_graph::CompositionGraph::new();
    let mut register = |name: &str, bytes: Vec<u8>| {
        let package = Package::from_bytes(name, None, bytes, graph.types_mut())
            .expect("a fixture is a component");
        graph.register_package(package).expect("registered once")
    };
    let socket = register(
        "socket",
        compose_component("http-greet", "compose", "http-socket"),
    );
    let plug = register(
        "plug:greet",
        compose_component("greet-plug", "compose", "plug"),
    );
    wac_graph::plug(&mut graph, vec![plug], socket).expect("the greeter fits");
    graph
        .encode(wac_graph::EncodeOptions::default())
        .expect("the composition encodes")
}

/// The composition fixtures: file name → bytes.
pub fn compose_fixtures() -> Vec<(&'static str, Vec<u8>)> {
    [
        ("greet-socket.wasm", "greet-socket", "compose", "socket"),
        ("http-greet.wasm", "http-greet", "compose", "http-socket"),
        ("greet-plug.wasm", "greet-plug", "compose", "plug"),
        (
            "greet-plug-compatible.wasm",
            "greet-plug-compatible",
            "compose",
            "plug-compatible",
        ),
        (
            "greet-plug-major.wasm",
            "greet-plug-major",
            "compose",
            "plug-major",
        ),
        ("greet-middle.wasm", "greet-middle", "compose", "middle"),
        ("logger.wasm", "logger", "compose", "logger"),
        (
            "logger-cyclic.wasm",
            "logger-cyclic",
            "compose",
            "logger-cyclic",
        ),
        (
            "greet-mismatch.wasm",
            "greet-mismatch",
            "mismatch",
            "plug-mismatch",
        ),
    ]
    .into_iter()
    .map(|(file, wat, wit, world)| (file, compose_component(wat, wit, world)))
    .collect()
}

/// The wasip1 hello command, adapted into a component.
pub fn p1_component() -> Vec<u8> {
    adapted("hello-p1")
}

/// `wat/<name>.wat`, a wasip1 command, adapted into a component.
pub fn adapted(name: &str) -> Vec<u8> {
    ComponentEncoder::default()
        .validate(true)
        .module(&core(name))
        .and_then(|e| {
            e.adapter(
                "wasi_snapshot_preview1",
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
            )
        })
        .and_then(|e| e.encode())
        .unwrap_or_else(|e| panic!("failed to adapt `{name}`: {e:#}"))
}

/// Builds every fixture into `dir` (idempotent; each file is written atomically, so
/// test binaries running at once see whole files) and returns `dir`.
///
/// | file | what |
/// |---|---|
/// | `hello-p1.wat`, `hello-p1.wasm` | wasip1 command (text, core module) |
/// | `hello-p1.component.wasm` | the same, adapted into a component |
/// | `hello.wasm` | `wasi:cli/run` component |
/// | `hello-core.wasm` | its core module without a component type |
/// | `hello-embedded.wasm` | its core module with the component type embedded |
/// | `http-hello.wasm` | `wasi:http/incoming-handler` component |
/// | `plug.wasm`, `socket.wasm` | a pair to compose |
/// | `composed-http.wasm` | `http-greet.wasm` (an HTTP handler importing the greeter) plugged with `greet-plug.wasm` |
/// | `greet-socket.wasm`, `greet-plug*.wasm`, `greet-middle.wasm`, `logger.wasm`, `greet-mismatch.wasm` | composition: a socket importing `acme:greet/greeter@1.0.0`, plugs at 1.0.0, 1.2.0, 2.0.0, a chain socket → middle → logger, a mismatched type (`wit/compose/`) |
/// | `invalid-body.wasm`, `bad-magic.wasm`, `truncated.wasm`, `bad-syntax.wat` | broken inputs |
/// | `exit3.wasm`, `trap.wasm`, `loop.wasm`, `membomb.wasm`, `cat.wasm`, `sleep.wasm` | wasip1 commands that exit 3, trap, never end, grow memory without end, print a granted file, sleep 10 s in a host call |
/// | `exit3.component.wasm` | `exit3` adapted: exits through `wasi:cli/exit` |
/// | `http-slow.wasm` | an HTTP handler that sleeps 300 ms before answering |
/// | `http-never.wasm`, `http-stall.wasm` | HTTP handlers that wait an hour: before answering, after sending the head |
/// | `http-handles.wasm` | an HTTP handler that makes host resources (pollables) without end |
/// | `multimem.wasm`, `tables.wasm`, `many-memories.wasm` | wasip1 commands: 16 memories grown to 32 MiB each, 4 tables of 10 M elements; `many-memories.wasm`: a `wasi:cli/run` component of 101 core instances with a memory each |
/// | `connect.wasm` | a component that opens a TCP connection to 127.0.0.1:argv[1] |
/// | `wit/` | `fixtures.wit` with its WASI `deps/`, for `--wit` |
/// | `layouts/<case>/` | every `spec/<case>` as an OCI layout tagged `<case>` |
/// | `broken/` | a layout with a corrupt blob, one with a bad `index.json`, a non-layout |
pub fn build_fixtures(dir: &Path) -> &Path {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let hello = component("hello", "hello");
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        files.insert(
            "hello-p1.wat".into(),
            fs::read(root().join("wat/hello-p1.wat")).unwrap(),
        );
        files.insert("hello-p1.wasm".into(), core("hello-p1"));
        files.insert("hello-p1.component.wasm".into(), p1_component());
        files.insert("truncated.wasm".into(), hello[..hello.len() / 2].to_vec());
        files.insert("hello.wasm".into(), hello);
        files.insert("hello-core.wasm".into(), core("hello"));
        files.insert("hello-embedded.wasm".into(), embedded("hello", "hello"));
        files.insert(
            "http-hello.wasm".into(),
            component("http-hello", "http-hello"),
        );
        files.insert("plug.wasm".into(), component("plug", "plug"));
        files.insert("socket.wasm".into(), component("socket", "socket"));
        files.insert("invalid-body.wasm".into(), core("invalid-body"));
        files.insert("connect.wasm".into(), component("connect", "connect"));
        files.insert("http-slow.wasm".into(), component("http-slow", "http-slow"));
        for name in ["http-never", "http-stall", "http-handles"] {
            files.insert(format!("{name}.wasm"), component(name, "http-slow"));
        }
        files.insert("exit3.component.wasm".into(), adapted("exit3"));
        files.insert("cat.component.wasm".into(), adapted("cat"));
        files.insert("types.wit.wasm".into(), wit_package());
        for (file, bytes) in compose_fixtures() {
            files.insert(file.into(), bytes);
        }
        files.insert("composed-http.wasm".into(), composed_http());
        for name in [
            "exit3",
            "trap",
            "loop",
            "membomb",
            "cat",
            "sleep",
            "multimem",
            "tables",
            "many-memories",
            "hog",
        ] {
            files.insert(format!("{name}.wasm"), core(name));
        }
        files.insert("bad-magic.wasm".into(), b"\0asx\x01\0\0\0".to_vec());
        files.insert(
            "bad-syntax.wat".into(),
            b"(module\n  (func (export \"_start\")\n".to_vec(),
        );
        for (name, bytes) in &files {
            write_atomically(&dir.join(name), bytes);
        }
        let wit = dir.join("wit");
        write_atomically(
            &wit.join("fixtures.wit"),
            &fs::read(root().join("wit/fixtures.wit")).unwrap(),
        );
        for entry in fs::read_dir(wasi_wit_dir().join("deps")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap();
            write_atomically(&wit.join("deps").join(name), &fs::read(&path).unwrap());
        }
        for case in spec_cases() {
            let layout = dir.join("layouts").join(&case);
            write_layout(&layout, &spec_case(&case), &case);
        }
        // Broken layouts: a blob whose content does not match its name, and a directory
        // that is not a layout at all.
        let corrupt = dir.join("broken/corrupt-blob");
        let valid = spec_case("valid-module");
        write_layout(&corrupt, &valid, "corrupt");
        let config = sha256(&valid.config);
        write_atomically(
            &corrupt
                .join("blobs/sha256")
                .join(&config["sha256:".len()..]),
            b"{\"tampered\":true}",
        );
        write_atomically(&dir.join("broken/not-a-layout/README"), b"just files\n");
        let bad_index = dir.join("broken/bad-index");
        write_layout(&bad_index, &valid, "bad-index");
        write_atomically(&bad_index.join("index.json"), b"{\"manifests\": [");
    });
    dir
}

/// The names of the cases under `spec/`.
pub fn spec_cases() -> Vec<String> {
    let mut cases: Vec<String> = fs::read_dir(root().join("spec"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    cases
}

/// The blobs of one spec case, templates filled in.
#[derive(Debug, Clone)]
pub struct SpecCase {
    /// The case directory.
    pub dir: PathBuf,
    /// `manifest.json`, filled in.
    pub manifest: Vec<u8>,
    /// `config.json`, filled in.
    pub config: Vec<u8>,
    /// The files named in `layers.txt`, in order.
    pub layers: Vec<Vec<u8>>,
}

/// Loads `spec/<name>/`.
pub fn spec_case(name: &str) -> SpecCase {
    let dir = root().join("spec").join(name);
    let layers_list = fs::read_to_string(dir.join("layers.txt")).unwrap_or_default();
    SpecCase {
        manifest: case_file(&dir, "manifest.json"),
        config: case_file(&dir, "config.json"),
        layers: layers_list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| case_file(&dir, l))
            .collect(),
        dir,
    }
}

fn case_file(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    if name.ends_with(".wat") {
        return wat::parse_file(&path)
            .unwrap_or_else(|e| panic!("failed to compile `{}`: {e}", path.display()));
    }
    let bytes =
        fs::read(&path).unwrap_or_else(|e| panic!("failed to read `{}`: {e}", path.display()));
    if !name.ends_with(".json") {
        return bytes;
    }
    let mut text = String::from_utf8(bytes).expect("templates are UTF-8");
    while let Some(start) = text.find("{{") {
        let end = start + text[start..].find("}}").expect("unterminated `{{`");
        let (what, file) = text[start + 2..end]
            .split_once(':')
            .expect("placeholders are `{{digest:FILE}}` or `{{size:FILE}}`");
        let content = case_file(dir, file);
        let value = match what {
            "digest" => sha256(&content),
            "size" => content.len().to_string(),
            other => panic!("unknown placeholder `{other}`"),
        };
        text.replace_range(start..end + 2, &value);
    }
    // Templates are pretty for reading; blobs are compact, as producers write them.
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) => serde_json::to_vec(&value).unwrap(),
        Err(_) => text.into_bytes(),
    }
}

/// `sha256:<hex>` of `bytes`, computed independently of the code under test.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes a case as an OCI image layout tagged `tag`, by hand (not with the code under
/// test), so the CLI can be pointed at it.
pub fn write_layout(dir: &Path, case: &SpecCase, tag: &str) {
    let blobs = dir.join("blobs/sha256");
    let mut all = vec![&case.manifest, &case.config];
    all.extend(&case.layers);
    for blob in all {
        let digest = sha256(blob);
        write_atomically(&blobs.join(&digest["sha256:".len()..]), blob);
    }
    write_atomically(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&case.manifest),
            "size": case.manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    write_atomically(
        &dir.join("index.json"),
        &serde_json::to_vec_pretty(&index).unwrap(),
    );
}

/// Writes `bytes` to a temporary sibling and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let dir = path.parent().expect("a file has a parent");
    fs::create_dir_all(dir).unwrap();
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    fs::write(&temp, bytes).unwrap();
    fs::rename(&temp, path).unwrap();
}

#[cfg(test)]
mod tests {
    /// Every composition fixture encodes (its WIT parses, its WAT fits its world).
    #[test]
    fn compose_fixtures_encode() {
        let fixtures = super::compose_fixtures();
        assert_eq!(fixtures.len(), 9);
        for (name, bytes) in fixtures {
            assert!(bytes.starts_with(b"\0asm"), "{name}");
        }
        assert!(super::composed_http().starts_with(b"\0asm"));
    }
}
