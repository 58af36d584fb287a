//! `dependency update` and `dependency build`: resolving `[dependencies]` against the
//! registries (one tag listing per package, one manifest per version the solver looks
//! at), pinning the result in `wasmoci.lock`, and fetching exactly what a lock says.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::Serialize;
use wasmoci_registry::client::Client;
use wasmoci_registry::{Layout, Reference};
use wasmoci_spec::deps::solve::{Node, Request, Solution, SolveError, solve};
use wasmoci_spec::{Digest, ImageManifest, WasmKind};

pub use super::error::DepsError;
use super::index::{Fetched, RegistryIndex, fetch_manifest, requirements_of};
use super::lock::{LOCK_FILE, LOCK_VERSION, Lock, LockedPackage, inputs};
use super::manifest::{Dependency, Source, repository_under};
use crate::project::{PROJECT_FILE, Project};

/// The manifest annotation that carries an artifact's own requirements: sorted JSON,
/// package → `{"version": REQ, "oci": REPO}`.
pub const ANNOTATION: &str = "dev.wasmoci.dependencies";

type Result<T> = std::result::Result<T, DepsError>;

/// The repository of a `[dependencies]` entry, if the project says.
pub(super) fn repository_of(
    dep: &Dependency,
    registries: &BTreeMap<String, String>,
) -> Option<String> {
    match &dep.source {
        Source::Range {
            repository: Some(repository),
            ..
        } => Some(repository.clone()),
        Source::Pinned { repository, .. } => Some(repository.clone()),
        Source::Path(_) => None,
        Source::Range {
            repository: None, ..
        } => {
            let ns = dep.package.split_once(':')?.0;
            registries
                .get(ns)
                .map(|prefix| repository_under(prefix, &dep.package))
        }
    }
}

/// The project's requirements as [`ANNOTATION`]'s value (none without ranged entries).
pub fn annotation(project: &Project) -> Result<Option<String>> {
    let mut entries = BTreeMap::new();
    // A repository found by discovery is in the lock.
    let lock = read_lock(&project.dir).ok().flatten();
    let locked = |dep: &Dependency| {
        let package = lock.as_ref()?.package_of(dep)?;
        package.source.strip_prefix("oci://").map(str::to_owned)
    };
    for dep in &project.dependencies {
        if let Source::Range { requirement, .. } = &dep.source {
            let repository = repository_of(dep, &project.registries)
                .or_else(|| locked(dep))
                .ok_or_else(|| DepsError::NoRepository {
                    package: dep.package.clone(),
                    line: dep.line,
                })?;
            entries.insert(
                dep.key.clone(),
                serde_json::json!({"oci": repository, "version": requirement.to_string(), "package": dep.package}),
            );
        }
    }
    Ok((!entries.is_empty())
        .then(|| serde_json::Value::from(serde_json::Map::from_iter(entries)).to_string()))
}

/// What `dependency update` asks.
pub struct Update<'a> {
    /// The project.
    pub project: &'a Project,
    /// The registry client.
    pub client: &'a Client,
    /// The store the packages are fetched into.
    pub layout: &'a Layout,
    /// Only these packages (and what they force) move; empty: all.
    pub only: &'a [String],
    /// With one package in `only`: exactly this version.
    pub precise: Option<&'a Version>,
    /// `--locked`: fail, writing nothing, if the lock would change.
    pub locked: bool,
}

/// What `dependency update` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    /// The lock written.
    pub lock: PathBuf,
    /// `acme:kv 1.2.0 → 1.3.1`, `acme:log 0.3.1 (new)`, `acme:old 1.0.0 (removed)`.
    pub changes: Vec<String>,
    /// What the lock holds now.
    pub packages: Vec<LockedPackage>,
}

/// The lock beside a project, if there is one.
pub fn read_lock(dir: &Path) -> Result<Option<Lock>> {
    let path = dir.join(LOCK_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(Lock::parse(&text)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DepsError::LockFile {
            action: "read",
            path,
            source,
        }),
    }
}

