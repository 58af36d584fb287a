//! Garbage collection: the blobs no manifest in the index reaches.

use std::collections::BTreeSet;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use wasmoci_spec::{Digest, ImageIndex, ImageManifest, media_types};

use super::{Layout, OCI_LAYOUT_FILE};
use crate::error::{Error, IoContext, Result};

/// Docker's manifest list, which an index written by another tool may name.
pub(super) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// A temporary file younger than this may belong to a writer that does not take our
/// locks (another tool writing into the layout); older ones are leftovers of a write that
/// was killed.
const TEMPORARY_GRACE: Duration = Duration::from_secs(60 * 60);

/// What [`Layout::gc`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The blobs no manifest in the index reaches, with their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Temporary files of interrupted writes (older than an hour), with their sizes.
    pub temporary: Vec<(PathBuf, u64)>,
    /// Every digest a manifest in the index reaches (manifests, configs, layers): kept.
    pub reachable: BTreeSet<Digest>,
}

impl GcReport {
    /// The bytes removed.
    pub fn freed(&self) -> u64 {
        let blobs: u64 = self.blobs.iter().map(|(_, size)| size).sum();
        blobs + self.temporary.iter().map(|(_, size)| size).sum::<u64>()
    }
}

impl Layout {
    /// Removes every blob that no manifest in the index reaches (directly, or through an
    /// image index in the layout), and the temporary files of writes killed more than an
    /// hour ago. With `dry_run`, only reports them. Blobs of other algorithms than
    /// `sha256`, and files that are not blobs, are left alone.
    ///
    /// Safe against concurrent writers: it takes the lease exclusively (waiting for pulls
    /// in flight to store their manifest; see the module docs), then the index lock, and
    /// holds both until it is done; `on_wait` is called first when it has to wait. A
    /// manifest that cannot be read or parsed stops it before anything is removed: what it
    /// reaches is unknown.
    pub fn gc(&self, dry_run: bool, on_wait: impl FnOnce()) -> Result<GcReport> {
        if !self.exists() {
            self.check()?;
        }
        let _locks = self.exclusive(on_wait)?;

        let mut report = GcReport::default();
        for descriptor in self.index()?.manifests {
            self.reach(
                &descriptor.digest,
                &descriptor.media_type,
                &mut report.reachable,
            )?;
        }
        let dir = self.root.join("blobs").join("sha256");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(e).io("read", dir),
        };
        let now = SystemTime::now();
        for entry in entries {
            let entry = entry.io("read", &dir)?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let metadata = match entry.metadata() {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).io("read", path),
            };
            if name.starts_with('.') {
                let age = metadata
                    .modified()
                    .ok()
                    .and_then(|at| now.duration_since(at).ok());
                if age.is_some_and(|age| age > TEMPORARY_GRACE) {
                    report.temporary.push((path, metadata.len()));
                }
                continue;
            }
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if digest.hex() != name || report.reachable.contains(&digest) {
                continue;
            }
            report.blobs.push((digest, metadata.len()));
        }
        report.blobs.sort();
        report.temporary.sort();
        if !dry_run {
            for path in report
                .blobs
                .iter()
                .map(|(digest, _)| self.blob_path(digest))
                .chain(report.temporary.iter().map(|(path, _)| path.clone()))
            {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(e).io("remove", path);
                    }
                    _ => {}
                }
            }
            self.keep_sources(|digest| report.reachable.contains(digest));
        }
        Ok(report)
    }

    /// The lease taken exclusively (waiting for pulls in flight to store their manifest),
    /// then the index lock: no writer is half-way through while they are held. `on_wait`
    /// is called first when it has to wait.
    pub(super) fn exclusive(&self, on_wait: impl FnOnce()) -> Result<(File, File)> {
        // A lease this value holds itself would make it wait for itself.
        self.release_lease();
        let marker = self.root.join(OCI_LAYOUT_FILE);
        let lease = File::open(&marker).io("open", &marker)?;
        match lease.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait();
                lease.lock().io("lock", &marker)?;
            }
            Err(TryLockError::Error(e)) => return Err(e).io("lock", marker),
        }
        let lock = self.lock()?;
        Ok((lease, lock))
    }

    /// Adds `digest` and everything it reaches to `reachable`.
    fn reach(
        &self,
        digest: &Digest,
        media_type: &str,
        reachable: &mut BTreeSet<Digest>,
    ) -> Result<()> {
        if !reachable.insert(*digest) {
            return Ok(());
        }
        let bytes = self.read_blob(digest)?;
        if media_type == media_types::OCI_INDEX || media_type == DOCKER_MANIFEST_LIST {
            let index = ImageIndex::from_json(&bytes).map_err(|e| Error::ManifestJson {
                digest: *digest,
                reason: e.to_string(),
            })?;
            for child in &index.manifests {
                match self.reach(&child.digest, &child.media_type, reachable) {
                    // An index may list manifests a copy left out (other platforms).
                    Err(Error::BlobMissing { .. }) => {}
                    other => other?,
                }
            }
            return Ok(());
        }
        let manifest = ImageManifest::from_json(&bytes).map_err(|e| Error::ManifestJson {
            digest: *digest,
            reason: e.to_string(),
        })?;
        reachable.insert(manifest.config.digest);
        reachable.extend(manifest.layers.iter().map(|l| l.digest));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use wasmoci_spec::{Blob, Descriptor};

    use super::*;
    use crate::LayoutRef;

    fn manifest_over(config: &Descriptor, layers: &[&Descriptor]) -> Vec<u8> {
        let layers: Vec<String> = layers
            .iter()
            .map(|l| serde_json::to_string(l).unwrap())
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
            media_types::OCI_MANIFEST,
            serde_json::to_string(config).unwrap(),
            layers.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn removes_only_what_no_manifest_reaches() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        let blob = |bytes: &'static [u8]| (Descriptor::for_bytes("x/y", bytes), bytes);
        let (config, config_bytes) = blob(b"{}");
        let (shared, shared_bytes) = blob(b"shared layer");
        let (own, own_bytes) = blob(b"own layer");
        let kept = manifest_over(&config, &[&shared]);
        let dropped = manifest_over(&config, &[&shared, &own]);
        layout
            .store(
                &kept,
                &[Blob::hash(config_bytes), Blob::hash(shared_bytes)],
                Some("kept"),
            )
            .unwrap();
        let gone = layout
            .store(
                &dropped,
                &[
                    Blob::hash(config_bytes),
                    Blob::hash(shared_bytes),
                    Blob::hash(own_bytes),
                ],
                Some("gone"),
            )
            .unwrap();
        layout.remove(&[LayoutRef::Tag("gone".into())]).unwrap();
        let stale = layout.root().join("blobs/sha256/.tmp-old");
        fs::write(&stale, b"killed").unwrap();
        let old = SystemTime::now() - 2 * TEMPORARY_GRACE;
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fresh = layout.root().join("blobs/sha256/.tmp-new");
        fs::write(&fresh, b"being written").unwrap();

        let mut expected = vec![(gone.digest, dropped.len() as u64), (own.digest, own.size)];
        expected.sort();
        let dry = layout.gc(true, || {}).unwrap();
        assert_eq!(dry.blobs, expected);
        assert!(layout.blob_path(&own.digest).exists());
        let report = layout.gc(false, || {}).unwrap();
        assert_eq!(report, dry);
        assert_eq!(report.temporary, [(stale.clone(), 6)]);
        assert_eq!(report.freed(), dropped.len() as u64 + own.size + 6);
        assert!(!layout.blob_path(&own.digest).exists());
        assert!(!stale.exists());
        assert!(fresh.exists());
        for d in [&config, &shared] {
            assert!(layout.read_blob(&d.digest).is_ok());
        }
        assert!(layout.resolve(&LayoutRef::Tag("kept".into())).is_ok());
        assert_eq!(layout.gc(false, || {}).unwrap().blobs, []);
    }

    #[test]
    fn a_manifest_whose_blobs_are_missing_is_never_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        let config = Descriptor::for_bytes("x/y", b"{}");
        // A wasm layer must be there; one that is not wasm may stay at the registry.
        let layer = Descriptor::for_bytes(wasmoci_spec::media_types::WASM_LAYER, b"collected");
        let manifest = manifest_over(&config, &[&layer]);
        let err = layout
            .store(&manifest, &[Blob::hash(b"{}")], Some("a"))
            .unwrap_err();
        assert!(
            matches!(&err, Error::BlobMissing { digest, .. } if *digest == layer.digest),
            "{err}"
        );
        assert!(!layout.blob_path(&config.digest).exists(), "rolled back");
    }

    #[test]
    fn waits_for_a_pull_between_its_blobs_and_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let pull = Layout::at(dir.path());
        pull.create().unwrap();
        let layer = b"pulled layer";
        let (layer_d, ..) = pull.put_blob_from(&layer[..], None).unwrap();
        pull.put_blob_from(&b"{}"[..], None).unwrap();
        let manifest = manifest_over(
            &Descriptor::for_bytes("x/y", b"{}"),
            &[&Descriptor::for_bytes("x/y", layer)],
        );
        let (done, finished) = mpsc::channel();
        let root = dir.path().to_owned();
        let (waiting, waited) = mpsc::channel();
        let gc = std::thread::spawn(move || {
            let report = Layout::at(root).gc(false, || waiting.send(()).unwrap());
            done.send(()).unwrap();
            report
        });
        assert!(
            finished.recv_timeout(Duration::from_millis(500)).is_err(),
            "gc ran while a pull was in flight"
        );
        waited
            .recv_timeout(Duration::from_secs(5))
            .expect("gc said it waits");
        pull.store(&manifest, &[], Some("pulled")).unwrap();
        let report = gc.join().unwrap().unwrap();
        assert_eq!(report.blobs, []);
        assert!(pull.read_blob(&layer_d).is_ok());
    }
}
