use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use wasmparser::{
    FuncToValidate, FuncValidatorAllocations, FunctionBody, Parser, ValidPayload, Validator,
    ValidatorResources, WasmFeatures,
};

/// A function body's validator, before it has run.
type Body = FuncToValidate<ValidatorResources>;
use wit_component::DecodedWasm;

use crate::{ComponentSection, Error, Os};

/// What a WebAssembly binary is, read from its 8-byte preamble alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WasmKind {
    /// A core module (`\0asm` version 1).
    Module,
    /// A component (`\0asm` version `0d 00`, layer 1).
    Component,
}

impl WasmKind {
    /// The kind of `bytes`, or `None` when they are not wasm at all.
    pub fn detect(bytes: &[u8]) -> Option<WasmKind> {
        if Parser::is_component(bytes) {
            Some(WasmKind::Component)
        } else if Parser::is_core_wasm(bytes) {
            Some(WasmKind::Module)
        } else {
            None
        }
    }

    /// The config `os` this kind must carry.
    pub fn os(self) -> Os {
        match self {
            WasmKind::Module => Os::Wasip1,
            WasmKind::Component => Os::Wasip2,
        }
    }

    /// `module` or `component`.
    pub fn as_str(self) -> &'static str {
        match self {
            WasmKind::Module => "module",
            WasmKind::Component => "component",
        }
    }
}

impl fmt::Display for WasmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A binary that failed validation, with the byte offset wasmparser reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset 0x{offset:x})")]
pub struct WasmError {
    /// What is wrong.
    pub message: String,
    /// Where, in bytes from the start of the binary.
    pub offset: u64,
}

/// Validates a module or component with wasmparser, with `features` enabled, checking
/// function bodies on up to `threads` threads while the rest is parsed (as `wasm-tools
/// validate` does): the same verdict and the same first error as
/// [`Validator::validate_all`], which reports a section's error before any body's, and
/// the first body that fails.
pub fn validate_wasm(
    bytes: &[u8],
    features: WasmFeatures,
    threads: usize,
) -> Result<(), WasmError> {
    let error = |e: wasmparser::BinaryReaderError| WasmError {
        message: e.message().to_owned(),
        offset: e.offset(),
    };
    if threads <= 1 {
        return Validator::new_with_features(features)
            .validate_all(bytes)
            .map(drop)
            .map_err(error);
    }
    let mut validator = Validator::new_with_features(features);
    let mut parser = Parser::new(0);
    parser.set_features(features);
    // This thread parses and checks sections, handing each body, numbered, to the
    // workers as it is found; the first failing body (by number) is the error. A worker
    // skips a body past one already known to fail.
    let first_failure = AtomicUsize::new(usize::MAX);
    let (sender, receiver) = mpsc::channel::<(usize, Body, FunctionBody<'_>)>();
    let receiver = Mutex::new(receiver);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut allocs = FuncValidatorAllocations::default();
                    let mut failed = None;
                    loop {
                        let next = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((index, func, body)) = next else {
                            return failed;
                        };
                        if index > first_failure.load(Ordering::Relaxed) {
                            continue;
                        }
                        let mut validator = func.into_validator(allocs);
                        if let Err(e) = validator.validate(&body) {
                            first_failure.fetch_min(index, Ordering::Relaxed);
                            failed = failed.or(Some((index, e)));
                        }
                        allocs = validator.into_allocations();
                    }
                })
            })
            .collect();
        let mut sections = Ok(());
        for (payload, index) in parser.parse_all(bytes).zip(0..) {
            let valid = payload.and_then(|payload| validator.payload(&payload));
            match valid {
                Ok(ValidPayload::Func(func, body)) => {
                    // The workers end only when the sender is dropped.
                    let _ = sender.send((index, func, body));
                }
                Ok(_) => {}
                Err(e) => {
                    sections = Err(error(e));
                    first_failure.store(0, Ordering::Relaxed);
                    break;
                }
            }
        }
        drop(sender);
        let failures: Vec<_> = workers
            .into_iter()
            .filter_map(|w| w.join().unwrap_or(None))
            .collect();
        sections?;
        match failures.into_iter().min_by_key(|(index, _)| *index) {
            Some((_, e)) => Err(error(e)),
            None => Ok(()),
        }
    })
}

