//! A compiled module or component, and what it can be run as.

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
        let exports = self.exports(engine);
        let mut out = Vec::new();
        match self {
            Program::Component(_) => {
                if exports
                    .iter()
                    .any(|e| e.starts_with("wasi:http/incoming-handler@"))
                {
                    out.push(EntryPoint::Http);
                }
                if exports.iter().any(|e| e.starts_with("wasi:cli/run@")) {
                    out.push(EntryPoint::Command);
                }
            }
            Program::Module(_) => {
                if exports.iter().any(|e| e == "_start") {
                    out.push(EntryPoint::Command);
                }
            }
        }
        out
    }
}
