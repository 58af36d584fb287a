//! An OCI image layout directory: reading, storing (atomic, rolled back on failure), and
//! the store's upkeep (`list`, `remove`, `gc` in the modules below).
//!
//! Locks. `index.json` is only replaced under an exclusive `flock` of the layout directory
//! (`store`, `remove`, `gc`); `list` takes it shared. A pull writes its blobs *before* it
//! stores the manifest, so between its first blob and its index update those blobs are
//! reached by nothing: a pull therefore holds a *lease*, a shared `flock` of the
//! `oci-layout` file, from `create` or its first `put_blob_from` until `store` (or until
//! the `Layout` value is dropped), and `gc` takes that lock exclusively before the index
//! lock, so it waits for pulls in flight and no pull starts while it runs. Every path takes
//! the lease before the index lock, never the other way round.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmoci_spec::annotations::REF_NAME;
use wasmoci_spec::{Descriptor, Digest, ImageIndex, ImageManifest, media_types};

use crate::error::{Error, IoContext, Result};

mod gc;
mod list;
mod open;
mod sources;
mod verify;
mod write;

pub use gc::GcReport;
pub use list::{ArtifactKind, Listing, Removal};
pub use verify::{Damage, Garbage, VerifyReport};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    /// The shared lock on `oci-layout` a pull holds while its blobs are not yet in the
    /// index (see the module docs); clones share it.
    lease: Arc<Mutex<Option<File>>>,
    /// Whether it keeps `blob-sources.json` ([`Layout::remembering_sources`]).
    sources: bool,
    /// Whether its blobs were all checked as they were written ([`Layout::own_store`]).
    own: bool,
}

/// Which manifest of a layout: `oci:DIR:TAG`, `oci:DIR@sha256:…` or `oci:DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutRef {
    /// The manifest whose `org.opencontainers.image.ref.name` is this tag.
    Tag(String),
    /// The manifest with this digest.
    Digest(Digest),
    /// The manifest with this digest stored under this name (`NAME@sha256:…`): an entry
    /// tagged `NAME:…`, `NAME@sha256:…` or `NAME` (an untagged entry has no name).
    Named {
        /// The name (`hello`, `ghcr.io/acme/app`).
        name: String,
        /// The manifest digest.
        digest: Digest,
    },
    /// The layout's only manifest.
    Only,
}

impl LayoutRef {
    /// Whether the index entry `d` is what this reference names.
    pub(crate) fn matches(&self, d: &Descriptor) -> bool {
        match self {
            LayoutRef::Tag(tag) => d.annotation(REF_NAME) == Some(tag.as_str()),
            LayoutRef::Digest(digest) => d.digest == *digest,
            LayoutRef::Named { name, digest } => {
                d.digest == *digest && d.annotation(REF_NAME).is_some_and(|t| name_of(t) == name)
            }
            LayoutRef::Only => true,
        }
    }
}

/// The name part of a tag: `ghcr.io/acme/app` of `ghcr.io/acme/app:1.0` and of
/// `ghcr.io/acme/app@sha256:…`, `hello` of `hello:1.0.0`; a tag with no `:TAG` is all name.
pub fn name_of(tag: &str) -> &str {
    if let Some((name, _)) = tag.split_once('@') {
        return name;
    }
    match tag.rsplit_once(':') {
        Some((name, version)) if !version.contains('/') => name,
        _ => tag,
    }
}

/// A manifest found in a layout, with its exact bytes (digest-checked).
#[derive(Debug, Clone)]
pub struct StoredArtifact {
    /// The manifest's descriptor, as the index lists it.
    pub descriptor: Descriptor,
    /// Its `org.opencontainers.image.ref.name`, if tagged.
    pub tag: Option<String>,
    /// The manifest bytes.
    pub manifest_bytes: Vec<u8>,
}

impl StoredArtifact {
    /// The parsed manifest.
    pub fn manifest(&self) -> Result<ImageManifest> {
        ImageManifest::from_json(&self.manifest_bytes).map_err(|e| Error::ManifestJson {
            digest: self.descriptor.digest,
            reason: e.to_string(),
        })
    }
}

