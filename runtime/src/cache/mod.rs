//! Compiled artifacts on disk, keyed by (content digest, engine compatibility hash).
//!
//! Layout: `DIR/<compatibility key>/<digest hex>.cwasm` (read-only) and a sidecar
//! `<digest hex>.cwasm.sha256` holding its tag and kind: an HMAC-SHA256, under the key in
//! `DIR.key`, of the engine key, the wasm digest, the kind and the identity of the entry
//! file ([`trust`]). Both are written to temporary files and renamed. A load checks the
//! directories (this user's, not group- or world-writable), opens the entry, checks the
//! tag against `fstat` of that open file (no read of the entry: a warm start costs the
//! same for 1 KiB or 40 MiB of code) and lets wasmtime map it, which checks the engine
//! compatibility itself; an entry that fails either check is compiled again and replaced,
//! never run. Compiled code mapped from the entry is shared, through the page cache, by
//! every process that runs it.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use wasmoci_fs::AtomicFile;
use wasmoci_spec::{Digest, WasmKind};
use wasmtime::Module;
use wasmtime::component::Component;

use self::trust::{CacheKey, EntryId, key_path, trusted_dir};
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

/// What [`CompileCache::lookup`] (an [`Entry`], mapped) or [`CompileCache::find`] (a
/// [`Verified`] file, not mapped) found.
#[derive(Debug)]
pub enum Lookup<T = Entry> {
    /// A good entry.
    Hit(T),
    /// No entry.
    Miss,
    /// An entry that must not be run, and why: compile again ([`CompileCache::store`]).
    Unusable(String),
}

/// A cache entry that verified, loaded: its program maps the entry's compiled code.
#[derive(Debug)]
pub struct Entry {
    /// The program.
    pub program: Program,
    /// The entry file, open read-only: what another process of the same engine may map
    /// ([`Program::from_handed_file`]).
    pub file: fs::File,
}

