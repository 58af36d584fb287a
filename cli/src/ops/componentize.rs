//! From a `.wasm`/`.wat` file to the bytes that go into the artifact: a component stays
//! as it is; a core module becomes a component when it can (its embedded component
//! type, a `--wit` world, or the wasip1 adapter for `wasi_snapshot_preview1` imports)
//! and stays a wasip1 module otherwise; then the package metadata is embedded with
//! `wasm-metadata` and mirrored into `org.opencontainers.image.*` annotations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wasm_metadata::{
    AddMetadata, AddMetadataField, Authors, Description, Homepage, Licenses, Revision, Source,
    Version,
};
use wasmoci_spec::{WasmError, WasmKind, annotations, validate_wasm};
use wasmparser::{Chunk, Parser, Payload, WasmFeatures};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

/// The import module of WASI preview 1.
pub const WASIP1_MODULE: &str = "wasi_snapshot_preview1";

/// What can go wrong while building.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The input cannot be read.
    #[error("failed to read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// WAT that does not parse.
    #[error("failed to parse `{}` as WAT: {reason}", path.display())]
    Wat {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// Not wasm at all.
    #[error("`{}` is not a WebAssembly binary: no `\\0asm` preamble with a known version", path.display())]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// Wasm that does not validate.
    #[error("`{}` is not valid WebAssembly: {error}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What wasmparser said, with the byte offset.
        error: WasmError,
    },
    /// A WIT directory or world that cannot be used.
    #[error("failed to load world {} from `{}`: {reason}", world.as_deref().map_or("(default)".into(), |w| format!("`{w}`")), dir.display())]
    Wit {
        /// The WIT directory.
        dir: PathBuf,
        /// The world asked for.
        world: Option<String>,
        /// What wit-parser said.
        reason: String,
    },
    /// wit-component refused to make a component.
    #[error("failed to make `{}` a component: {reason}", path.display())]
    Componentize {
        /// The file.
        path: PathBuf,
        /// What wit-component said.
        reason: String,
    },
    /// A metadata value wasm-metadata refuses (a license that is not SPDX, a bad URL).
    #[error("invalid `{field}` `{value}`: {reason}")]
    Metadata {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Embedding the metadata failed.
    #[error("failed to embed metadata into `{}`: {reason}", path.display())]
    EmbedMetadata {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Whether `path` is WAT text (by its extension), which [`read_wasm`] compiles.
pub fn is_wat(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wat"))
}

/// Reads a `.wasm` file, or compiles a `.wat` file.
pub fn read_wasm(path: &Path) -> Result<Vec<u8>, BuildError> {
    let bytes = std::fs::read(path).map_err(|source| BuildError::Read {
        path: path.to_owned(),
        source,
    })?;
    if is_wat(path) {
        return wat::parse_bytes(&bytes)
            .map(|b| b.into_owned())
            .map_err(|mut e| {
                e.set_path(path);
                BuildError::Wat {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }
            });
    }
    Ok(bytes)
}

/// A WIT directory and a world in it, for `--wit DIR --world NAME`.
#[derive(Debug, Clone)]
pub struct WitWorld {
    /// The directory (with its `deps/`).
    pub dir: PathBuf,
    /// The world; the package's only world when `None`.
    pub world: Option<String>,
}

impl WitWorld {
    /// Loads the world: the resolve, the world, and its fully qualified name.
    pub fn load(&self) -> Result<(Resolve, wit_parser::WorldId, String), BuildError> {
        let fail = |reason: String| BuildError::Wit {
            dir: self.dir.clone(),
            world: self.world.clone(),
            reason,
        };
        let mut resolve = Resolve::default();
        let (package, _) = resolve
            .push_path(&self.dir)
            .map_err(|e| fail(format!("{e:#}")))?;
        let world = resolve
            .select_world(&[package], self.world.as_deref())
            .map_err(|e| fail(format!("{e:#}")))?;
        let name = world_name(&resolve, world);
        Ok((resolve, world, name))
    }
}

/// `ns:pkg/world@version` for a world.
pub fn world_name(resolve: &Resolve, world: wit_parser::WorldId) -> String {
    let world = &resolve.worlds[world];
    match world.package.map(|p| &resolve.packages[p].name) {
        Some(p) => match &p.version {
            Some(v) => format!("{}:{}/{}@{v}", p.namespace, p.name, world.name),
            None => format!("{}:{}/{}", p.namespace, p.name, world.name),
        },
        None => world.name.clone(),
    }
}

/// How the input became what goes into the artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// A component, taken as is.
    Component,
    /// A core module kept as a wasip1 module.
    Module,
    /// A core module made a component from its embedded component type.
    Embedded,
    /// A core module given the `--wit` world and made a component.
    Wit,
    /// A wasip1 core module made a component with the preview1 adapter.
    Adapted,
}

impl Conversion {
    /// For status lines.
    pub fn describe(self) -> &'static str {
        match self {
            Conversion::Component => "component",
            Conversion::Module => "wasip1 module, kept as a module",
            Conversion::Embedded => "core module with an embedded component type, made a component",
            Conversion::Wit => "core module given its world, made a component",
            Conversion::Adapted => "wasip1 module, made a component with the wasip1 adapter",
        }
    }
}

