//! The embedded store's upkeep: what it holds (`ls`), untagging (`rm`), and freeing what
//! nothing reaches any more (`gc`: the store's blobs and the compile cache's entries).
//! Reports are `Serialize`: the commands print them as JSON or as text.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;
use wasmoci_fs::Home;
use wasmoci_registry::{Layout, LayoutRef};
use wasmoci_runtime::cache::{CompileCache, Stale};
use wasmoci_runtime::engine::{EngineSettings, build_engine, compatibility_key};
use wasmoci_spec::Digest;

/// What can go wrong in the store's upkeep.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be read or changed.
    #[error("failed to {action} the store `{}`", store.display())]
    Layout {
        /// `list`, `collect the garbage of`, …
        action: &'static str,
        /// The store.
        store: PathBuf,
        /// Why.
        #[source]
        source: Box<wasmoci_registry::Error>,
    },
    /// A reference `rm` was given names nothing in the store.
    #[error("failed to remove `{reference}`")]
    Remove {
        /// The reference, as given.
        reference: String,
        /// Why (the tag or digest is not there).
        #[source]
        source: Box<wasmoci_registry::Error>,
    },
    /// `rm` of anything while there is no store yet.
    #[error("no artifact `{reference}` in the store `{}`: it is empty", store.display())]
    Empty {
        /// The first reference given.
        reference: String,
        /// The store.
        store: PathBuf,
    },
    /// The compile cache could not be read or cleaned.
    #[error("failed to clean the compile cache `{}`", cache.display())]
    Cache {
        /// The cache directory.
        cache: PathBuf,
        /// Why.
        #[source]
        source: Box<wasmoci_runtime::Error>,
    },
}

/// One artifact in the store, as `wasmoci ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEntry {
    /// `NAME:TAG` (or the full `HOST/REPO:TAG` of a pull); `None` when stored by digest.
    pub reference: Option<String>,
    /// The manifest digest.
    pub digest: String,
    /// `component`, `module`, `image`, `index` or `unknown`.
    pub kind: &'static str,
    /// The config's `os` (`wasip1`, `wasip2`, …).
    pub os: Option<String>,
    /// Manifest, config and layers, in bytes.
    pub size: u64,
    /// The config's `created` (RFC 3339).
    pub created: Option<String>,
}

/// Every artifact in the store, tagged ones by reference, then those stored by digest.
/// No store yet: none.
pub fn list(home: &Home) -> Result<Vec<StoredEntry>, StoreError> {
    let layout = Layout::at(home.store());
    if !layout.exists() {
        return Ok(Vec::new());
    }
    let listings = layout.list().map_err(|source| StoreError::Layout {
        action: "list",
        store: layout.root().to_owned(),
        source: Box::new(source),
    })?;
    let mut entries: Vec<StoredEntry> = listings
        .into_iter()
        .map(|l| StoredEntry {
            reference: l.tag,
            digest: l.digest.to_string(),
            kind: l.kind.as_str(),
            os: l.os,
            size: l.size,
            created: l.created.map(|c| c.to_string()),
        })
        .collect();
    entries.sort_by(|a, b| {
        (a.reference.is_none(), &a.reference, &a.digest).cmp(&(
            b.reference.is_none(),
            &b.reference,
            &b.digest,
        ))
    });
    Ok(entries)
}

/// What `rm` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemoveReport {
    /// The tags taken out of the index.
    pub untagged: Vec<String>,
    /// The manifests no entry of the index names any more (their blobs go at the next
    /// `gc`).
    pub deleted: Vec<String>,
}

/// Takes `references` (each the text given and what it names in the store) out of the
/// store's index, all or none: when one names nothing, nothing is removed and the error
/// names it.
pub fn remove(home: &Home, references: &[(String, LayoutRef)]) -> Result<RemoveReport, StoreError> {
    let layout = Layout::at(home.store());
    if !layout.exists()
        && let Some((text, _)) = references.first()
    {
        return Err(StoreError::Empty {
            reference: text.clone(),
            store: layout.root().to_owned(),
        });
    }
    let refs: Vec<LayoutRef> = references.iter().map(|(_, r)| r.clone()).collect();
    let removed = layout.remove(&refs).map_err(|source| {
        let named = |r: &LayoutRef| match (&source, r) {
            (wasmoci_registry::Error::TagNotFound { tag, .. }, LayoutRef::Tag(t)) => tag == t,
            (
                wasmoci_registry::Error::ManifestNotFound { digest, .. },
                LayoutRef::Digest(d) | LayoutRef::Named { digest: d, .. },
            ) => digest == d,
            (
                wasmoci_registry::Error::OtherNames { name, digest, .. },
                LayoutRef::Named { name: n, digest: d },
            ) => name == n && digest == d,
            _ => false,
        };
        match references.iter().find(|(_, r)| named(r)) {
            Some((text, _)) => StoreError::Remove {
                reference: text.clone(),
                source: Box::new(source),
            },
            None => StoreError::Layout {
                action: "remove from",
                store: layout.root().to_owned(),
                source: Box::new(source),
            },
        }
    })?;
    let mut report = RemoveReport::default();
    for removal in removed {
        if let Some(tag) = removal.tag {
            report.untagged.push(tag);
        }
        let digest = removal.digest.to_string();
        if removal.manifest_gone && !report.deleted.contains(&digest) {
            report.deleted.push(digest);
        }
    }
    Ok(report)
}

