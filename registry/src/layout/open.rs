//! Opening a blob to send it elsewhere (a push, a copy to a registry): only a regular
//! file in the layout's own `blobs/sha256`, reached through no symlink, of the size and
//! digest its descriptor says, checked before a byte leaves.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use wasmoci_spec::{Descriptor, HashingReader};

use super::Layout;
use crate::error::{Error, IoContext, Result};

impl Layout {
    /// Opens the blob `descriptor` names to send it: beneath the layout's root through no
    /// symlink (`openat2`; `O_NONBLOCK`, so a FIFO cannot hang us), a regular file of the
    /// descriptor's size whose content hashes to its digest (read once here, before
    /// anything is sent; not for wasmoci's own store, [`Layout::own_store`]). The file is
    /// at its start.
    pub fn open_blob(&self, descriptor: &Descriptor) -> Result<File> {
        let path = self.blob_path(&descriptor.digest);
        let refused = |reason: String| Error::BlobRefused {
            path: path.clone(),
            reason,
        };
        // Resolved from the layout's root, beneath it, through no symlink at all: neither
        // the blob nor `blobs` or `sha256` may lead elsewhere, not even for a moment.
        let root = File::open(&self.root).io("open", &self.root)?;
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        let relative = format!("blobs/sha256/{}", descriptor.digest.hex());
        let mut file = match openat2(&root, relative.as_str(), how) {
            Ok(fd) => File::from(fd),
            Err(Errno::ELOOP | Errno::EXDEV) => {
                return Err(refused(
                    "it, or a directory on its way in the layout, is a symbolic link".into(),
                ));
            }
            Err(Errno::ENOENT) => {
                return Err(Error::BlobMissing {
                    digest: descriptor.digest,
                    path,
                });
            }
            Err(e) => return Err(io::Error::from(e)).io("open", &path),
        };
        let meta = file.metadata().io("read", &path)?;
        if !meta.is_file() {
            return Err(refused("it is not a regular file".into()));
        }
        if meta.len() != descriptor.size {
            return Err(refused(format!(
                "it is {} bytes, and the manifest says {}",
                meta.len(),
                descriptor.size
            )));
        }
        if self.own {
            // Hashed when it was written (`own_store`).
            return Ok(file);
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