/// A cache entry whose tag verified against the open file, not mapped: for another
/// process of the same engine to map ([`Program::from_handed_file`]).
#[derive(Debug)]
pub struct Verified {
    /// The entry file, open read-only.
    pub file: fs::File,
    /// What it holds.
    pub kind: WasmKind,
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
        let outcome = match self.lookup(engine, digest)? {
            Lookup::Hit(entry) => return Ok((entry.program, CacheOutcome::Hit)),
            Lookup::Miss => CacheOutcome::Miss,
            Lookup::Unusable(reason) => CacheOutcome::Replaced(reason),
        };
        Ok((self.store(engine, name, wasm, digest)?, outcome))
    }

    /// The entry for `digest` under `engine`, when there is a good one: found by the
    /// digest alone, so a caller need not read (or hash) the wasm before it knows it has
    /// to compile it.
    pub fn lookup(&self, engine: &WasmEngine, digest: &Digest) -> Result<Lookup> {
        Ok(match self.find(engine, digest)? {
            Lookup::Hit(Verified { file, kind }) => {
                // SAFETY: wasmtime's deserialization trusts the bytes to be its own
                // compiler's output. This is the open file whose identity the tag, an HMAC
                // under this cache's key, was just checked against: only `store` of this
                // cache, after compiling this wasm with an engine of this compatibility
                // key, makes such a tag, from the read-only file it wrote, and any write to
                // the file since would have changed its mtime and ctime. wasmtime itself
                // rejects artifacts from an incompatible engine.
                #[allow(unsafe_code, reason = "loading our own checked, compiled artifacts")]
                match unsafe { map_open_file(engine, kind, &file) } {
                    Ok(program) => Lookup::Hit(Entry { program, file }),
                    Err(e) => {
                        Lookup::Unusable(format!("wasmtime refused it: {}", wasmtime_message(&e)))
                    }
                }
            }
            Lookup::Miss => Lookup::Miss,
            Lookup::Unusable(reason) => Lookup::Unusable(reason),
        })
    }

    /// The entry for `digest` under `engine`, its tag checked against the open file, not
    /// mapped: for a caller that hands it to another process to map (the shim's worker).
    pub fn find(&self, engine: &WasmEngine, digest: &Digest) -> Result<Lookup<Verified>> {
        let (path, key, engine_key) = self.open(engine, digest)?;
        Ok(match verify_entry(&path, &key, &engine_key, digest) {
            Ok(Some(verified)) => Lookup::Hit(verified),
            Ok(None) => Lookup::Miss,
            Err(reason) => Lookup::Unusable(reason),
        })
    }

    /// The entry path for `digest` under `engine`, the cache key and the engine key,
    /// once the directories are checked (or made) and the key read (or made).
    fn open(&self, engine: &WasmEngine, digest: &Digest) -> Result<(PathBuf, CacheKey, String)> {
        let path = self.entry_path(engine, digest);
        trusted_dir(&self.dir)?;
        trusted_dir(path.parent().expect("cache entries have a parent"))?;
        let key = CacheKey::load_or_create(&self.key)?;
        Ok((path, key, compatibility_key(engine.engine())))
    }

    /// Compiles `wasm` (named `name` in messages, its digest `digest`) and stores it,
    /// replacing what entry there was.
    pub fn store(
        &self,
        engine: &WasmEngine,
        name: &str,
        wasm: &[u8],
        digest: &Digest,
    ) -> Result<Program> {
        let (program, not_stored) = self.compile_and_store(engine, name, wasm, digest)?;
        match not_stored {
            Some(e) => Err(e),
            None => Ok(program),
        }
    }

    /// [`CompileCache::store`], keeping the compiled program when the entry cannot be
    /// written (a full disk, say): the program, and why it was not stored. A failed
    /// write leaves no entry, whole or partial.
    pub fn compile_and_store(
        &self,
        engine: &WasmEngine,
        name: &str,
        wasm: &[u8],
        digest: &Digest,
    ) -> Result<(Program, Option<Error>)> {
        let kind = WasmKind::detect(wasm).ok_or_else(|| Error::Compile {
            name: name.to_owned(),
            reason: "not a WebAssembly module or component".into(),
        })?;
        let (path, key, engine_key) = self.open(engine, digest)?;
        let program = compile(engine, name, kind, wasm)?;
        let bytes = program.to_bytes(name)?;
        let written = write_entry(&path, &bytes, |meta| {
            let tag = key.tag(&engine_key, digest, &EntryId::new(kind, meta));
            format!("{tag} {}\n", kind.as_str())
        });
        if written.is_err() {
            // The entry may have been renamed into place before its tag failed: without
            // its tag it would only be found unusable; remove both.
            let _ = fs::remove_file(sidecar_path(&path));
            let _ = fs::remove_file(&path);
        }
        Ok((program, written.err()))
    }
}

