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
        let file = self.temp.as_file();
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        self.temp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
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
    fn an_abandoned_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