impl Layout {
    /// The layout at `root`, which need not exist yet: nothing is read or written until
    /// it is used.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Layout {
            root: root.into(),
            lease: Arc::default(),
            sources: false,
            own: false,
        }
    }

    /// Opens an existing layout, checking its `oci-layout` file.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let layout = Layout::at(root);
        layout.check()?;
        Ok(layout)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the directory is a layout yet (has its `oci-layout` file).
    pub fn exists(&self) -> bool {
        self.root.join(OCI_LAYOUT_FILE).is_file()
    }

    /// Where the blob with `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    fn check(&self) -> Result<()> {
        let path = self.root.join(OCI_LAYOUT_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let reason = if self.root.is_dir() {
                    format!("`{OCI_LAYOUT_FILE}` is missing")
                } else {
                    "no such directory".to_owned()
                };
                return Err(Error::NotALayout {
                    path: self.root.clone(),
                    reason,
                });
            }
            Err(e) => return Err(e).io("read", path),
        };
        let version = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_owned));
        match version.as_deref() {
            Some(v) if v.starts_with("1.") => Ok(()),
            Some(v) => Err(Error::NotALayout {
                path: self.root.clone(),
                reason: format!("unsupported `imageLayoutVersion` `{v}`"),
            }),
            None => Err(Error::NotALayout {
                path: self.root.clone(),
                reason: format!("`{OCI_LAYOUT_FILE}` has no `imageLayoutVersion`"),
            }),
        }
    }

    /// Makes the directory a layout if it is not one yet (creating it, with `oci-layout`,
    /// when it is missing or empty); refuses a non-empty directory that is not a layout.
    ///
    /// This starts a write: it holds the layout's lease (see the module docs), so that a
    /// concurrent `gc` waits until [`store`](Self::store) puts what follows in the index.
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.root).io("create", &self.root)?;
        {
            let _lock = self.lock()?;
            self.init_if_empty()?;
        }
        self.hold_lease()
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        self.check()?;
        let path = self.root.join(INDEX_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            // Some writers create `oci-layout` first; an index that is not there yet is empty.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ImageIndex::default()),
            Err(e) => return Err(e).io("read", path),
        };
        ImageIndex::from_json(&bytes).map_err(|e| Error::IndexJson {
            path,
            reason: match e {
                wasmoci_spec::Error::Json { reason, .. } => reason,
                other => other.to_string(),
            },
        })
    }

    /// The tags in the index, in index order.
    pub fn tags(&self) -> Result<Vec<String>> {
        Ok(tags_of(&self.index()?))
    }

    /// Finds a manifest and reads its bytes, checking them against the digest.
    pub fn resolve(&self, reference: &LayoutRef) -> Result<StoredArtifact> {
        let index = self.index()?;
        let found = match reference {
            LayoutRef::Tag(tag) => index
                .manifests
                .iter()
                .rev()
                .find(|d| d.annotation(REF_NAME) == Some(tag.as_str()))
                .cloned()
                .ok_or_else(|| Error::TagNotFound {
                    tag: tag.clone(),
                    layout: self.root.clone(),
                    available: tags_of(&index),
                })?,
            LayoutRef::Digest(digest) => match index.manifests.iter().find(|d| d.digest == *digest)
            {
                Some(d) => d.clone(),
                None => {
                    // Not listed, but a manifest blob may still be there.
                    let bytes = self.read_blob(digest)?;
                    Descriptor::for_bytes(media_types::OCI_MANIFEST, &bytes)
                }
            },
            LayoutRef::Named { name, digest } => {
                // A tagged entry of that name first, else an untagged one.
                let found = index
                    .manifests
                    .iter()
                    .rev()
                    .filter(|d| reference.matches(d));
                match found.max_by_key(|d| d.annotation(REF_NAME).is_some()) {
                    Some(d) => d.clone(),
                    None => return Err(self.not_at_digest(&index.manifests, name, digest)),
                }
            }
            LayoutRef::Only => match index.manifests.as_slice() {
                [only] => only.clone(),
                [] => {
                    return Err(Error::Empty {
                        layout: self.root.clone(),
                    });
                }
                many => {
                    return Err(Error::Ambiguous {
                        layout: self.root.clone(),
                        count: many.len(),
                        tags: tags_of(&index),
                    });
                }
            },
        };
        let manifest_bytes = self.read_blob(&found.digest)?;
        Ok(StoredArtifact {
            tag: found.annotation(REF_NAME).map(str::to_owned),
            descriptor: found,
            manifest_bytes,
        })
    }

    /// Why nothing answers `NAME@DIGEST`: the digest is not listed, or only under other
    /// names.
    pub(crate) fn not_at_digest(
        &self,
        entries: &[Descriptor],
        name: &str,
        digest: &Digest,
    ) -> Error {
        let names: Vec<String> = entries
            .iter()
            .filter(|d| d.digest == *digest)
            .filter_map(|d| d.annotation(REF_NAME).map(str::to_owned))
            .collect();
        if names.is_empty() {
            Error::ManifestNotFound {
                digest: *digest,
                layout: self.root.clone(),
            }
        } else {
            Error::OtherNames {
                name: name.to_owned(),
                digest: *digest,
                layout: self.root.clone(),
                names,
            }
        }
    }

    /// Reads a blob, checking that its content hashes to its name.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let bytes = self.read_blob_as_stored(digest)?;
        let path = self.blob_path(digest);
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::BlobCorrupt {
                path,
                expected: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Reads a blob as it is on disk, without checking its digest: for `validate`, which
    /// reports a blob that does not match its descriptor instead of failing on it.
    /// Only a regular file of at most 1 GiB is read (a layout's blob
    /// may be a symlink to a device or a fifo: never read, never waited on).
    pub fn read_blob_as_stored(&self, digest: &Digest) -> Result<Vec<u8>> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.blob_path(digest);
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BlobMissing {
                    digest: *digest,
                    path,
                });
            }
            Err(e) => return Err(e).io("read", path),
        };
        let meta = file.metadata().io("read", &path)?;
        let unreadable = |reason: String| Error::BlobUnreadable {
            path: path.clone(),
            reason,
        };
        if !meta.is_file() {
            return Err(unreadable("it is not a regular file".into()));
        }
        if meta.len() > MAX_BLOB_READ {
            return Err(unreadable(format!(
                "it is {} bytes, more than the {MAX_BLOB_READ} a blob read whole may have",
                meta.len()
            )));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_BLOB_READ)
            .read_to_end(&mut bytes)
            .io("read", &path)?;
        Ok(bytes)
    }

    /// The index lock, exclusive: held while `index.json` is read and replaced.
    fn lock(&self) -> Result<File> {
        let dir = File::open(&self.root).io("open", &self.root)?;
        dir.lock().io("lock", &self.root)?;
        Ok(dir)
    }

    /// The index lock, shared: readers that must see the index and its blobs together.
    fn lock_shared(&self) -> Result<File> {
        let dir = File::open(&self.root).io("open", &self.root)?;
        dir.lock_shared().io("lock", &self.root)?;
        Ok(dir)
    }

    /// Takes the lease (a shared lock on `oci-layout`) unless this value holds it already.
    /// A directory that is not a layout yet has nothing to collect: no lease then.
    fn hold_lease(&self) -> Result<()> {
        let mut lease = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        if lease.is_some() || !self.exists() {
            return Ok(());
        }
        let path = self.root.join(OCI_LAYOUT_FILE);
        let file = File::open(&path).io("open", &path)?;
        file.lock_shared().io("lock", &path)?;
        *lease = Some(file);
        Ok(())
    }

    /// A handle on the same layout with a lease of its own: for writers in several
    /// threads, whose stores would otherwise release each other's lease on blobs not yet
    /// indexed.
    pub fn with_own_lease(&self) -> Layout {
        Layout {
            lease: Arc::default(),
            ..self.clone()
        }
    }

    fn release_lease(&self) {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Writes `oci-layout` (and an empty index) into an empty directory. Returns the
    /// files it created.
    fn init_if_empty(&self) -> Result<Vec<PathBuf>> {
        let marker = self.root.join(OCI_LAYOUT_FILE);
        if marker.exists() {
            return Ok(Vec::new());
        }
        // A write killed while it made the layout leaves its temporary file: under the
        // lock, no one else is writing one now, so it goes.
        for leftover in leftovers(&self.root)? {
            let _ = fs::remove_file(leftover);
        }
        let mut entries = fs::read_dir(&self.root).io("read", &self.root)?;
        if entries.next().is_some() {
            return Err(Error::NotALayout {
                path: self.root.clone(),
                reason: format!(
                    "`{OCI_LAYOUT_FILE}` is missing and the directory is not empty; refusing to write into it"
                ),
            });
        }
        self.write_atomically(&marker, OCI_LAYOUT_CONTENT)?;
        Ok(vec![marker])
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        wasmoci_fs::write_atomic(path, bytes, PUBLISHED_MODE).io("write", path)
    }
}

