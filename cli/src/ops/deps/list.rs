//! `dependency list`: each `[dependencies]` entry, what the lock pins for it, the newest
//! version its registry has, and one status: `ok`, `missing` (not in the store), `out of
//! sync` (the lock is not this project's), `tag moved` (the locked version's tag now
//! names other content: the lock's digest is still what is used), `tag deleted` (the
//! registry no longer tags the locked version: it still builds, by digest), `update
//! available`.

use serde::Serialize;
use wasmoci_registry::client::Client;
use wasmoci_registry::{Layout, Reference};
use wasmoci_spec::Digest;
use wasmoci_spec::deps::requirement::{admits, ranges};

use super::error::DepsError;
use super::index::versions_of;
use super::lock::{LockedPackage, inputs};
use super::manifest::Source;
use super::resolve::{read_lock, repository_of};
use crate::project::Project;

/// One row.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The `[dependencies]` key.
    pub name: String,
    /// Its requirement (`-` for a digest pin or a path).
    pub requirement: String,
    /// The locked version, if any.
    pub locked: Option<String>,
    /// The newest published version (none offline, or for a pin or a path).
    pub latest: Option<String>,
    /// `oci://HOST/REPO` or `path+…`.
    pub source: String,
    /// `ok`, `missing`, `out of sync`, `tag moved`, `tag deleted`, `update available`.
    pub status: &'static str,
}

/// Lists the project's dependencies; `client` is `None` offline.
pub fn list(
    project: &Project,
    client: Option<&Client>,
    layout: &Layout,
) -> Result<Vec<Listed>, DepsError> {
    let lock = read_lock(&project.dir)?;
    let in_sync = lock
        .as_ref()
        .is_some_and(|l| l.inputs == inputs(&project.dependencies, &project.registries));
    let mut rows = Vec::new();
    for dep in &project.dependencies {
        let locked: Option<&LockedPackage> = lock.as_ref().and_then(|l| l.package_of(dep));
        let requirement = match &dep.source {
            Source::Range { requirement, .. } => requirement.to_string(),
            _ => "-".to_owned(),
        };
        // What the project says, else where discovery found it (the lock).
        let repository = repository_of(dep, &project.registries)
            .or_else(|| locked?.source.strip_prefix("oci://").map(str::to_owned));
        let source =
            locked
                .map(|p| p.source.clone())
                .unwrap_or_else(|| match (&dep.source, &repository) {
                    (Source::Path(path), _) => format!("path+{}", path.to_string_lossy()),
                    (_, Some(repository)) => format!("oci://{repository}"),
                    _ => "-".to_owned(),
                });
        let mut latest = None;
        let mut newer = false;
        let mut moved = false;
        let mut deleted = false;
        if let (Some(client), Some(repository), Source::Range { requirement, .. }) =
            (client, &repository, &dep.source)
        {
            let reference: Reference = repository.parse().map_err(|e| DepsError::Manifest {
                reference: repository.clone(),
                reason: format!("{e}"),
            })?;
            let listed = client.tags(&reference).map_err(|source| DepsError::Fetch {
                reference: repository.clone(),
                source: Box::new(source),
            })?;
            let versions = versions_of(listed);
            latest = versions
                .iter()
                .filter(|(v, _)| v.pre.is_empty())
                .map(|(v, _)| v)
                .max()
                .map(ToString::to_string);
            if let Some(package) = locked
                && let Ok(current) = semver::Version::parse(&package.version)
            {
                let range = ranges(requirement);
                newer = versions
                    .iter()
                    .any(|(v, _)| *v > current && range.contains(v) && admits(requirement, v));
                if let Some((_, tag)) = versions.iter().find(|(v, _)| *v == current) {
                    let mut at = reference.clone();
                    at.tag = Some(tag.clone());
                    let (_, digest, _) =
                        client.manifest(&at).map_err(|source| DepsError::Fetch {
                            reference: at.to_string(),
                            source: Box::new(source),
                        })?;
                    moved = package.manifest.as_deref() != Some(&*digest.to_string());
                } else {
                    deleted = true;
                }
            }
        }
        let stored = locked.is_some_and(|p| match &p.manifest {
            Some(manifest) => manifest
                .parse::<Digest>()
                .is_ok_and(|d| layout.blob_path(&d).exists()),
            None => true,
        });
        let status = if !in_sync || locked.is_none() {
            "out of sync"
        } else if !stored {
            "missing"
        } else if moved {
            "tag moved"
        } else if deleted {
            "tag deleted"
        } else if newer {
            "update available"
        } else {
            "ok"
        };
        rows.push(Listed {
            name: dep.key.clone(),
            requirement,
            locked: locked.map(|p| p.version.clone()),
            latest,
            source,
            status,
        });
    }
    Ok(rows)
}
