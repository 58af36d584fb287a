//! Why a compile cache entry may be run: native code is only loaded from a directory only
//! its user can write, with a tag only a holder of the cache key can make.
//!
//! - Directories: owned by the user running wasmoci (root on a node) and not writable by
//!   group or others; the ones wasmoci creates are 0700. Anything else is refused, not
//!   repaired.
//! - The key: 32 random bytes in `<cache dir>.key`, beside the cache and not in it (a pod's
//!   hostPath into the cache cannot read or replace it), owned by that user, 0600.
//! - The entry: written once, read-only (0444 in its 0700 directory), never rewritten in
//!   place; a new compile replaces it by rename.
//! - The tag: HMAC-SHA256 under the key of (engine compatibility key, wasm digest, kind,
//!   and the identity of the file the entry was written as: device, inode, size, mtime and
//!   ctime to the nanosecond). It is made when the entry is written, from the open file
//!   that was renamed into place, and checked against `fstat` of the file opened to load
//!   it: checking costs no read of the entry, so a warm start maps the compiled code and
//!   goes (`wasmtime run --allow-precompiled` trusts its `.cwasm` the same way, without a
//!   tag). Copying an entry and its tag over another's, planting one, truncating one or
//!   writing into one (a write sets mtime and ctime, which no unprivileged caller can set
//!   back) gives a tag that does not verify: the entry is compiled again, never run.
//!   Not caught: bit rot under an unchanged inode, and a writer with this user's rights
//!   (root, on a node) who changes the file within the clock tick of the check, which is
//!   the same power as replacing wasmoci itself.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmoci_spec::{Digest, WasmKind};

use crate::Error;

const KEY_LEN: usize = 32;
const DOMAIN: &[u8] = b"wasmoci compile cache entry v2\0";

/// The cache key of a cache directory.
#[derive(Clone)]
pub(super) struct CacheKey([u8; KEY_LEN]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(…)")
    }
}

fn unsafe_cache(path: &Path, reason: String) -> Error {
    Error::UnsafeCache {
        path: path.to_owned(),
        reason,
    }
}

/// Refuses `meta` of `path` unless this user owns it and, with `private_file`, only it
/// can read it; a directory must not be writable by group or others.
fn check_owner(path: &Path, meta: &fs::Metadata, private_file: bool) -> Result<(), Error> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_cache(
            path,
            format!(
                "it belongs to uid {}, not to uid {me} that runs wasmoci",
                meta.uid()
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    let (mask, what) = if private_file {
        (0o077, "readable or writable by group or others")
    } else {
        (0o022, "writable by group or others")
    };
    if mode & mask != 0 {
        return Err(unsafe_cache(
            path,
            format!("it is {what} (mode {mode:04o}): `chmod go-rwx` it"),
        ));
    }
    Ok(())
}

/// Creates `dir` (and what is missing above it) 0700, or checks the one that is there.
pub(super) fn trusted_dir(dir: &Path) -> Result<(), Error> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => check_owner(dir, &meta, false),
        Ok(_) => Err(unsafe_cache(dir, "it is not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::Io {
                action: "create",
                path: dir.to_owned(),
                source,
            }),
        Err(source) => Err(Error::Io {
            action: "read",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Where the key of the cache in `dir` is kept: beside it, `<dir>.key`.
pub(super) fn key_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push(".key");
    dir.with_file_name(name)
}

impl CacheKey {
    /// The key at `path`, made (from `/dev/urandom`, 0600) when there is none. Two
    /// processes making it at once agree: it is linked into place only if absent.
    pub(super) fn load_or_create(path: &Path) -> Result<CacheKey, Error> {
        let io = |action, source| Error::Io {
            action,
            path: path.to_owned(),
            source,
        };
        if let Some(key) = Self::read(path)? {
            return Ok(key);
        }
        let mut bytes = [0u8; KEY_LEN];
        fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut bytes))
            .map_err(|e| io("read random bytes for", e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        // A name no other thread or process stages under (the new key's own bytes in it).
        let staged = dir.join(format!(".key.{}.{}", std::process::id(), hex(&bytes[..8])));
        let linked = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged)
            .and_then(|mut file| {
                file.write_all(&bytes)?;
                file.sync_all()
            })
            .and_then(|()| fs::hard_link(&staged, path));
        // Whatever happened, the staged name goes: no half-written key is left behind.
        let _ = fs::remove_file(&staged);
        match linked {
            Ok(()) => Ok(CacheKey(bytes)),
            // Another made it first: theirs is the key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::read(path)?
                .ok_or_else(|| unsafe_cache(path, "the key vanished while it was made".into())),
            Err(e) => Err(io("write", e)),
        }
    }

    fn read(path: &Path) -> Result<Option<CacheKey>, Error> {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if !meta.is_file() {
            return Err(unsafe_cache(path, "the key is not a regular file".into()));
        }
        check_owner(path, &meta, true)?;
        let bytes = fs::read(path).map_err(|source| Error::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| unsafe_cache(path, format!("the key is not {KEY_LEN} bytes")))?;
        Ok(Some(CacheKey(bytes)))
    }

    fn mac(&self, engine_key: &str, wasm: &Digest, entry: &EntryId) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        for part in [
            DOMAIN,
            engine_key.as_bytes(),
            b"\0",
            wasm.to_string().as_bytes(),
            b"\0",
            entry.kind.as_str().as_bytes(),
            b"\0",
        ] {
            mac.update(part);
        }
        for field in entry.stat {
            mac.update(&field.to_le_bytes());
        }
        mac
    }

    /// The tag of an entry: `hmac-sha256:<hex>`.
    pub(super) fn tag(&self, engine_key: &str, wasm: &Digest, entry: &EntryId) -> String {
        let tag = self.mac(engine_key, wasm, entry).finalize().into_bytes();
        format!("hmac-sha256:{}", hex(&tag))
    }

    /// Whether `tag` is the tag of that entry (compared in constant time).
    pub(super) fn verify(
        &self,
        engine_key: &str,
        wasm: &Digest,
        entry: &EntryId,
        tag: &str,
    ) -> bool {
        let Some(bytes) = tag.strip_prefix("hmac-sha256:").and_then(unhex) else {
            return false;
        };
        self.mac(engine_key, wasm, entry)
            .verify_slice(&bytes)
            .is_ok()
    }
}