/// A file `gc` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freed {
    /// The blob's digest, or the compiled entry's.
    pub digest: Option<String>,
    /// The file.
    pub path: PathBuf,
    /// Its size, in bytes (a compiled entry with its checksum file).
    pub size: u64,
    /// Why it went: `unreachable` (no manifest reaches the blob), `interrupted` (a
    /// temporary file of a killed write), `artifact gone` or `stale engine` (compiled
    /// entries).
    pub reason: &'static str,
}

/// What `gc` freed (or, in a dry run, would free).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Nothing was removed; this is what would be.
    pub dry_run: bool,
    /// The store's blobs and temporary files.
    pub blobs: Vec<Freed>,
    /// The compile cache's entries.
    pub compiled: Vec<Freed>,
    /// All of it, in bytes.
    pub freed_bytes: u64,
}

/// Removes the store's blobs that no manifest in it reaches, then the compiled entries
/// whose artifact the store no longer holds (a file's entries too: `run app.wasm`
/// compiles again) or that no engine of this build can load. Safe against a concurrent
/// build or pull: see [`Layout::gc`] (`on_wait` is called when it waits for a pull).
pub fn gc(home: &Home, dry_run: bool, on_wait: impl FnOnce()) -> Result<GcReport, StoreError> {
    let layout = Layout::at(home.store());
    let mut report = GcReport {
        dry_run,
        blobs: Vec::new(),
        compiled: Vec::new(),
        freed_bytes: 0,
    };
    let mut reachable = BTreeSet::new();
    if layout.exists() {
        let collected = layout
            .gc(dry_run, on_wait)
            .map_err(|source| StoreError::Layout {
                action: "collect the garbage of",
                store: layout.root().to_owned(),
                source: Box::new(source),
            })?;
        report.blobs = collected
            .blobs
            .iter()
            .map(|(digest, size)| Freed {
                digest: Some(digest.to_string()),
                path: layout.blob_path(digest),
                size: *size,
                reason: "unreachable",
            })
            .chain(collected.temporary.iter().map(|(path, size)| Freed {
                digest: None,
                path: path.clone(),
                size: *size,
                reason: "interrupted",
            }))
            .collect();
        reachable = collected.reachable;
    }
    let cache = CompileCache::new(home.compile_cache());
    let cache_error = |source| StoreError::Cache {
        cache: cache.dir().to_owned(),
        source: Box::new(source),
    };
    let keys = current_engine_keys().map_err(cache_error)?;
    let removed = cache
        .gc(&keys, |d: &Digest| reachable.contains(d), dry_run)
        .map_err(cache_error)?;
    report.compiled = removed
        .into_iter()
        .map(|(entry, why)| Freed {
            digest: Some(entry.digest.to_string()),
            path: entry.path,
            size: entry.size,
            reason: match why {
                Stale::Engine => "stale engine",
                Stale::Artifact => "artifact gone",
            },
        })
        .collect();
    report.freed_bytes = report
        .blobs
        .iter()
        .chain(&report.compiled)
        .map(|f| f.size)
        .sum();
    Ok(report)
}

/// The compatibility keys of the engines `run`, `serve` and `compile` make: with and
/// without fuel (pooling does not change the key).
fn current_engine_keys() -> Result<Vec<String>, wasmoci_runtime::Error> {
    [false, true]
        .into_iter()
        .map(|fuel| {
            let engine = build_engine(&EngineSettings {
                pooling: Some(false),
                fuel,
                ..EngineSettings::default()
            })?;
            Ok(compatibility_key(engine.engine()))
        })
        .collect()
}

/// Bytes as people read them: `512 B`, `17.2 KiB`, `3.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(17_612), "17.2 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