/// Parses a `--features` list: comma-separated feature names as wasmparser spells them
/// (`simd`, `gc`, `component-model`, …, case-insensitive, `-` or `_`), the presets `wasm1`,
/// `wasm2`, `wasm3` and `all`, and `-name` to turn one off. With no positive entry the
/// list starts from every feature; otherwise it starts from none.
pub fn wasm_features(list: &str) -> Result<WasmFeatures, String> {
    let entries: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut features = if entries.iter().any(|e| !e.starts_with('-')) {
        WasmFeatures::empty()
    } else {
        WasmFeatures::all()
    };
    for entry in entries {
        let (enable, name) = match entry.strip_prefix('-') {
            Some(name) => (false, name),
            None => (true, entry),
        };
        let flag = match name.to_ascii_lowercase().as_str() {
            "all" => WasmFeatures::all(),
            "wasm1" => WasmFeatures::WASM1,
            "wasm2" => WasmFeatures::WASM2,
            "wasm3" => WasmFeatures::WASM3,
            other => WasmFeatures::from_name(&other.replace('-', "_").to_ascii_uppercase())
                .ok_or_else(|| {
                    let known: Vec<String> = ["all", "wasm1", "wasm2", "wasm3"]
                        .into_iter()
                        .map(str::to_owned)
                        .chain(
                            WasmFeatures::all()
                                .iter_names()
                                .map(|(n, _)| n.to_ascii_lowercase().replace('_', "-")),
                        )
                        .collect();
                    format!(
                        "unknown wasm feature `{name}` (known: {})",
                        known.join(", ")
                    )
                })?,
        };
        features.set(flag, enable);
    }
    Ok(features)
}

/// The `component` section for component bytes: imports and exports from the decoded
/// WIT world (`wit_component::decode`), in the component's order, with every version
/// kept. `target` is left for the caller, who knows the world it built for.
///
/// Refuses core modules: `wit_component::decode` would accept one and return an empty
/// world, which is how other tools end up labelling a module `wasip2`.
pub fn component_section(bytes: &[u8]) -> Result<ComponentSection, Error> {
    match WasmKind::detect(bytes) {
        Some(WasmKind::Component) => {}
        Some(WasmKind::Module) => return Err(Error::NotAComponent),
        None => return Err(Error::NotWasm),
    }
    if let Some(section) = top_level_section(bytes) {
        return Ok(section);
    }
    decoded_section(bytes)
}

/// Why [`decode_wit`] could not decode a component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WitDecodeError(String);

/// `wit_component::decode` of bytes nobody checked: their whole structure (nested
/// modules and components too) is parsed first, with every byte in hand, and what does
/// not parse is refused before the decoder sees it. The decoder reads as a stream and
/// reserves a section's claimed size before it reads it: a 70-byte file claiming a
/// 2.9 GB section made it allocate that much (found by `cargo fuzz run wasm`).
pub fn decode_wit(bytes: &[u8]) -> Result<wit_component::DecodedWasm, WitDecodeError> {
    for payload in Parser::new(0).parse_all(bytes) {
        if let Err(e) = payload {
            return Err(WitDecodeError(e.to_string()));
        }
    }
    wit_component::decode(bytes).map_err(|e| WitDecodeError(format!("{e:#}")))
}

