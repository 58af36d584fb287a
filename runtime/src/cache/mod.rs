//! Compiled artifacts on disk, keyed by (content digest, engine compatibility hash).
//!
//! Layout: `DIR/<compatibility key>/<digest hex>.cwasm` and a sidecar
//! `<digest hex>.cwasm.sha256` holding its tag: an HMAC-SHA256, under the key in
//! `DIR.key`, of the engine key, the wasm digest and the SHA-256 of the `.cwasm`
//! ([`trust`]). Both are written to temporary files and renamed. A load checks the
//! directories (this user's, not group- or world-writable), reads the entry into memory
//! once and checks the tag over those bytes before wasmtime deserializes them, and
//! wasmtime checks the engine compatibility itself; an entry that fails either check is
//! compiled again and replaced, never run.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmoci_fs::AtomicFile;
use wasmoci_spec::{Digest, WasmKind};
use wasmtime::Module;
use wasmtime::component::Component;

use self::trust::{CacheKey, key_path, trusted_dir};
use crate::engine::{WasmEngine, compatibility_key};
use crate::error::wasmtime_message;
use crate::program::Program;
use crate::{Error, Result};

/// The version of wasmtime this engine is built on (`wasmoci --version` prints it; a test
/// checks it against `Cargo.lock`).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Where compiled artifacts are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: PathBuf,
}

mod trust;

/// A compiled entry on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The engine compatibility key (the directory name).
    pub key: String,
    /// The digest of the wasm it was compiled from.
    pub digest: Digest,
    /// The `.cwasm` file.
    pub path: PathBuf,
    /// The `.cwasm` and its sidecar, in bytes.
    pub size: u64,
}

