//! `store verify` (`fsck`): every blob re-hashed, every tag followed to its manifest,
//! config and wasm layers; damage (what a reader would trip on) reported apart from
//! garbage (what `gc` removes).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;

use wasmoci_spec::annotations::REF_NAME;
use wasmoci_spec::{Digest, HashingReader, ImageIndex, ImageManifest, media_types};

use super::Layout;
use super::gc::DOCKER_MANIFEST_LIST;
use crate::error::{IoContext, Result};

/// Docker's image manifest, which an index written by another tool may name.
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Something a reader of the layout would trip on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// A blob whose content does not hash to its name.
    Corrupt {
        /// Its name.
        digest: Digest,
        /// What it hashes to.
        actual: Digest,
    },
    /// A blob a manifest or the index names that is not there.
    Missing {
        /// The blob.
        digest: Digest,
        /// Who names it: a tag, or a manifest's digest.
        by: String,
        /// `manifest`, `config`, `wasm layer`.
        what: &'static str,
    },
    /// A blob of another size than its descriptor says.
    WrongSize {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The file's.
        actual: u64,
        /// Who names it.
        by: String,
    },
    /// A manifest or index that does not parse.
    Unreadable {
        /// The blob (none: `index.json` itself).
        digest: Option<Digest>,
        /// Why.
        reason: String,
    },
    /// An index entry of a media type no reader here knows.
    UnknownMediaType {
        /// The manifest.
        digest: Digest,
        /// Its media type.
        media_type: String,
        /// Who names it.
        by: String,
    },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Corrupt { digest, actual } => {
                write!(f, "blob `{digest}` is corrupt: it hashes to `{actual}`")
            }
            Damage::Missing { digest, by, what } => {
                write!(f, "the {what} `{digest}` of `{by}` is missing")
            }
            Damage::WrongSize {
                digest,
                expected,
                actual,
                by,
            } => write!(
                f,
                "blob `{digest}` of `{by}` is {actual} bytes, not the {expected} its descriptor says"
            ),
            Damage::Unreadable {
                digest: Some(digest),
                reason,
            } => write!(f, "manifest `{digest}` does not parse: {reason}"),
            Damage::Unreadable {
                digest: None,
                reason,
            } => write!(f, "`index.json` does not parse: {reason}"),
            Damage::UnknownMediaType {
                digest,
                media_type,
                by,
            } => write!(
                f,
                "`{by}` names `{digest}` as `{media_type}`, a media type no reader here knows"
            ),
        }
    }
}

/// What is not damage but takes room: `gc` removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Garbage {
    /// A temporary file a killed write left (`.tmp-…`), with its size.
    Temporary(PathBuf, u64),
    /// A blob no tag reaches, with its size.
    Unreachable(Digest, u64),
}

/// What [`Layout::verify`] found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Blobs re-hashed, and their bytes.
    pub checked: (usize, u64),
    /// Tags followed.
    pub tags: usize,
    /// What a reader would trip on.
    pub damage: Vec<Damage>,
    /// What `gc` removes.
    pub garbage: Vec<Garbage>,
    /// Corrupt blobs removed (`repair`).
    pub removed: Vec<Digest>,
}