/// The temporary files of whole-file writes (`.wasmoci-…`) and blob writes (`.tmp-…`)
/// at the top of `root`.
pub(crate) fn leftovers(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(root).io("read", root)? {
        let entry = entry.io("read", root)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with(".wasmoci-") || name.starts_with(".tmp-"))
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// The largest blob read whole into memory (a wasm layer is at most 1 GiB).
pub(crate) const MAX_BLOB_READ: u64 = 1 << 30;

/// Layout files are readable by everyone (containerd, skopeo or a CI user may read them);
/// temporary files start out private.
const PUBLISHED_MODE: u32 = 0o644;

fn publish_mode(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(PUBLISHED_MODE))
}

fn tags_of(index: &ImageIndex) -> Vec<String> {
    index
        .manifests
        .iter()
        .filter_map(|d| d.annotation(REF_NAME).map(str::to_owned))
        .collect()
}

/// `org.opencontainers.image.ref.name` grammar (image-spec `annotations.md`): components
/// of alphanumerics separated by `-._:@/+`, and at most 512 characters here.
fn check_tag(tag: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidTag {
            tag: tag.to_owned(),
            reason,
        })
    };
    if tag.is_empty() || tag.len() > 512 {
        return invalid("must be 1 to 512 characters");
    }
    let separator = |c: char| "-._:@/+".contains(c);
    if !tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || separator(c))
    {
        return invalid("only letters, digits and `-._:@/+` are allowed");
    }
    if tag.starts_with(separator) || tag.ends_with(separator) {
        return invalid("must start and end with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
