//! Compiled artifacts on disk, keyed by (content digest, engine compatibility hash).
//!
//! Layout: `DIR/<compatibility key>/<digest hex>.cwasm` and a sidecar
//! `<digest hex>.cwasm.sha256` holding the SHA-256 of the `.cwasm`. Both are written to
//! temporary files and renamed. A load checks the sidecar against the file before wasmtime
//! maps it (`deserialize_file`), and wasmtime checks the engine compatibility itself; an
//! entry that fails either check is compiled again and replaced, never run.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmoci_fs::AtomicFile;
use wasmoci_spec::{Digest, WasmKind};
use wasmtime::Module;
use wasmtime::component::Component;

use crate::engine::{WasmEngine, compatibility_key};
use crate::error::wasmtime_message;
use crate::program::Program;
use crate::{Error, Result};

/// Where compiled artifacts are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

/// What a load found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache; nothing compiled.
    Hit,
    /// Not cached: compiled and stored.
    Miss,
    /// A bad entry (named reason) was found, compiled again and replaced.
    Replaced(String),
    /// No cache: compiled in memory.
    Uncached,
}

impl CompileCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CompileCache { dir: dir.into() }
    }

    /// Where the entry for `digest` lives under `engine`.
    pub fn entry_path(&self, engine: &WasmEngine, digest: &Digest) -> PathBuf {
        self.dir
            .join(compatibility_key(engine.engine()))
            .join(format!("{}.cwasm", digest.hex()))
    }

    /// Loads the compiled form of `wasm` (whose digest is `digest`), compiling and
    /// storing it when the cache has no good entry.
    pub fn load(
        &self,
        engine: &WasmEngine,
        name: &str,
        wasm: &[u8],
        digest: &Digest,
    ) -> Result<(Program, CacheOutcome)> {
        let kind = WasmKind::detect(wasm).ok_or_else(|| Error::Compile {
            name: name.to_owned(),
            reason: "not a WebAssembly module or component".into(),
        })?;
        let path = self.entry_path(engine, digest);
        let outcome = match self.read_entry(engine, kind, &path) {
            Ok(Some(program)) => return Ok((program, CacheOutcome::Hit)),
            Ok(None) => CacheOutcome::Miss,
            Err(reason) => CacheOutcome::Replaced(reason),
        };
        let program = compile(engine, name, kind, wasm)?;
        let bytes = match &program {
            Program::Component(c) => c.serialize(),
            Program::Module(m) => m.serialize(),
        }
        .map_err(|e| Error::Compile {
            name: name.to_owned(),
            reason: wasmtime_message(&e),
        })?;
        write_entry(&path, &bytes)?;
        Ok((program, outcome))
    }

    /// `Ok(None)`: no entry. `Err(reason)`: an entry that must not be used.
    fn read_entry(
        &self,
        engine: &WasmEngine,
        kind: WasmKind,
        path: &Path,
    ) -> std::result::Result<Option<Program>, String> {
        let sidecar = sidecar_path(path);
        let expected = match fs::read_to_string(&sidecar) {
            Ok(text) => text.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => {
                return Ok(None);
            }
            Err(_) => return Err("its checksum file is missing".into()),
        };
        let actual = match file_sha256(path) {
            Ok(hex) => hex,
            Err(_) => return Err("it cannot be read".into()),
        };
        if actual != expected {
            return Err(format!(
                "its content hashes to `{actual}`, not `{expected}` (corrupt or truncated)"
            ));
        }
        // SAFETY: wasmtime's deserialization trusts the bytes to be its own compiler's
        // output. The file is in our cache directory, was written by `write_entry` after a
        // compile with an engine of the same compatibility hash (the directory name), and
        // its SHA-256 was just checked against the sidecar written with it. wasmtime
        // itself rejects artifacts from an incompatible engine.
        #[allow(unsafe_code, reason = "loading our own checked, compiled artifacts")]
        let loaded = unsafe {
            match kind {
                WasmKind::Component => {
                    Component::deserialize_file(engine.engine(), path).map(Program::Component)
                }
                WasmKind::Module => {
                    Module::deserialize_file(engine.engine(), path).map(Program::Module)
                }
            }
        };
        loaded
            .map(Some)
            .map_err(|e| format!("wasmtime refused it: {}", wasmtime_message(&e)))
    }
}

/// Compiles without a cache.
pub fn compile(engine: &WasmEngine, name: &str, kind: WasmKind, wasm: &[u8]) -> Result<Program> {
    let compiled = match kind {
        WasmKind::Component => Component::new(engine.engine(), wasm).map(Program::Component),
        WasmKind::Module => Module::new(engine.engine(), wasm).map(Program::Module),
    };
    compiled.map_err(|e| Error::Compile {
        name: name.to_owned(),
        reason: wasmtime_message(&e),
    })
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".sha256");
    path.with_file_name(name)
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn write_entry(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("cache entries have a parent");
    let io = |action, source| Error::Io {
        action,
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| io("create", e))?;
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let stage = |path: &Path, bytes: &[u8]| {
        let mut file = AtomicFile::create(path)?;
        file.write_all(bytes)?;
        Ok(file)
    };
    let entry = stage(path, bytes).map_err(|e| io("write a cache entry in", e))?;
    let sidecar =
        stage(&sidecar_path(path), hex.as_bytes()).map_err(|e| io("write a cache entry in", e))?;
    // The entry first: a reader that sees the new entry with the old sidecar finds a
    // mismatch and recompiles; it never runs unchecked bytes.
    entry
        .commit(0o644)
        .map_err(|e| io("write a cache entry in", e))?;
    sidecar
        .commit(0o644)
        .map_err(|e| io("write a cache entry in", e))?;
    Ok(())
}