impl Layout {
    /// Re-hashes every blob, follows every index entry to its manifest, config and wasm
    /// layers (layers that are not wasm may stay at the registry: a pull leaves them),
    /// checks sizes and media types, and lists garbage apart. With `repair`, corrupt blobs
    /// are removed (a good blob never is: what hashes to its name stays). Holds the same
    /// locks as `gc`, so no writer is half-way through meanwhile; `on_wait` is called
    /// first when it has to wait.
    pub fn verify(&self, repair: bool, on_wait: impl FnOnce()) -> Result<VerifyReport> {
        if !self.exists() {
            // Nothing stored yet (no directory, or the empty one a first write that
            // failed leaves): sound.
            // (or only the temporary file of a write killed while it made the layout:
            // garbage, which the next write removes).
            let entries = fs::read_dir(&self.root).map_or(0, Iterator::count);
            let leftovers = super::leftovers(&self.root).unwrap_or_default();
            if entries == leftovers.len() {
                let mut report = VerifyReport::default();
                for path in leftovers {
                    let size = fs::metadata(&path).map_or(0, |m| m.len());
                    report.garbage.push(Garbage::Temporary(path, size));
                }
                return Ok(report);
            }
            self.check()?;
        }
        let _locks = self.exclusive(on_wait)?;
        let mut report = VerifyReport::default();
        let mut corrupt = BTreeSet::new();
        let mut present = BTreeSet::new();
        self.hash_every_blob(&mut report, &mut corrupt, &mut present)?;
        let index = match self.index() {
            Ok(index) => index,
            Err(e) => {
                report.damage.push(Damage::Unreadable {
                    digest: None,
                    reason: e.to_string(),
                });
                return Ok(report);
            }
        };
        report.tags = index.manifests.len();
        let mut walk = Walk {
            layout: self,
            present: &present,
            corrupt: &corrupt,
            reachable: BTreeSet::new(),
            report: &mut report,
        };
        for entry in &index.manifests {
            let by = entry
                .annotation(REF_NAME)
                .map_or_else(|| entry.digest.to_string(), str::to_owned);
            walk.follow(&entry.digest, &entry.media_type, entry.size, &by);
        }
        let reachable = walk.reachable;
        for (digest, size) in self.sizes(&present)? {
            if !reachable.contains(&digest) && !corrupt.contains(&digest) {
                report.garbage.push(Garbage::Unreachable(digest, size));
            }
        }
        if repair {
            for digest in &corrupt {
                let path = self.blob_path(digest);
                match fs::remove_file(&path) {
                    Ok(()) => report.removed.push(*digest),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).io("remove", path),
                }
            }
        }
        Ok(report)
    }

    /// Every file under `blobs/sha256`: temporary files are garbage, the others hashed.
    fn hash_every_blob(
        &self,
        report: &mut VerifyReport,
        corrupt: &mut BTreeSet<Digest>,
        present: &mut BTreeSet<Digest>,
    ) -> Result<()> {
        let dir = self.root.join("blobs").join("sha256");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).io("read", dir),
        };
        for entry in entries {
            let entry = entry.io("read", &dir)?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let metadata = match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).io("read", path),
            };
            if name.starts_with('.') {
                report
                    .garbage
                    .push(Garbage::Temporary(path, metadata.len()));
                continue;
            }
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            let file = File::open(&path).io("open", &path)?;
            let mut reader = HashingReader::new(file);
            io::copy(&mut reader, &mut io::sink()).io("read", &path)?;
            let (actual, size) = reader.finish();
            report.checked.0 += 1;
            report.checked.1 += size;
            present.insert(digest);
            if actual != digest {
                corrupt.insert(digest);
                report.damage.push(Damage::Corrupt { digest, actual });
            }
        }
        report
            .garbage
            .sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        Ok(())
    }

    fn sizes(&self, present: &BTreeSet<Digest>) -> Result<Vec<(Digest, u64)>> {
        present
            .iter()
            .map(|d| {
                let path = self.blob_path(d);
                Ok((*d, fs::metadata(&path).io("read", &path)?.len()))
            })
            .collect()
    }
}

/// One walk from the index: what is there, what is corrupt, what was reached.
struct Walk<'a> {
    layout: &'a Layout,
    present: &'a BTreeSet<Digest>,
    corrupt: &'a BTreeSet<Digest>,
    reachable: BTreeSet<Digest>,
    report: &'a mut VerifyReport,
}

impl Walk<'_> {
    /// Follows one manifest (or index) named by `by`, recording what is wrong.
    fn follow(&mut self, digest: &Digest, media_type: &str, size: u64, by: &str) {
        if !self.reachable.insert(*digest) {
            return;
        }
        let known = [
            media_types::OCI_MANIFEST,
            media_types::OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
        ];
        if !known.contains(&media_type) {
            self.report.damage.push(Damage::UnknownMediaType {
                digest: *digest,
                media_type: media_type.to_owned(),
                by: by.to_owned(),
            });
            return;
        }
        if !self.checked(digest, size, by, "manifest") || self.corrupt.contains(digest) {
            return;
        }
        let Ok(bytes) = fs::read(self.layout.blob_path(digest)) else {
            return;
        };
        let unreadable = |reason: String| Damage::Unreadable {
            digest: Some(*digest),
            reason,
        };
        if media_type == media_types::OCI_INDEX || media_type == DOCKER_MANIFEST_LIST {
            match ImageIndex::from_json(&bytes) {
                Ok(index) => {
                    for child in &index.manifests {
                        // An index may list manifests a copy left out (other platforms).
                        if self.present.contains(&child.digest) {
                            self.follow(&child.digest, &child.media_type, child.size, by);
                        }
                    }
                }
                Err(e) => self.report.damage.push(unreadable(e.to_string())),
            }
            return;
        }
        let manifest = match ImageManifest::from_json(&bytes) {
            Ok(manifest) => manifest,
            Err(e) => {
                self.report.damage.push(unreadable(e.to_string()));
                return;
            }
        };
        self.reachable.insert(manifest.config.digest);
        self.checked(&manifest.config.digest, manifest.config.size, by, "config");
        for layer in &manifest.layers {
            self.reachable.insert(layer.digest);
            if media_types::is_readable_wasm_layer(&layer.media_type) {
                self.checked(&layer.digest, layer.size, by, "wasm layer");
            } else if self.present.contains(&layer.digest) {
                self.checked(&layer.digest, layer.size, by, "layer");
            }
        }
    }

    /// Whether `digest` is there at `size`; what is not is recorded.
    fn checked(&mut self, digest: &Digest, size: u64, by: &str, what: &'static str) -> bool {
        if !self.present.contains(digest) {
            self.report.damage.push(Damage::Missing {
                digest: *digest,
                by: by.to_owned(),
                what,
            });
            return false;
        }
        let actual = fs::metadata(self.layout.blob_path(digest)).map_or(0, |m| m.len());
        if actual != size {
            self.report.damage.push(Damage::WrongSize {
                digest: *digest,
                expected: size,
                actual,
                by: by.to_owned(),
            });
        }
        true
    }
}