/// Why [`CompileCache::gc`] removed an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Compiled by another engine (another wasmtime, other settings, another CPU).
    Engine,
    /// Its artifact is no longer kept.
    Artifact,
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
    /// A cache in `dir` (created 0700 on first store), its key in `<dir>.key`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        CompileCache {
            key: key_path(&dir),
            dir,
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every entry, of every engine, in path order: `<key>/<digest hex>.cwasm` and its
    /// `.sha256` sidecar count as one (an orphaned sidecar too). Other files are not
    /// entries (temporary files of a write in progress among them). No cache yet: none.
    pub fn entries(&self) -> Result<Vec<CacheEntry>> {
        let mut entries = Vec::new();
        for key_dir in read_dir(&self.dir)? {
            let Some(key) = key_dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
            else {
                continue;
            };
            if !key_dir.is_dir() {
                continue;
            }
            for path in read_dir(&key_dir)? {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let Some(hex) = name
                    .strip_suffix(".cwasm.sha256")
                    .or_else(|| name.strip_suffix(".cwasm"))
                else {
                    continue;
                };
                let Some(digest) = format!("sha256:{hex}")
                    .parse::<Digest>()
                    .ok()
                    .filter(|d| d.hex() == hex)
                else {
                    continue;
                };
                let size = fs::metadata(&path).map_or(0, |m| m.len());
                let entry_path = key_dir.join(format!("{hex}.cwasm"));
                match entries.last_mut() {
                    Some(CacheEntry {
                        path, size: total, ..
                    }) if *path == entry_path => {
                        *total += size;
                    }
                    _ => entries.push(CacheEntry {
                        key: key.clone(),
                        digest,
                        path: entry_path,
                        size,
                    }),
                }
            }
        }
        Ok(entries)
    }

    /// Removes the entries of engines whose compatibility key is not in `current_keys`
    /// (stale: no engine of this build loads them; with and without fuel are two keys) and those whose digest `keep` refuses (the artifact is gone).
    /// With `dry_run`, only reports them. A run that loads an entry as it goes finds it
    /// missing or unchecked and compiles again; an entry is never half removed in a way
    /// that runs unchecked code (the sidecar goes last).
    pub fn gc(
        &self,
        current_keys: &[String],
        keep: impl Fn(&Digest) -> bool,
        dry_run: bool,
    ) -> Result<Vec<(CacheEntry, Stale)>> {
        let mut removed = Vec::new();
        for entry in self.entries()? {
            let why = if !current_keys.contains(&entry.key) {
                Stale::Engine
            } else if !keep(&entry.digest) {
                Stale::Artifact
            } else {
                continue;
            };
            if !dry_run {
                for path in [entry.path.clone(), sidecar_path(&entry.path)] {
                    match fs::remove_file(&path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(Error::Io {
                                action: "remove",
                                path,
                                source: e,
                            });
                        }
                        _ => {}
                    }
                }
                if why == Stale::Engine {
                    // An old engine's directory goes once it is empty.
                    let _ = fs::remove_dir(entry.path.parent().unwrap_or(&self.dir));
                }
            }
            removed.push((entry, why));
        }
        Ok(removed)
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
        let engine_dir = path.parent().expect("cache entries have a parent");
        trusted_dir(&self.dir)?;
        trusted_dir(engine_dir)?;
        let key = CacheKey::load_or_create(&self.key)?;
        let engine_key = compatibility_key(engine.engine());
        let outcome = match self.read_entry(engine, kind, &path, &key, &engine_key, digest) {
            Ok(Some(program)) => return Ok((program, CacheOutcome::Hit)),
            Ok(None) => CacheOutcome::Miss,
            Err(reason) => CacheOutcome::Replaced(reason),
        };
        let program = compile(engine, name, kind, wasm)?;
        let bytes = program.to_bytes(name)?;
        let tag = key.tag(&engine_key, digest, &Sha256::digest(&bytes));
        write_entry(&path, &bytes, &tag)?;
        Ok((program, outcome))
    }

    /// `Ok(None)`: no entry. `Err(reason)`: an entry that must not be used.
    fn read_entry(
        &self,
        engine: &WasmEngine,
        kind: WasmKind,
        path: &Path,
        key: &CacheKey,
        engine_key: &str,
        digest: &Digest,
    ) -> std::result::Result<Option<Program>, String> {
        let sidecar = sidecar_path(path);
        // Bounded: a tag is one short line.
        let tag = match fs::File::open(&sidecar) {
            Ok(file) => {
                let mut text = String::new();
                let _ = file.take(256).read_to_string(&mut text);
                text.trim().to_owned()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => {
                return Ok(None);
            }
            Err(_) => return Err("its tag file is missing".into()),
        };
        // Read once, into memory, with a bound: what is verified is what is loaded (a file
        // renamed over the entry or rewritten after the check changes nothing).
        let bytes = match read_bounded(path) {
            Ok(bytes) => bytes,
            Err(_) => return Err("it cannot be read".into()),
        };
        if !key.verify(engine_key, digest, &Sha256::digest(&bytes), &tag) {
            return Err(
                "its tag does not verify (corrupt, truncated, or not this cache's entry for this wasm)"
                    .into(),
            );
        }
        // SAFETY: wasmtime's deserialization trusts the bytes to be its own compiler's
        // output. These bytes are in our memory, and their tag, an HMAC under this cache's
        // key of (engine key, wasm digest, SHA-256 of these very bytes), was just verified:
        // only `load` of this cache, after compiling this wasm with an engine of this
        // compatibility key, makes such a tag. wasmtime itself rejects artifacts from an
        // incompatible engine.
        #[allow(unsafe_code, reason = "loading our own checked, compiled artifacts")]
        let loaded = unsafe {
            match kind {
                WasmKind::Component => {
                    Component::deserialize(engine.engine(), &bytes).map(Program::Component)
                }
                WasmKind::Module => {
                    Module::deserialize(engine.engine(), &bytes).map(Program::Module)
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

/// The paths in `dir`, sorted; none when it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| Error::Io {
        action: "read",
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io)?;
    paths.sort();
    Ok(paths)
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".sha256");
    path.with_file_name(name)
}

/// The largest cache entry read (compiled code is a few times its wasm, which is at most
/// 1 GiB).
const MAX_ENTRY: u64 = 4 << 30;

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(file.metadata()?.len().min(MAX_ENTRY) as usize);
    file.take(MAX_ENTRY).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn write_entry(path: &Path, bytes: &[u8], tag: &str) -> Result<()> {
    let dir = path.parent().expect("cache entries have a parent");
    let io = |action, source| Error::Io {
        action,
        path: dir.to_owned(),
        source,
    };
    let stage = |path: &Path, bytes: &[u8]| {
        let mut file = AtomicFile::create(path)?;
        file.write_all(bytes)?;
        Ok(file)
    };
    let entry = stage(path, bytes).map_err(|e| io("write a cache entry in", e))?;
    let sidecar =
        stage(&sidecar_path(path), tag.as_bytes()).map_err(|e| io("write a cache entry in", e))?;
    // The entry first: a reader that sees the new entry with the old tag finds a mismatch
    // and recompiles; it never runs unchecked bytes.
    entry
        .commit(0o600)
        .map_err(|e| io("write a cache entry in", e))?;
    sidecar
        .commit(0o600)
        .map_err(|e| io("write a cache entry in", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineSettings, build_engine};

    #[test]
    fn the_wasmtime_version_is_the_one_in_the_lock_file() {
        let lock =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"))
                .unwrap();
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .expect("wasmtime is in Cargo.lock");
        assert_eq!(version.trim_matches('"'), WASMTIME_VERSION);
    }

    #[test]
    fn gc_removes_other_engines_and_unkept_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path());
        let engine = build_engine(&EngineSettings {
            pooling: Some(false),
            ..EngineSettings::default()
        })
        .unwrap();
        let wasm = b"\0asm\x01\0\0\0";
        let (kept, gone) = (Digest::of(wasm), Digest::of(b"gone"));
        for digest in [kept, gone] {
            cache.load(&engine, "m", wasm, &digest).unwrap();
        }
        let key = compatibility_key(engine.engine());
        let old = dir.path().join("0123456789abcdef");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(format!("{}.cwasm", kept.hex())), b"old").unwrap();
        std::fs::write(old.join(format!("{}.cwasm.sha256", kept.hex())), b"x").unwrap();
        std::fs::write(dir.path().join(&key).join(".wasmoci-tmp"), b"in flight").unwrap();
        assert_eq!(cache.entries().unwrap().len(), 3);

        let keys = [key.clone()];
        let dry = cache.gc(&keys, |d| *d == kept, true).unwrap();
        assert_eq!(cache.entries().unwrap().len(), 3);
        let removed = cache.gc(&keys, |d| *d == kept, false).unwrap();
        assert_eq!(dry, removed);
        let why: Vec<_> = removed.iter().map(|(e, why)| (e.digest, *why)).collect();
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why.contains(&(gone, Stale::Artifact)), "{why:?}");
        let old_entry = removed
            .iter()
            .find(|(_, why)| *why == Stale::Engine)
            .unwrap();
        assert_eq!((old_entry.0.digest, old_entry.0.size), (kept, 4));
        assert!(!old.exists(), "the old engine's directory goes");
        let left = cache.entries().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].path, cache.entry_path(&engine, &kept));
        assert!(dir.path().join(&key).join(".wasmoci-tmp").exists());
        // What is left still loads from the cache.
        let (_, outcome) = cache.load(&engine, "m", wasm, &kept).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
    }
}
