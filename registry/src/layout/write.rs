//! Writing into a layout: `store` (one transaction: blobs, then the index, rolled back on
//! failure) and `put_blob_from` (a blob streamed in, hashed on the way).

use std::fs;
use std::io::{self, Read, Write};
use std::sync::mpsc;

use wasmoci_spec::annotations::REF_NAME;
use wasmoci_spec::{Blob, Descriptor, Digest, DigestWriter, ImageManifest, media_types};

use super::{INDEX_FILE, Layout, check_tag, name_of, publish_mode};
use crate::error::{Error, IoContext, Result};

impl Layout {
    /// Stores an artifact and tags it, as one transaction: the blobs (layers, config,
    /// manifest) are written first, then the index is replaced. If anything fails, the
    /// blobs this call added are removed again. `blobs` holds content the manifest names
    /// (config and layers), each a [`Blob`] whose digest was computed over its bytes, so it
    /// is not hashed again here; content not given there must already be in the layout (a pull streams them in
    /// first with [`put_blob_from`](Self::put_blob_from)). Untagged, a manifest the index
    /// already lists is left as it is; tagged, it replaces the entry with that tag and the
    /// untagged entry of the same manifest. Ends the lease a pull holds.
    pub fn store(
        &self,
        manifest_bytes: &[u8],
        blobs: &[Blob<'_>],
        tag: Option<&str>,
    ) -> Result<Descriptor> {
        let manifest_blob = Blob::hash(manifest_bytes);
        let mut manifest = Descriptor::for_blob(media_types::OCI_MANIFEST, &manifest_blob);
        let result = self.store_locked(manifest_blob, blobs, tag, &mut manifest);
        self.release_lease();
        result.map(|()| manifest)
    }

    fn store_locked(
        &self,
        manifest_blob: Blob<'_>,
        blobs: &[Blob<'_>],
        tag: Option<&str>,
        manifest: &mut Descriptor,
    ) -> Result<()> {
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        fs::create_dir_all(&self.root).io("create", &self.root)?;
        let _lock = self.lock()?;
        let fresh = self.init_if_empty()?;
        let mut index = self.index()?;
        let mut added = Vec::new();
        let result = (|| {
            for blob in blobs.iter().chain([&manifest_blob]) {
                if self.put_blob(blob)? {
                    added.push(self.blob_path(&blob.digest()));
                }
            }
            // A concurrent `gc` cannot have removed what a pull streamed in (the lease), but
            // the index must never name a config or wasm layer that is not there (layers
            // that are not wasm may stay at the registry: nothing here runs them).
            if let Ok(parsed) = ImageManifest::from_json(manifest_blob.bytes()) {
                let needed = parsed
                    .layers
                    .iter()
                    .filter(|l| media_types::is_readable_wasm_layer(&l.media_type));
                for d in std::iter::once(&parsed.config).chain(needed) {
                    if !self.blob_path(&d.digest).is_file() {
                        return Err(Error::BlobMissing {
                            digest: d.digest,
                            path: self.blob_path(&d.digest),
                        });
                    }
                }
            }
            match tag {
                Some(tag) => {
                    // `NAME@DIGEST` (a pull by digest) adds nothing when the manifest has
                    // that name already; `NAME:TAG` replaces a `NAME@DIGEST` entry.
                    let name = name_of(tag);
                    let by_digest = format!("{name}@{}", manifest.digest);
                    let named = |d: &Descriptor| {
                        d.digest == manifest.digest
                            && d.annotation(REF_NAME).is_some_and(|t| name_of(t) == name)
                    };
                    if tag == by_digest && index.manifests.iter().any(named) {
                        return Ok(());
                    }
                    index.manifests.retain(|d| match d.annotation(REF_NAME) {
                        Some(t) => t != tag && !(d.digest == manifest.digest && t == by_digest),
                        None => d.digest != manifest.digest,
                    });
                    manifest
                        .annotations
                        .get_or_insert_default()
                        .insert(REF_NAME.to_owned(), tag.to_owned());
                }
                None if index.manifests.iter().any(|d| d.digest == manifest.digest) => {
                    return Ok(());
                }
                None => {}
            }
            index.manifests.push(manifest.clone());
            self.write_atomically(&self.root.join(INDEX_FILE), &index.to_json())
        })();
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                for path in added {
                    let _ = fs::remove_file(path);
                }
                for path in &fresh {
                    let _ = fs::remove_file(path);
                }
                if !fresh.is_empty() {
                    // A layout this call created goes away whole, so the directory can be
                    // used again (only empty directories are removed).
                    let _ = fs::remove_dir(self.root.join("blobs").join("sha256"));
                    let _ = fs::remove_dir(self.root.join("blobs"));
                }
                Err(e)
            }
        }
    }

