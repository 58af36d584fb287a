//! Where each blob is known to be in a registry: `blob-sources.json` beside `index.json`,
//! the registry repositories a blob was pulled from or pushed to (`host/repository`, the
//! most recent first, at most [`MOST`] per blob), so that a push into another repository
//! of the same registry can mount it instead of uploading it again (as skopeo's blob-info
//! cache does). It is a cache: only a layout that asks for it keeps one
//! ([`Layout::remembering_sources`], the store), it is replaced whole under the index
//! lock, a file that cannot be read counts as empty, and `gc` forgets the blobs it
//! removes.

use std::collections::BTreeMap;
use std::fs;

use wasmoci_spec::Digest;

use super::Layout;

/// The file, in the layout's directory.
pub(super) const SOURCES_FILE: &str = "blob-sources.json";

/// At most this many repositories are kept per blob.
const MOST: usize = 5;

type Sources = BTreeMap<String, Vec<String>>;

impl Layout {
    /// This layout keeps `blob-sources.json` (see the module docs): pulls into it and
    /// pushes from it remember where each blob is.
    pub fn remembering_sources(mut self) -> Self {
        self.sources = true;
        self
    }

    /// This layout is wasmoci's own store: every blob in it was hashed as it was written
    /// and kept only if it matched, so [`Layout::open_blob`] does not hash it again
    /// before sending it (the registry checks the digest of what it receives, and the
    /// push hashes what it sends); a layout a user names (`oci:DIR`) is checked whole
    /// before a byte leaves.
    pub fn own_store(mut self) -> Self {
        self.own = true;
        self
    }

    /// The registry repositories (`host/repository`) `digest` is known to be in, the most
    /// recent first.
    pub fn blob_sources(&self, digest: &Digest) -> Vec<String> {
        self.read_sources()
            .remove(&digest.to_string())
            .unwrap_or_default()
    }

    /// Remembers that `blobs` are in `repository` (`host/repository`), when this layout
    /// keeps sources. A cache: failing to write it is not an error.
    pub fn remember_sources(&self, blobs: &[Digest], repository: &str) {
        if !self.sources || blobs.is_empty() || !self.exists() {
            return;
        }
        let Ok(_lock) = self.lock() else {
            return;
        };
        let mut sources = self.read_sources();
        for digest in blobs {
            let list = sources.entry(digest.to_string()).or_default();
            list.retain(|r| r != repository);
            list.insert(0, repository.to_owned());
            list.truncate(MOST);
        }
        self.write_sources(&sources);
    }

    /// Keeps only the blobs `still_stored` says are (`gc` holds the index lock): an entry
    /// for a blob that is gone (deleted now, or by hand, or before a crash) goes too.
    pub(super) fn keep_sources(&self, still_stored: impl Fn(&Digest) -> bool) {
        let mut sources = self.read_sources();
        let before = sources.len();
        sources.retain(|digest, _| digest.parse::<Digest>().is_ok_and(|d| still_stored(&d)));
        if sources.len() != before {
            self.write_sources(&sources);
        }
    }

    fn read_sources(&self) -> Sources {
        fs::read(self.root.join(SOURCES_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn write_sources(&self, sources: &Sources) {
        let mut text = serde_json::to_vec_pretty(sources).expect("JSON serializes");
        text.push(b'\n');
        let _ = self.write_atomically(&self.root.join(SOURCES_FILE), &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_most_recent_repositories_and_only_stored_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let plain = Layout::at(dir.path());
        plain.create().unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        plain.remember_sources(&[a], "r.example/x");
        assert!(plain.blob_sources(&a).is_empty(), "only when asked for");

        let layout = Layout::at(dir.path()).remembering_sources();
        for i in 0..7 {
            layout.remember_sources(&[a, b], &format!("r.example/repo{i}"));
        }
        layout.remember_sources(&[a], "r.example/repo3");
        assert_eq!(
            layout.blob_sources(&a),
            [
                "r.example/repo3",
                "r.example/repo6",
                "r.example/repo5",
                "r.example/repo4",
                "r.example/repo2"
            ]
        );
        layout.keep_sources(|d| *d != a);
        assert!(layout.blob_sources(&a).is_empty());
        assert_eq!(layout.blob_sources(&b).len(), MOST);
        // A file that does not parse is an empty cache, and is replaced.
        fs::write(dir.path().join(SOURCES_FILE), "{not json").unwrap();
        assert!(layout.blob_sources(&b).is_empty());
        layout.remember_sources(&[b], "r.example/y");
        assert_eq!(layout.blob_sources(&b), ["r.example/y"]);
    }
}