/// The result of [`componentize`].
#[derive(Debug, Clone)]
pub struct Componentized {
    /// The bytes.
    pub wasm: Vec<u8>,
    /// Module or component.
    pub kind: WasmKind,
    /// What was done.
    pub conversion: Conversion,
    /// The world, when the build knows it.
    pub target: Option<String>,
    /// Things worth telling the user.
    pub notes: Vec<String>,
    /// The component's imports and exports, when the build read them already.
    pub section: Option<wasmoci_spec::ComponentSection>,
}

/// What a core module imports and carries, read in one pass.
#[derive(Debug, Default)]
struct ModuleFacts {
    imports_wasip1: bool,
    /// It imports wasip1's `proc_exit`: it may exit with a code of its own.
    imports_proc_exit: bool,
    other_import_modules: Vec<String>,
    exports_start: bool,
    has_component_type: bool,
}

/// Reads the sections that matter and skips the code section: the module is validated
/// later, by the encoder or by `validate_wasm`, so this pass stays cheap.
fn module_facts(bytes: &[u8]) -> ModuleFacts {
    let mut facts = ModuleFacts::default();
    let mut parser = Parser::new(0);
    let mut rest = bytes;
    while let Ok(Chunk::Parsed { consumed, payload }) = parser.parse(rest, true) {
        rest = &rest[consumed..];
        match payload {
            Payload::CodeSectionStart { size, .. } => {
                parser.skip_section();
                // A truncated module: stop here, validation reports it with its offset.
                let Some(after) = rest.get(size as usize..) else {
                    break;
                };
                rest = after;
            }
            Payload::End(_) => break,
            Payload::ImportSection(reader) => {
                for import in reader.into_imports().flatten() {
                    if import.module == WASIP1_MODULE {
                        facts.imports_wasip1 = true;
                        facts.imports_proc_exit |= import.name == "proc_exit";
                    } else if !facts
                        .other_import_modules
                        .iter()
                        .any(|m| m == import.module)
                    {
                        facts.other_import_modules.push(import.module.to_owned());
                    }
                }
            }
            Payload::ExportSection(reader) => {
                facts.exports_start |= reader.into_iter().flatten().any(|e| e.name == "_start");
            }
            Payload::CustomSection(section) if section.name().starts_with("component-type") => {
                facts.has_component_type = true;
            }
            _ => {}
        }
    }
    facts
}