    /// Streams `reader` into the layout as a blob, hashing as it goes. With `expected`,
    /// the content must match its digest and size or nothing is written. Returns the
    /// descriptor's digest and size, and whether the blob was new.
    pub fn put_blob_from(
        &self,
        reader: impl Read,
        expected: Option<&Descriptor>,
    ) -> Result<(Digest, u64, bool)> {
        self.hold_lease()?;
        let dir = self.root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).io("create", &dir)?;
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .io("create a temporary file in", &dir)?;
        let mut temp = temp;
        let (digest, size) = copy_hashing(reader, temp.as_file_mut()).io("write", &dir)?;
        if let Some(expected) = expected
            && (expected.digest != digest || expected.size != size)
        {
            return Err(Error::ContentMismatch {
                expected: expected.digest,
                actual: digest,
                size,
            });
        }
        let path = self.blob_path(&digest);
        if path.is_file() {
            // Content-addressed: a file with this name has this content (reads check).
            return Ok((digest, size, false));
        }
        publish_mode(temp.as_file()).io("set permissions on", temp.path())?;
        temp.as_file().sync_all().io("sync", temp.path())?;
        temp.persist(&path)
            .map_err(|e| e.error)
            .io("rename a blob into", &path)?;
        Ok((digest, size, true))
    }

    /// Writes in-memory content under its digest; returns whether it was new.
    fn put_blob(&self, blob: &Blob<'_>) -> Result<bool> {
        let path = self.blob_path(&blob.digest());
        if path.is_file() {
            return Ok(false);
        }
        let dir = path.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).io("create", dir)?;
        self.write_atomically(&path, blob.bytes())?;
        Ok(true)
    }
}

/// Copies `reader` into `file` and hashes what it copies. SHA-256 is half a pull's CPU: it
/// runs on a second thread, beside the read and the write, over 1 MiB chunks handed to it
/// and handed back (four in flight at most, so memory stays a few MiB whatever the blob).
fn copy_hashing(mut reader: impl Read, file: &mut fs::File) -> io::Result<(Digest, u64)> {
    const CHUNK: usize = 1 << 20;
    // Written-back as it comes, so that the fsync before the rename finds little left to
    // write (measured on a 256 MiB pull here: the final fsync took 0.12 s of 0.44 s).
    const WRITEBACK: u64 = 8 << 20;
    std::thread::scope(|scope| {
        let (full, to_hash) = mpsc::sync_channel::<Vec<u8>>(4);
        let (empty, hashed_chunks) = mpsc::channel::<Vec<u8>>();
        let hasher = scope.spawn(move || {
            let mut digest = DigestWriter::new(io::sink());
            for chunk in to_hash {
                // A sink takes every byte.
                let _ = digest.write_all(&chunk);
                let _ = empty.send(chunk);
            }
            let size = digest.written();
            (digest.finish().1, size)
        });
        let (mut written, mut flushed) = (0u64, 0u64);
        let copied = (|| -> io::Result<()> {
            loop {
                let mut chunk = hashed_chunks.try_recv().unwrap_or_default();
                chunk.resize(CHUNK, 0);
                let mut filled = 0;
                while filled < CHUNK {
                    match reader.read(&mut chunk[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if filled == 0 {
                    return Ok(());
                }
                chunk.truncate(filled);
                file.write_all(&chunk)?;
                written += filled as u64;
                if written - flushed >= WRITEBACK {
                    start_writeback(file, flushed, written - flushed);
                    flushed = written;
                }
                if full.send(chunk).is_err() {
                    return Err(io::Error::other("the hashing thread stopped"));
                }
                if filled < CHUNK {
                    return Ok(());
                }
            }
        })();
        drop(full);
        let hashed = hasher
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        copied.map(|()| hashed)
    })
}

/// Starts writing `len` bytes of `file` from `offset` back to disk, without waiting (an
/// fsync later waits for it); a hint, so a failure is ignored.
fn start_writeback(file: &fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range(2) on an open fd we own, with in-range values; it reads no
    // memory of ours.
    #[allow(unsafe_code, reason = "sync_file_range(2) has no wrapper in nix")]
    unsafe {
        nix::libc::sync_file_range(
            file.as_raw_fd(),
            offset,
            len,
            nix::libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}