fn node_of(dep: &Dependency) -> Node {
    Node::Package {
        name: dep.package.clone(),
        alias: dep.renamed.then(|| dep.key.clone()),
    }
}

fn node_of_locked(package: &LockedPackage) -> Node {
    Node::Package {
        name: package.name.clone(),
        alias: package.alias.clone(),
    }
}

/// Resolves, fetches into the store, writes the lock.
pub fn update(request: &Update<'_>) -> Result<UpdateReport> {
    let project = request.project;
    let old = read_lock(&project.dir)?;
    let index = RegistryIndex {
        client: request.client,
        repositories: RefCell::default(),
        guessed: RefCell::default(),
        tags: RefCell::default(),
        manifests: RefCell::default(),
        failure: RefCell::default(),
    };
    let mut roots = Vec::new();
    for dep in &project.dependencies {
        if let Source::Range { requirement, .. } = &dep.source {
            let repository = match repository_of(dep, &project.registries) {
                Some(repository) => repository,
                None => super::discover::discover(request.client, dep)?,
            };
            index
                .learn(&dep.package, &repository)
                .map_err(|reason| index.failure_or(&dep.package, reason))?;
            let mut requirement = requirement.clone();
            if let (Some(precise), [only]) = (request.precise, request.only)
                && (only == &dep.key || only == &dep.package)
            {
                requirement = VersionReq::parse(&format!("={precise}"))
                    .map_err(|e| DepsError::Usage(e.to_string()))?;
            }
            roots.push(Request {
                node: node_of(dep),
                requirement,
            });
        }
    }
    // A pinned artifact's own requirements (its annotation) hold beside the project's.
    let mut pins: BTreeMap<String, (Fetched, Vec<String>)> = BTreeMap::new();
    for dep in &project.dependencies {
        if let Source::Pinned { repository, digest } = &dep.source {
            let reference = pinned_reference(repository, digest)?;
            let fetched = fetch_manifest(request.client, &reference)?;
            let wanted = requirements_of(&fetched.0).map_err(|reason| DepsError::Manifest {
                reference: reference.to_string(),
                reason,
            })?;
            let mut names = Vec::new();
            for (name, requirement, repository) in wanted {
                index
                    .learn(&name, &repository)
                    .map_err(|reason| index.failure_or(&name, reason))?;
                roots.push(Request {
                    node: Node::package(&name),
                    requirement,
                });
                names.push(name);
            }
            pins.insert(dep.key.clone(), (fetched, names));
        }
    }
    if request.precise.is_some() && request.only.len() != 1 {
        return Err(DepsError::Usage(
            "`--precise` takes exactly one package".into(),
        ));
    }
    // Locked versions stay, but for the packages asked to move.
    let moving = |p: &LockedPackage| {
        request
            .only
            .iter()
            .any(|o| *o == p.name || p.alias.as_deref() == Some(o))
    };
    // With no package named, everything moves: a fresh resolution.
    let locked: BTreeMap<Node, Version> = match &old {
        Some(lock) if !request.only.is_empty() => lock
            .packages
            .iter()
            .filter(|p| !moving(p))
            .filter_map(|p| Some((node_of_locked(p), Version::parse(&p.version).ok()?)))
            .collect(),
        _ => BTreeMap::new(),
    };
    let preferred: BTreeMap<String, Version> = locked
        .iter()
        .filter_map(|(node, version)| match node {
            Node::Package { name, alias: None } => Some((name.clone(), version.clone())),
            _ => None,
        })
        .collect();
    index.read_ahead(
        roots
            .iter()
            .filter_map(|r| match &r.node {
                Node::Package { name, alias: None } => Some((name.clone(), r.requirement.clone())),
                _ => None,
            })
            .collect(),
        &preferred,
    );
    let solution = match solve(&index, &roots, &locked) {
        Ok(solution) => solution,
        Err(SolveError::Index { package, reason }) => {
            return Err(index.failure_or(&package, reason));
        }
        Err(SolveError::NoSolution(explanation)) => {
            let asked = project
                .dependencies
                .iter()
                .filter(|d| explanation.contains(&d.package))
                .filter_map(|d| match &d.source {
                    Source::Range { requirement, .. } => Some(format!(
                        "{PROJECT_FILE} line {}: \"{}\" = \"{requirement}\"",
                        d.line, d.key
                    )),
                    _ => None,
                })
                .collect();
            return Err(DepsError::NoSolution { explanation, asked });
        }
    };
    let mut packages = ranged(&index, &solution, request)?;
    for dep in &project.dependencies {
        match &dep.source {
            Source::Pinned { repository, digest } => {
                let Some((fetched, names)) = pins.remove(&dep.key) else {
                    continue;
                };
                let edges = names
                    .iter()
                    .filter_map(|name| {
                        let version = solution.versions.get(&Node::package(name))?;
                        Some(format!("{name}@{version}"))
                    })
                    .collect();
                packages.push(pinned(request, dep, repository, digest, fetched, edges)?);
            }
            Source::Path(path) => packages.push(local(project, dep, path)?),
            Source::Range { .. } => {}
        }
    }
    twice(project, &packages)?;
    let lock = Lock {
        version: LOCK_VERSION,
        inputs: inputs(&project.dependencies, &project.registries),
        packages,
    }
    .normalized();
    composes(project, request.layout, &lock)?;
    let path = project.dir.join(LOCK_FILE);
    let text = lock.render();
    let before = old.as_ref().map_or(&[][..], |l| &l.packages);
    if request.locked && old.as_ref().map(Lock::render) != Some(text.clone()) {
        let mut moved = changes(before, &lock.packages);
        if moved.is_empty() {
            moved.push("its inputs hash".into());
        }
        return Err(DepsError::WouldChange(moved.join(", ")));
    }
    wasmoci_fs::write_atomic(&path, text.as_bytes(), 0o644).map_err(|source| {
        DepsError::LockFile {
            action: "write",
            path: path.clone(),
            source,
        }
    })?;
    Ok(UpdateReport {
        lock: path,
        changes: changes(before, &lock.packages),
        packages: lock.packages,
    })
}