/// Turns the input into the artifact's wasm, following the rules in the module docs.
/// `path` is only used in messages.
pub fn componentize(
    bytes: Vec<u8>,
    path: &Path,
    keep_module: bool,
    wit: Option<&WitWorld>,
) -> Result<Componentized, BuildError> {
    let kind = WasmKind::detect(&bytes).ok_or_else(|| BuildError::NotWasm {
        path: path.to_owned(),
    })?;
    let invalid = |error| BuildError::Invalid {
        path: path.to_owned(),
        error,
    };
    if kind == WasmKind::Component {
        validate_wasm(&bytes, WasmFeatures::all(), crate::ops::threads()).map_err(invalid)?;
        return Ok(Componentized {
            wasm: bytes,
            kind,
            conversion: Conversion::Component,
            target: None,
            notes: Vec::new(),
            section: None,
        });
    }
    let facts = module_facts(&bytes);
    let mut notes = Vec::new();
    let keep = |bytes: Vec<u8>, notes| -> Result<Componentized, BuildError> {
        validate_wasm(&bytes, WasmFeatures::all(), crate::ops::threads()).map_err(invalid)?;
        Ok(Componentized {
            wasm: bytes,
            kind: WasmKind::Module,
            conversion: Conversion::Module,
            target: None,
            notes,
            section: None,
        })
    };
    if keep_module {
        return keep(bytes, notes);
    }
    let mut module = bytes;
    let mut target = None;
    let conversion = if let Some(wit) = wit {
        let (resolve, world, name) = wit.load()?;
        wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
            .map_err(|e| BuildError::Componentize {
                path: path.to_owned(),
                reason: format!("{e:#}"),
            })?;
        target = Some(name);
        Conversion::Wit
    } else if facts.has_component_type {
        if let Ok((_, bindgen)) = wit_component::metadata::decode(&module) {
            let name = world_name(&bindgen.resolve, bindgen.world);
            // wit-component names a world it had to make up `root:component/root`.
            if wasmoci_spec::is_meaningful_world(&name) {
                target = Some(name);
            }
        }
        Conversion::Embedded
    } else if facts.imports_wasip1 {
        if facts.imports_proc_exit && facts.exports_start {
            // The adapter (wasmtime 48's) maps `proc_exit(n)` to `wasi:cli/exit.exit`,
            // which carries only success or failure, not `exit-with-code`.
            notes.push(format!(
                "`{}` calls `proc_exit`: as a component (through the wasip1 adapter) it exits with 0 or 1, any other code reads 1 (`--module` keeps it a module, which keeps its exit codes)",
                path.display()
            ));
        }
        Conversion::Adapted
    } else {
        if !facts.other_import_modules.is_empty() {
            notes.push(format!(
                "`{}` imports {} but carries no component type; it is stored as a wasip1 module (give it a world with `--wit DIR --world NAME` to make it a component)",
                path.display(),
                facts
                    .other_import_modules
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        return keep(module, notes);
    };

    let mut encoder = ComponentEncoder::default();
    encoder.validate(true);
    let fail = |e: anyhow::Error| BuildError::Componentize {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    };
    encoder.module(&module).map_err(fail)?;
    if facts.imports_wasip1 {
        let adapter = if facts.exports_start {
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER
        } else {
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
        };
        encoder.adapter(WASIP1_MODULE, adapter).map_err(fail)?;
    }
    let wasm = encoder.encode().map_err(fail)?;
    let mut section = None;
    if conversion == Conversion::Adapted && facts.exports_start {
        // The command adapter implements `wasi:cli/command` at the WASI version it imports.
        if let Ok(read) = wasmoci_spec::component_section(&wasm) {
            if let Some(version) = read
                .exports
                .iter()
                .find_map(|e| e.strip_prefix("wasi:cli/run@"))
            {
                target = Some(format!("wasi:cli/command@{version}"));
            }
            section = Some(read);
        }
    }
    Ok(Componentized {
        wasm,
        kind: WasmKind::Component,
        conversion,
        target,
        notes,
        section,
    })
}

/// The package metadata embedded into the wasm and mirrored into annotations.
#[derive(Debug, Clone, Default)]
pub struct PackageMetadata {
    /// Name.
    pub name: String,
    /// Version.
    pub version: Option<String>,
    /// Authors.
    pub authors: Vec<String>,
    /// SPDX license expression.
    pub license: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Source URL.
    pub source: Option<String>,
    /// Homepage URL.
    pub homepage: Option<String>,
    /// Source control revision.
    pub revision: Option<String>,
}

impl From<&crate::project::Package> for PackageMetadata {
    fn from(p: &crate::project::Package) -> Self {
        PackageMetadata {
            name: p.name.clone(),
            version: Some(p.version.clone()),
            authors: p.authors.clone(),
            license: p.license.clone(),
            description: p.description.clone(),
            source: p.source.clone(),
            homepage: p.homepage.clone(),
            revision: p.revision.clone(),
        }
    }
}

impl PackageMetadata {
    /// Authors as one string, as OCI and wasm-metadata carry them.
    pub fn authors_text(&self) -> Option<String> {
        (!self.authors.is_empty()).then(|| self.authors.join(", "))
    }

    /// The `org.opencontainers.image.*` annotations mirroring the metadata.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |key: &str, value: Option<&String>| {
            if let Some(v) = value {
                out.insert(key.to_owned(), v.clone());
            }
        };
        put(annotations::TITLE, Some(&self.name));
        put(annotations::VERSION, self.version.as_ref());
        put(annotations::AUTHORS, self.authors_text().as_ref());
        put(annotations::LICENSES, self.license.as_ref());
        put(annotations::DESCRIPTION, self.description.as_ref());
        put(annotations::SOURCE, self.source.as_ref());
        put(annotations::URL, self.homepage.as_ref());
        put(annotations::REVISION, self.revision.as_ref());
        out
    }

    /// The fields [`PackageMetadata::embed`] writes into the wasm, by their metadata names.
    pub fn fields(&self) -> Vec<&'static str> {
        let optional = [
            ("version", self.version.is_some()),
            ("authors", !self.authors.is_empty()),
            ("licenses", self.license.is_some()),
            ("description", self.description.is_some()),
            ("source", self.source.is_some()),
            ("homepage", self.homepage.is_some()),
            ("revision", self.revision.is_some()),
        ];
        std::iter::once("name")
            .chain(optional.into_iter().filter(|(_, set)| *set).map(|(f, _)| f))
            .chain(std::iter::once("processed-by"))
            .collect()
    }

    /// Embeds the metadata into `wasm` (the outermost component, or the module).
    pub fn embed(&self, wasm: &[u8], path: &Path) -> Result<Vec<u8>, BuildError> {
        let field_error = |field, value: &String, e: anyhow::Error| BuildError::Metadata {
            field,
            value: value.clone(),
            reason: format!("{e:#}"),
        };
        let mut add = AddMetadata::default();
        add.name = AddMetadataField::Set(self.name.clone());
        add.processed_by = vec![("wasmoci".into(), env!("CARGO_PKG_VERSION").into())];
        if let Some(v) = &self.version {
            add.version = AddMetadataField::Set(Version::new(v.clone()));
        }
        if let Some(a) = self.authors_text() {
            add.authors = AddMetadataField::Set(Authors::new(a));
        }
        if let Some(l) = &self.license {
            add.licenses =
                AddMetadataField::Set(Licenses::new(l).map_err(|e| field_error("license", l, e))?);
        }
        if let Some(d) = &self.description {
            add.description = AddMetadataField::Set(Description::new(d.clone()));
        }
        if let Some(s) = &self.source {
            add.source =
                AddMetadataField::Set(Source::new(s).map_err(|e| field_error("source", s, e))?);
        }
        if let Some(h) = &self.homepage {
            add.homepage =
                AddMetadataField::Set(Homepage::new(h).map_err(|e| field_error("homepage", h, e))?);
        }
        if let Some(r) = &self.revision {
            add.revision = AddMetadataField::Set(Revision::new(r.clone()));
        }
        crate::ops::embed::add_metadata(&add, wasm).map_err(|e| BuildError::EmbedMetadata {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        })
    }
}
