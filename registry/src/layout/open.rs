//! Opening a blob to send it elsewhere (a push, a copy to a registry): only a regular
//! file in the layout's own `blobs/sha256`, never through a symlink, of the size and
//! digest its descriptor says, checked before a byte leaves.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::OFlag;
use wasmoci_spec::{Descriptor, HashingReader};

use super::Layout;
use crate::error::{Error, IoContext, Result};

impl Layout {
    /// Opens the blob `descriptor` names to send it: not through a symlink
    /// (`O_NOFOLLOW`; `O_NONBLOCK`, so a FIFO cannot hang us), a regular file whose
    /// directory is this layout's `blobs/sha256`, of the descriptor's size, whose content
    /// hashes to its digest (read once here, before anything is sent). The file is at
    /// its start.
    pub fn open_blob(&self, descriptor: &Descriptor) -> Result<File> {
        let path = self.blob_path(&descriptor.digest);
        let refused = |reason: String| Error::BlobRefused {
            path: path.clone(),
            reason,
        };
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(refused("it is a symbolic link".into()));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BlobMissing {
                    digest: descriptor.digest,
                    path,
                });
            }
            Err(e) => return Err(e).io("open", &path),
        };
        let meta = file.metadata().io("read", &path)?;
        if !meta.is_file() {
            return Err(refused("it is not a regular file".into()));
        }
        // Its directory must be the layout's own: not a `blobs/sha256` symlinked elsewhere.
        let inside = |p: &std::path::Path| fs::canonicalize(p).ok();
        let dir = path.parent().and_then(inside);
        let own = inside(&self.root).map(|root| root.join("blobs").join("sha256"));
        if dir.is_none() || dir != own {
            return Err(refused(
                "its directory is not inside the layout (a symbolic link leads elsewhere)".into(),
            ));
        }
        if meta.len() != descriptor.size {
            return Err(refused(format!(
                "it is {} bytes, and the manifest says {}",
                meta.len(),
                descriptor.size
            )));
        }
        let mut hashing = HashingReader::new(&mut file);
        io::copy(&mut hashing, &mut io::sink()).io("read", &path)?;
        let (actual, _) = hashing.finish();
        if actual != descriptor.digest {
            return Err(Error::BlobCorrupt {
                path,
                expected: descriptor.digest,
                actual,
            });
        }
        file.seek(SeekFrom::Start(0)).io("read", &path)?;
        Ok(file)
    }
}