/// Packages fetched into the store at once.
const FETCHES: usize = 8;

/// The solved packages, fetched into the store and described for the lock.
fn ranged(
    index: &RegistryIndex<'_>,
    solution: &Solution,
    request: &Update<'_>,
) -> Result<Vec<LockedPackage>> {
    // What to fetch, from the index; then the fetches, several at once.
    let mut wanted = Vec::new();
    for (node, version) in &solution.versions {
        let name = node.name().unwrap_or_default();
        let fetched = index
            .manifest(name, version)
            .map_err(|reason| index.failure_or(name, reason))?;
        let repository = index
            .repositories
            .borrow()
            .get(name)
            .cloned()
            .unwrap_or_default();
        wanted.push((node, version, repository, fetched));
    }
    // Each thread with a lease of its own; the store exists first, so that a failed pull
    // never takes it for one it made and removes it under the others.
    let root = request.layout.root();
    std::fs::create_dir_all(root).map_err(|source| {
        DepsError::Store(Box::new(crate::ops::Error::WriteFile {
            path: root.to_owned(),
            source,
        }))
    })?;
    let mut stored = Vec::new();
    for chunk in wanted.chunks(FETCHES) {
        stored.extend(std::thread::scope(|scope| {
            let running: Vec<_> = chunk
                .iter()
                .map(|(_, _, repository, (manifest, digest, bytes))| {
                    let layout = request.layout.with_own_lease();
                    scope
                        .spawn(move || fetch(request, &layout, repository, digest, manifest, bytes))
                })
                .collect();
            running
                .into_iter()
                .map(|r| r.join().expect("a fetch thread panicked"))
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::new();
    for ((node, version, repository, (_, digest, _)), fetched) in wanted.iter().zip(stored) {
        let (node, version) = (*node, *version);
        let name = node.name().unwrap_or_default();
        let (layer, size, kind) = fetched?;
        let requested = solution.requested.get(node).cloned().unwrap_or_default();
        let dependencies = solution
            .edges
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|dep| {
                let version = solution.versions.get(dep)?;
                Some(format!("{}@{version}", dep.name().unwrap_or_default()))
            })
            .collect();
        let Node::Package { alias, .. } = node else {
            continue;
        };
        out.push(LockedPackage {
            name: name.to_owned(),
            alias: alias.clone(),
            version: version.to_string(),
            source: format!("oci://{repository}"),
            manifest: Some(digest.to_string()),
            layer: layer.to_string(),
            size,
            kind,
            requirement: requested.into_iter().collect(),
            dependencies,
        });
    }
    Ok(out)
}

/// Stores `repository@digest` (whose manifest is `manifest`, as `bytes`) in the store,
/// fetching only the blobs it lacks, by digest (the manifest is not asked for again):
/// its wasm layer's digest, size and kind.
pub(super) fn fetch(
    request: &Update<'_>,
    layout: &Layout,
    repository: &str,
    digest: &Digest,
    manifest: &ImageManifest,
    bytes: &[u8],
) -> Result<(Digest, u64, String)> {
    let reference = pinned_reference(repository, digest)?;
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == wasmoci_spec::media_types::WASM_LAYER)
        .ok_or_else(|| DepsError::Manifest {
            reference: reference.to_string(),
            reason: "no `application/wasm` layer".into(),
        })?;
    let store_error = |e| DepsError::Store(Box::new(crate::ops::Error::Layout(Box::new(e))));
    let stored = |d: &Digest| layout.blob_path(d).is_file();
    if !stored(digest) || !stored(&layer.digest) {
        // Streamed to the store and checked as a pull does (the blob size limit included),
        // without asking for the manifest again.
        request
            .client
            .pull_fetched(
                &reference,
                bytes,
                wasmoci_spec::media_types::OCI_MANIFEST,
                layout,
                Some(&crate::ops::artifact::store_tag(&reference)),
                wasmoci_registry::client::PullOptions::default(),
            )
            .map_err(|source| DepsError::Fetch {
                reference: reference.to_string(),
                source: Box::new(source),
            })?;
    }
    let wasm = layout.read_blob(&layer.digest).map_err(store_error)?;
    Ok((layer.digest, layer.size, kind_of(&wasm)))
}

/// `REPO@DIGEST` as a reference.
pub(super) fn pinned_reference(repository: &str, digest: &Digest) -> Result<Reference> {
    let text = format!("{repository}@{digest}");
    text.parse().map_err(|e| DepsError::Manifest {
        reference: text.clone(),
        reason: format!("{e}"),
    })
}

/// `component`, `wit` (a component that is a WIT package) or `module`.
fn kind_of(wasm: &[u8]) -> String {
    match WasmKind::detect(wasm) {
        Some(WasmKind::Module) => "module".into(),
        _ => match wasmoci_spec::decode_wit(wasm) {
            Ok(wit_component::DecodedWasm::WitPackage(..)) => "wit".into(),
            _ => "component".into(),
        },
    }
}

/// A pinned entry, its manifest already `fetched`; `dependencies`: its own requirements
/// as solved (`name@version`).
fn pinned(
    request: &Update<'_>,
    dep: &Dependency,
    repository: &str,
    digest: &Digest,
    (manifest, _, bytes): Fetched,
    dependencies: Vec<String>,
) -> Result<LockedPackage> {
    let (layer, size, kind) = fetch(
        request,
        request.layout,
        repository,
        digest,
        &manifest,
        &bytes,
    )?;
    let version = manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(wasmoci_spec::annotations::VERSION))
        .and_then(|v| Version::parse(v).ok())
        .map_or_else(|| "0.0.0".to_owned(), |v| v.to_string());
    Ok(LockedPackage {
        name: dep.package.clone(),
        alias: dep.renamed.then(|| dep.key.clone()),
        version,
        source: format!("oci://{repository}"),
        manifest: Some(digest.to_string()),
        layer: layer.to_string(),
        size,
        kind,
        requirement: Vec::new(),
        dependencies,
    })
}

fn local(project: &Project, dep: &Dependency, path: &Path) -> Result<LockedPackage> {
    let bytes = std::fs::read(project.dir.join(path)).map_err(|source| DepsError::Path {
        path: path.to_owned(),
        line: dep.line,
        source,
    })?;
    Ok(LockedPackage {
        name: dep.package.clone(),
        alias: dep.renamed.then(|| dep.key.clone()),
        version: "0.0.0".into(),
        source: format!("path+{}", path.to_string_lossy()),
        manifest: None,
        layer: Digest::of(&bytes).to_string(),
        size: bytes.len() as u64,
        kind: kind_of(&bytes),
        requirement: Vec::new(),
        dependencies: Vec::new(),
    })
}

/// Two project entries that ended as the same package at the same version.
fn twice(project: &Project, packages: &[LockedPackage]) -> Result<()> {
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for package in packages {
        let key = package
            .alias
            .clone()
            .unwrap_or_else(|| package.name.clone());
        let id = (package.name.clone(), package.version.clone());
        if let Some(first) = seen.insert(id, key.clone())
            && project.dependencies.iter().any(|d| d.key == key)
        {
            return Err(DepsError::Twice {
                first,
                second: key,
                package: format!("{}@{}", package.name, package.version),
            });
        }
    }
    Ok(())
}

/// What moved between two locks, one line each, sorted.
fn changes(old: &[LockedPackage], new: &[LockedPackage]) -> Vec<String> {
    let id = |p: &LockedPackage| match &p.alias {
        Some(alias) => format!("{} (as `{alias}`)", p.name),
        None => p.name.clone(),
    };
    let before: BTreeMap<String, &LockedPackage> = old.iter().map(|p| (id(p), p)).collect();
    let after: BTreeMap<String, &LockedPackage> = new.iter().map(|p| (id(p), p)).collect();
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        match (before.get(name), after.get(name)) {
            (Some(a), Some(b)) if a.version != b.version => {
                out.push(format!("{name} {} → {}", a.version, b.version));
            }
            (Some(a), Some(b)) if a.manifest != b.manifest || a.layer != b.layer => {
                out.push(format!("{name} {} (new content)", b.version));
            }
            (None, Some(b)) => out.push(format!("{name} {} (new)", b.version)),
            (Some(a), None) => out.push(format!("{name} {} (removed)", a.version)),
            _ => {}
        }
    }
    out
}

/// With `[compose]`: whether the component the project built still composes with what
/// `lock` pins (each plugged export still fits the import it fills). A project whose
/// wasm is not there yet, or is not a component yet, is not checked.
fn composes(project: &Project, layout: &Layout, lock: &Lock) -> Result<()> {
    let Some(section) = &project.compose else {
        return Ok(());
    };
    let Ok(built) = std::fs::read(project.dir.join(&project.build.wasm)) else {
        return Ok(());
    };
    if WasmKind::detect(&built) != Some(WasmKind::Component) {
        return Ok(());
    }
    crate::ops::compose::project::compose_project(
        &project.dir,
        section,
        (&project.package.name, Some(&project.package.version)),
        &built,
        layout,
        Some(lock),
    )
    .map(drop)
    .map_err(|e| DepsError::BreaksComposition(Box::new(e)))
}