/// [`component_section`] from the decoded WIT world.
fn decoded_section(bytes: &[u8]) -> Result<ComponentSection, Error> {
    let decoded = decode_wit(bytes).map_err(|e| Error::ComponentDecode {
        reason: e.to_string(),
    })?;
    Ok(match decoded {
        DecodedWasm::Component(resolve, world) => {
            let world = &resolve.worlds[world];
            ComponentSection {
                exports: world
                    .exports
                    .keys()
                    .map(|k| resolve.name_world_key(k))
                    .collect(),
                imports: world
                    .imports
                    .keys()
                    .map(|k| resolve.name_world_key(k))
                    .collect(),
                target: None,
            }
        }
        DecodedWasm::WitPackage(resolve, package) => {
            // A WIT package published as wasm: it exports its worlds, their exports and
            // its interfaces (as wkg does), sorted so the config is deterministic.
            let mut exports = BTreeSet::new();
            let package = &resolve.packages[package];
            for world in package.worlds.values() {
                let world = &resolve.worlds[*world];
                exports.extend(world.exports.keys().map(|k| resolve.name_world_key(k)));
                if let Some(name) = world_id_name(&resolve, world) {
                    exports.insert(name);
                }
            }
            for iface in package.interfaces.values() {
                exports.extend(resolve.id_of(*iface));
            }
            ComponentSection {
                exports: exports.into_iter().collect(),
                imports: Vec::new(),
                target: None,
            }
        }
    })
}

/// The top-level payloads of a module or component, each with the offset its section
/// starts at, without descending into nested modules and components or a module's
/// function bodies (their bytes are skipped whole): what reading a wasm's own imports,
/// exports and custom sections needs, at the cost of its top level alone. `None` when it
/// does not parse that far.
pub fn top_level_payloads(bytes: &[u8]) -> Option<Vec<(usize, wasmparser::Payload<'_>)>> {
    use wasmparser::{Chunk, Payload};
    let mut payloads = Vec::new();
    let mut parser = Parser::new(0);
    let mut offset = 0;
    loop {
        let start = offset;
        // With the whole input given, the parser never asks for more.
        // A section may claim more bytes than there are: then it does not parse.
        let Chunk::Parsed { consumed, payload } = parser.parse(bytes.get(offset..)?, true).ok()?
        else {
            return None;
        };
        offset += consumed;
        match &payload {
            Payload::Version { .. } => continue,
            Payload::End(_) => return Some(payloads),
            Payload::CodeSectionStart { size, .. } => {
                parser.skip_section();
                offset += usize::try_from(*size).ok()?;
            }
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                // The nested parser would read these bytes; the outer one goes on after them.
                offset += usize::try_from(unchecked_range.end - unchecked_range.start).ok()?;
            }
            _ => {}
        }
        payloads.push((start, payload));
    }
}

/// A component's own imports and exports, from its top-level sections
/// ([`top_level_payloads`]): the names the world `wit_component::decode` gives keys its
/// items by, without validating and typing every nested module (~30 ms for an 11 MiB
/// component). Imported components and modules are not world items and are left out, as
/// the decode leaves them. `None` for anything else but functions and instances (a WIT
/// package's type exports, imported types) and for what does not parse, which is left to
/// the decode (it gives the real error).
fn top_level_section(bytes: &[u8]) -> Option<ComponentSection> {
    use wasmparser::{ComponentExternalKind, ComponentTypeRef, Payload};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    for (_, payload) in top_level_payloads(bytes)? {
        match payload {
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    let import = import.ok()?;
                    match import.ty {
                        ComponentTypeRef::Instance(_) | ComponentTypeRef::Func(_) => {
                            imports.push(import.name.name.to_owned());
                        }
                        // Not items of a world (`--import-dependencies` imports components).
                        ComponentTypeRef::Component(_) | ComponentTypeRef::Module(_) => {}
                        ComponentTypeRef::Type(_) | ComponentTypeRef::Value(_) => return None,
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    let export = export.ok()?;
                    match export.kind {
                        ComponentExternalKind::Instance | ComponentExternalKind::Func => {
                            exports.push(export.name.name.to_owned());
                        }
                        // A WIT package's, or what only the decode can judge.
                        _ => return None,
                    }
                }
            }
            _ => {}
        }
    }
    Some(ComponentSection {
        exports,
        imports,
        target: None,
    })
}

