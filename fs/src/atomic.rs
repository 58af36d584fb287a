//! Whole-file writes that never leave a part behind.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Writes `bytes` to `path` with permissions `mode`: a temporary file in the same
/// directory (which must exist), fsync, rename. Readers see the old file or the
/// new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit(mode)
}

/// A file being written: a temporary file beside `path` that replaces `path` only on
/// [`commit`](Self::commit). Dropped without a commit, it leaves nothing behind. The
/// temporary file is private (0600) until the commit gives it its mode, so secrets never
/// sit in a readable file.
#[derive(Debug)]
pub struct AtomicFile {
    temp: NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts a write of `path`; its directory must exist.
    pub fn create(path: &Path) -> io::Result<Self> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = NamedTempFile::with_prefix_in(".wasmoci-", dir)?;
        Ok(Self {
            temp,
            path: path.to_owned(),
        })
    }

    /// The temporary file, for reading back what was written.
    pub fn as_file(&self) -> &File {
        self.temp.as_file()
    }

    /// The path this write will replace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets `mode`, syncs and renames the temporary file over the target.
    pub fn commit(self, mode: u32) -> io::Result<()> {
        self.commit_open(mode).map(drop)
    }

    /// [`commit`](Self::commit), keeping the file open: what was renamed into place, for
    /// a caller that needs its final metadata (a rename changes its `ctime`).
    pub fn commit_open(self, mode: u32) -> io::Result<File> {
        let file = self.temp.as_file();
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        self.temp.persist(&self.path).map_err(|e| e.error)
    }

    /// [`commit`](Self::commit), the new file taking `original`'s (the file it
    /// replaces, open) owner, group, mode and extended attributes (SELinux label, ACLs,
    /// capabilities): a config that was `0600 root:root` stays so. When one cannot be
    /// kept (not allowed to give the file that owner, say), nothing is replaced.
    pub fn commit_like(self, original: &File) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = original.metadata()?;
        let file = self.temp.as_file();
        let mine = file.metadata()?;
        if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
            std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))?;
        }
        copy_xattrs(original, file)?;
        // After the owner: `chown` clears set-id bits.
        self.commit(meta.mode() & 0o7777)
    }
}

/// Copies every extended attribute of `from` to `to`.
fn copy_xattrs(from: &File, to: &File) -> io::Result<()> {
    use rustix::fs::{XattrFlags, fgetxattr, flistxattr, flistxattr_query, fsetxattr};
    let unsupported = |e: &rustix::io::Errno| *e == rustix::io::Errno::NOTSUP;
    let len = match flistxattr_query(from) {
        Ok(len) => len,
        Err(e) if unsupported(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; len];
    let len = flistxattr(from, &mut names[..])?;
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::ffi::CStr::from_bytes_with_nul(&[name, &[0]].concat())
            .map_err(io::Error::other)?
            .to_owned();
        let size = rustix::fs::fgetxattr_query(from, &name)?;
        let mut value = vec![0u8; size];
        let size = fgetxattr(from, &name, &mut value[..])?;
        fsetxattr(to, &name, &value[..size], XattrFlags::empty()).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "failed to keep the extended attribute `{}`: {e}",
                    name.to_string_lossy()
                ),
            )
        })?;
    }
    Ok(())
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_sets_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        assert!(write_atomic(&dir.path().join("missing/file"), b"x", 0o600).is_err());
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_replacement_keeps_the_owner_mode_and_extended_attributes() {
        use std::os::unix::fs::MetadataExt;
        // On the disk the tests build on (a `tmpfs` may lack user attributes).
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
        fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(&base).unwrap();
        let path = dir.path().join("config.toml");
        write_atomic(&path, b"password = 1", 0o600).unwrap();
        let root = fs::metadata(&path).unwrap().uid() == 0;
        if root {
            std::os::unix::fs::chown(&path, Some(1234), Some(5678)).unwrap();
        }
        let original = File::open(&path).unwrap();
        rustix::fs::fsetxattr(
            &original,
            "user.wasmoci",
            b"kept",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"password = 2").unwrap();
        file.commit_like(&original).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"password = 2");
        assert_eq!(meta.mode() & 0o7777, 0o600);
        if root {
            assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
        }
        let mut value = [0u8; 16];
        let n = rustix::fs::getxattr(&path, "user.wasmoci", &mut value[..]).unwrap();
        assert_eq!(&value[..n], b"kept");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_abandoned_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