/// What a tag binds an entry file to, besides its wasm and engine: its kind and the
/// identity of the file as `fstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EntryId {
    /// A component or a module.
    pub(super) kind: WasmKind,
    /// Device, inode, size, mtime (s, ns), ctime (s, ns).
    stat: [i64; 7],
}

impl EntryId {
    pub(super) fn new(kind: WasmKind, meta: &fs::Metadata) -> EntryId {
        // Bit patterns, not values: only equality matters.
        #[allow(
            clippy::cast_possible_wrap,
            reason = "bit patterns compared for equality"
        )]
        let stat = [
            meta.dev() as i64,
            meta.ino() as i64,
            meta.size() as i64,
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        ];
        EntryId { kind, stat }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_binds_the_entry_to_its_wasm_and_engine() {
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::load_or_create(&dir.path().join("compiled.key")).unwrap();
        let mode = fs::metadata(dir.path().join("compiled.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = CacheKey::load_or_create(&dir.path().join("compiled.key")).unwrap();
        assert_eq!(key.0, again.0);
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let file = dir.path().join("entry");
        fs::write(&file, b"entry").unwrap();
        let entry = EntryId::new(WasmKind::Component, &fs::metadata(&file).unwrap());
        let tag = key.tag("engine", &a, &entry);
        assert!(key.verify("engine", &a, &entry, &tag));
        assert!(!key.verify("engine", &b, &entry, &tag), "another wasm");
        assert!(!key.verify("other", &a, &entry, &tag), "another engine");
        let module = EntryId {
            kind: WasmKind::Module,
            ..entry
        };
        assert!(!key.verify("engine", &a, &module, &tag), "another kind");
        for field in 0..entry.stat.len() {
            let mut changed = entry;
            changed.stat[field] += 1;
            assert!(
                !key.verify("engine", &a, &changed, &tag),
                "stat field {field}"
            );
        }
        let other = CacheKey([7; KEY_LEN]);
        assert!(!other.verify("engine", &a, &entry, &tag), "another key");
        assert!(!key.verify("engine", &a, &entry, "0".repeat(64).as_str()));
    }

    #[test]
    fn loose_directories_and_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("a/b/compiled");
        trusted_dir(&cache).unwrap();
        for d in [dir.path().join("a"), cache.clone()] {
            assert_eq!(
                fs::metadata(&d).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o775)).unwrap();
        let err = trusted_dir(&cache).unwrap_err().to_string();
        assert!(
            err.contains("writable by group or others (mode 0775)"),
            "{err}"
        );
        let key = dir.path().join("k.key");
        fs::write(&key, [0u8; KEY_LEN]).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = CacheKey::load_or_create(&key).unwrap_err().to_string();
        assert!(
            err.contains("readable or writable by group or others"),
            "{err}"
        );
    }
}