/// `Ok(None)`: no entry. `Err(reason)`: an entry that must not be used.
fn verify_entry(
    path: &Path,
    key: &CacheKey,
    engine_key: &str,
    digest: &Digest,
) -> std::result::Result<Option<Verified>, String> {
    let sidecar = sidecar_path(path);
    // Bounded: a tag is one short line.
    let text = match open_plain(&sidecar) {
        Ok(file) => {
            let mut text = String::new();
            let _ = file.take(256).read_to_string(&mut text);
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => {
            return Ok(None);
        }
        Err(_) => return Err("its tag file is missing".into()),
    };
    let (tag, kind) = match text.split_whitespace().collect::<Vec<_>>()[..] {
        [tag, "component"] => (tag, WasmKind::Component),
        [tag, "module"] => (tag, WasmKind::Module),
        _ => return Err("its tag file is not one this wasmoci writes".into()),
    };
    // The file that is checked is the file that is mapped: one open, `fstat` of it, and
    // wasmtime maps that same open file (a rename over the entry after the check changes
    // nothing).
    let file = open_plain(path).map_err(|_| "it cannot be opened".to_owned())?;
    let meta = file
        .metadata()
        .map_err(|_| "it cannot be read".to_owned())?;
    if !meta.is_file() || meta.nlink() != 1 || meta.len() > MAX_ENTRY {
        return Err("it is not a single regular file".into());
    }
    if !key.verify(engine_key, digest, &EntryId::new(kind, &meta), tag) {
        return Err(
            "its tag does not verify (written to, corrupt, truncated, or not this cache's entry for this wasm)"
                .into(),
        );
    }
    Ok(Some(Verified { file, kind }))
}

/// Opens `path` to read, not through a symlink, and without waiting: a FIFO planted in its
/// place cannot hang the open (what is not a regular file is refused after it).
fn open_plain(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
}

/// Maps the compiled code in the open `file` (wasmtime's `deserialize_file` of the
/// process's own name for the descriptor: the same file, whatever its path now names).
///
/// # Safety
/// `file` must hold compiled code of an engine with `engine`'s settings that no one can
/// have changed since it was checked.
#[allow(unsafe_code, reason = "the caller vouches for the file")]
pub(crate) unsafe fn map_open_file(
    engine: &WasmEngine,
    kind: WasmKind,
    file: &fs::File,
) -> wasmtime::Result<Program> {
    let own = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    // SAFETY: the caller's promise, above.
    unsafe {
        if own.exists() {
            match kind {
                WasmKind::Component => {
                    Component::deserialize_file(engine.engine(), &own).map(Program::Component)
                }
                WasmKind::Module => {
                    Module::deserialize_open_file(engine.engine(), file.try_clone()?)
                        .map(Program::Module)
                }
            }
        } else {
            // No `/proc`: read the open file once, into memory.
            let mut bytes = Vec::new();
            file.take(MAX_ENTRY).read_to_end(&mut bytes)?;
            match kind {
                WasmKind::Component => {
                    Component::deserialize(engine.engine(), &bytes).map(Program::Component)
                }
                WasmKind::Module => {
                    Module::deserialize(engine.engine(), &bytes).map(Program::Module)
                }
            }
        }
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

/// The largest cache entry loaded (compiled code is a few times its wasm, which is at
/// most 1 GiB).
const MAX_ENTRY: u64 = 4 << 30;

/// The metadata of `file` once the clock that stamps files has moved past its ctime.
/// Filesystems stamp changes with the coarse realtime clock (a scheduler tick, 1 to 10
/// ms, on kernels without multigrain timestamps): a write within the tick of the last
/// one could leave mtime and ctime as they were, and the tag would still verify. Waiting
/// until that clock has passed the ctime (on a miss only, beside a compile; a tick at
/// most) leaves no such write.
fn settled(file: &fs::File) -> std::io::Result<fs::Metadata> {
    use nix::time::{ClockId, clock_gettime};
    let meta = file.metadata()?;
    let changed = (meta.ctime(), meta.ctime_nsec());
    // Bounded: 50 ms at most (a clock that does not move, or a ctime far ahead of it).
    for _ in 0..50 {
        let now = clock_gettime(ClockId::CLOCK_REALTIME_COARSE).map_err(std::io::Error::from)?;
        if (now.tv_sec(), now.tv_nsec()) > changed {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(meta)
}

/// Writes the entry (read-only), then its sidecar with the text `tag` makes from the
/// entry's metadata as renamed into place.
fn write_entry(path: &Path, bytes: &[u8], tag: impl FnOnce(&fs::Metadata) -> String) -> Result<()> {
    let dir = path.parent().expect("cache entries have a parent");
    let io = |source| Error::Io {
        action: "write a cache entry in",
        path: dir.to_owned(),
        source,
    };
    let mut entry = AtomicFile::create(path).map_err(io)?;
    entry.write_all(bytes).map_err(io)?;
    // The entry first: a reader that sees the new entry with the old tag finds a mismatch
    // and recompiles; it never runs unchecked bytes.
    let written = entry.commit_open(0o444).map_err(io)?;
    let text = tag(&settled(&written).map_err(io)?);
    let mut sidecar = AtomicFile::create(&sidecar_path(path)).map_err(io)?;
    sidecar.write_all(text.as_bytes()).map_err(io)?;
    sidecar.commit(0o600).map_err(io)?;
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
