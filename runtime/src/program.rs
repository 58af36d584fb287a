//! A compiled module or component, and what it can be run as.

use wasmoci_spec::WasmKind;
use wasmtime::Module;
use wasmtime::component::Component;

/// A compiled program.
#[derive(Clone)]
pub enum Program {
    /// A component.
    Component(Component),
    /// A core module (wasip1).
    Module(Module),
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Program::Component(_) => f.write_str("Program::Component"),
            Program::Module(_) => f.write_str("Program::Module"),
        }
    }
}

/// How a program is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPoint {
    /// `wasi:cli/run` (components) or `_start` (modules): run to completion.
    Command,
    /// `wasi:http/incoming-handler`: serve requests.
    Http,
}

impl Program {
    /// The names the program exports (interface names for components).
    pub fn exports(&self, engine: &wasmtime::Engine) -> Vec<String> {
        match self {
            Program::Component(c) => c
                .component_type()
                .exports(engine)
                .map(|(name, _)| name.to_owned())
                .collect(),
            Program::Module(m) => m.exports().map(|e| e.name().to_owned()).collect(),
        }
    }

    /// The names the program imports.
    pub fn imports(&self, engine: &wasmtime::Engine) -> Vec<String> {
        match self {
            Program::Component(c) => c
                .component_type()
                .imports(engine)
                .map(|(name, _)| name.to_owned())
                .collect(),
            Program::Module(m) => m
                .imports()
                .map(|i| format!("{}#{}", i.module(), i.name()))
                .collect(),
        }
    }

    /// What the program can be run as, from its exports (as runwasi decides): an HTTP
    /// handler if it exports `wasi:http/incoming-handler`, then a command.
    pub fn entry_points(&self, engine: &wasmtime::Engine) -> Vec<EntryPoint> {
        self.shape(engine).entry_points()
    }

    /// Whether it is a component or a core module.
    pub fn kind(&self) -> WasmKind {
        match self {
            Program::Component(_) => WasmKind::Component,
            Program::Module(_) => WasmKind::Module,
        }
    }

    /// Its compiled code, for a compile cache entry.
    pub(crate) fn to_bytes(&self, name: &str) -> crate::Result<Vec<u8>> {
        match self {
            Program::Component(c) => c.serialize(),
            Program::Module(m) => m.serialize(),
        }
        .map_err(|e| crate::Error::Compile {
            name: name.to_owned(),
            reason: crate::error::wasmtime_message(&e),
        })
    }

    /// Maps the compiled code of a compile cache entry another process of the same
    /// engine settings checked and handed over ([`crate::cache::Entry::file`]): pages of
    /// code shared, through the page cache, with every process that maps the entry.
    ///
    /// # Safety
    /// wasmtime runs the code as it is: `file` must be a cache entry that the process
    /// handing it over loaded through [`crate::cache::CompileCache::lookup`] (its tag
    /// checked against this very open file) with an engine of the same settings.
    #[allow(unsafe_code, reason = "the caller vouches for the file")]
    pub unsafe fn from_handed_file(
        engine: &crate::engine::WasmEngine,
        kind: WasmKind,
        name: &str,
        file: &std::fs::File,
    ) -> crate::Result<Program> {
        // SAFETY: the caller's promise, above.
        unsafe { crate::cache::map_open_file(engine, kind, file) }.map_err(|e| {
            crate::Error::Compile {
                name: name.to_owned(),
                reason: crate::error::wasmtime_message(&e),
            }
        })
    }

    fn shape(&self, engine: &wasmtime::Engine) -> Shape {
        Shape {
            kind: self.kind(),
            exports: self.exports(engine),
        }
    }
}

/// What a program is and exports: all [`Program::target`] needs, so that it can be read
/// from the bytes ([`Shape::read`]) and a program that cannot run is refused before it is
/// compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Module or component.
    pub kind: WasmKind,
    /// Its top-level export names (interface names for components).
    pub exports: Vec<String>,
}

impl Shape {
    /// Reads the exports from the bytes, without validating or compiling them; `None`
    /// when they cannot be read (compiling them says why).
    pub fn read(wasm: &[u8]) -> Option<Shape> {
        wasmoci_spec::export_names(wasm).map(|(kind, exports)| Shape { kind, exports })
    }