/// The distinct module names a core module imports from (`wasi_snapshot_preview1`, `env`),
/// in order: what an import policy matches for modules.
pub fn module_import_names(bytes: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::ImportSection(reader)) => {
                for import in reader.into_imports().flatten() {
                    if !names.iter().any(|n| n == import.module) {
                        names.push(import.module.to_owned());
                    }
                }
            }
            Ok(wasmparser::Payload::CodeSectionStart { .. }) | Err(_) => break,
            Ok(_) => {}
        }
    }
    names
}

/// Whether `world` names a world someone wrote. wit-component names the worlds it has to
/// make up in the `root` namespace (`root:component/root`, `root:root/root`): as a
/// `target` they say nothing.
pub fn is_meaningful_world(world: &str) -> bool {
    !world.starts_with("root:")
}

/// A core module's imports (`module::field`) and exports, in the module's order: what a
/// component's WIT imports and exports are to a component.
pub fn module_imports_exports(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), Error> {
    match WasmKind::detect(bytes) {
        Some(WasmKind::Module) => {}
        Some(WasmKind::Component) => return Err(Error::NotAModule),
        None => return Err(Error::NotWasm),
    }
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    for payload in Parser::new(0).parse_all(bytes) {
        let invalid = |e: wasmparser::BinaryReaderError| Error::ModuleDecode {
            reason: e.to_string(),
        };
        match payload.map_err(invalid)? {
            wasmparser::Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    imports.push(format!("{}::{}", import.module, import.name));
                }
            }
            wasmparser::Payload::ExportSection(reader) => {
                for export in reader {
                    exports.push(export.map_err(invalid)?.name.to_owned());
                }
            }
            wasmparser::Payload::CodeSectionStart { .. } => break,
            _ => {}
        }
    }
    Ok((imports, exports))
}

/// The names a module or component exports at its top level (a component's interfaces,
/// `wasi:cli/run@0.2.0`; a module's functions and memories), read without validating or
/// compiling it: nested modules and code are skipped. `None` when the bytes are not wasm
/// or cannot be read that far (compiling them says why).
pub fn export_names(bytes: &[u8]) -> Option<(WasmKind, Vec<String>)> {
    use wasmparser::{Chunk, Payload};
    let kind = WasmKind::detect(bytes)?;
    let mut names = Vec::new();
    let mut parser = Parser::new(0);
    let mut rest = bytes;
    loop {
        let Chunk::Parsed { consumed, payload } = parser.parse(rest, true).ok()? else {
            return None;
        };
        rest = &rest[consumed..];
        let skip = match payload {
            Payload::CodeSectionStart { size, .. } => {
                parser.skip_section();
                u64::from(size)
            }
            // The parser has already stepped over a nested module or component; the
            // input has not.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => unchecked_range.end - unchecked_range.start,
            Payload::ExportSection(reader) => {
                for export in reader {
                    names.push(export.ok()?.name.to_owned());
                }
                0
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    names.push(export.ok()?.name.name.to_owned());
                }
                0
            }
            Payload::End(_) => return Some((kind, names)),
            _ => continue,
        };
        rest = rest.get(usize::try_from(skip).ok()?..)?;
    }
}

fn world_id_name(resolve: &wit_parser::Resolve, world: &wit_parser::World) -> Option<String> {
    let package = &resolve.packages[world.package?];
    let name = &package.name;
    Some(match &name.version {
        Some(v) => format!("{}:{}/{}@{v}", name.namespace, name.name, world.name),
        None => format!("{}:{}/{}", name.namespace, name.name, world.name),
    })
}

#[cfg(test)]
#[path = "wasm_tests.rs"]
mod tests;