    /// What it can be run as: an HTTP handler if it exports
    /// `wasi:http/incoming-handler`, then a command.
    pub fn entry_points(&self) -> Vec<EntryPoint> {
        let mut out = Vec::new();
        match self.kind {
            WasmKind::Component => {
                if self.exports.iter().any(|e| is_http_handler(e)) {
                    out.push(EntryPoint::Http);
                }
                if self.exports.iter().any(|e| e.starts_with("wasi:cli/run@")) {
                    out.push(EntryPoint::Command);
                }
            }
            WasmKind::Module => {
                if self.exports.iter().any(|e| e == "_start") {
                    out.push(EntryPoint::Command);
                }
            }
        }
        out
    }
}

fn is_http_handler(export: &str) -> bool {
    export.starts_with("wasi:http/incoming-handler@")
}

/// What a caller asks a program to be run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Whatever it is (the shim): a command if it is one, else an HTTP handler.
    Any,
    /// A command (`wasmoci run`).
    Command,
    /// An HTTP handler (`wasmoci serve`).
    Http,
}

/// What a program runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Run to completion: `wasi:cli/run`, `_start`, or the core module function `entry`.
    Command {
        /// `path#func`: a core module's function to call instead of `_start`.
        entry: Option<String>,
    },
    /// Serve `wasi:http/incoming-handler`, an instance per request.
    Http,
}

impl Program {
    /// The one decision of what this program runs as, for `wasmoci run`, `wasmoci serve`
    /// and the shim alike: [`Shape::target`] on what the compiled program exports.
    pub fn target(
        &self,
        engine: &wasmtime::Engine,
        name: &str,
        entry: Option<&str>,
        want: Want,
    ) -> crate::Result<Target> {
        self.shape(engine).target(name, entry, want)
    }
}

impl Shape {
    /// The one decision of what a program runs as (before compiling, on
    /// [`Shape::read`], and after, through [`Program::target`]). `entry` (`path#func`)
    /// names a core module's function to call instead of `_start`; components ignore it.
    /// A component that is both a command and an HTTP handler runs as a command unless
    /// `want` is [`Want::Http`].
    pub fn target(&self, name: &str, entry: Option<&str>, want: Want) -> crate::Result<Target> {
        let module = self.kind == WasmKind::Module;
        let entry = entry.filter(|f| !f.is_empty() && *f != "_start");
        if let (true, Some(func), Want::Any | Want::Command) = (module, entry, want) {
            return Ok(Target::Command {
                entry: Some(func.to_owned()),
            });
        }
        let entries = self.entry_points();
        let mismatch = |what: &str, advice: &str| crate::Error::Mismatch {
            name: name.to_owned(),
            what: what.to_owned(),
            advice: advice.to_owned(),
        };
        match want {
            Want::Http if module => Err(mismatch(
                "a core module",
                "only components can serve `wasi:http`",
            )),
            Want::Http if entries.contains(&EntryPoint::Http) => Ok(Target::Http),
            Want::Http if entries.contains(&EntryPoint::Command) => {
                Err(mismatch("a command (`wasi:cli/run`)", "use `wasmoci run`"))
            }
            Want::Http => Err(self.nothing_to_run(name, "`wasi:http/incoming-handler`")),
            _ if entries.contains(&EntryPoint::Command) => Ok(Target::Command { entry: None }),
            Want::Command if entries.contains(&EntryPoint::Http) => Err(mismatch(
                "an HTTP handler (`wasi:http/incoming-handler`)",
                "use `wasmoci serve`",
            )),
            Want::Command => Err(self.nothing_to_run(name, "`wasi:cli/run` nor `_start`")),
            Want::Any if entries.contains(&EntryPoint::Http) => Ok(Target::Http),
            Want::Any => Err(self.nothing_to_run(
                name,
                "`wasi:cli/run`, `wasi:http/incoming-handler` nor `_start`",
            )),
        }
    }

    fn nothing_to_run(&self, name: &str, wanted: &str) -> crate::Error {
        let exports = if self.exports.is_empty() {
            "nothing".to_owned()
        } else {
            self.exports
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let reason = if wanted.contains(" nor ") {
            format!("it exports neither {wanted} (it exports {exports})")
        } else {
            format!("it does not export {wanted} (it exports {exports})")
        };
        crate::Error::NoEntryPoint {
            name: name.to_owned(),
            reason,
        }
    }
}
