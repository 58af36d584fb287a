//! Fetching exactly what `wasmoci.lock` pins: `dependency build` (by digest, what the
//! store holds costs no request), `--offline` (the store, then `vendor/`), and
//! `dependency vendor` (the locked closure as an OCI image layout).

use std::path::{Path, PathBuf};

use semver::Version;
use serde::Serialize;
use wasmoci_registry::Layout;
use wasmoci_registry::client::Client;
use wasmoci_spec::Digest;

use super::error::DepsError;
use super::index::fetch_manifest;
use super::lock::{LockedPackage, inputs};
use super::resolve::{Update, fetch, pinned_reference, read_lock};
use crate::project::Project;

type Result<T> = std::result::Result<T, DepsError>;

/// What `dependency build` fetched.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// Each package, as locked.
    pub packages: Vec<LockedPackage>,
    /// How many were fetched (the rest were in the store).
    pub fetched: usize,
    /// The WIT files written under `wit/deps/`.
    pub wit: Vec<PathBuf>,
}

/// Fetches exactly what the lock says (by manifest digest, the layer digest checked), no
/// resolution; a lock out of sync with the project is refused.
pub fn build_locked(project: &Project, client: &Client, layout: &Layout) -> Result<BuildReport> {
    let lock = check_lock(project)?;
    let update = Update {
        project,
        client,
        layout,
        only: &[],
        precise: None,
        locked: true,
    };
    let mut fetched = 0;
    for package in &lock.packages {
        // What the store already holds costs no request.
        if package.source.starts_with("oci://") && in_store(package, layout) {
            continue;
        }
        let (Some(repository), Some(manifest)) =
            (package.source.strip_prefix("oci://"), &package.manifest)
        else {
            // A local file: its hash must still match.
            let path = package.source.strip_prefix("path+").unwrap_or_default();
            let bytes =
                std::fs::read(project.dir.join(path)).map_err(|source| DepsError::Path {
                    path: PathBuf::from(path),
                    line: 0,
                    source,
                })?;
            if Digest::of(&bytes).to_string() != package.layer {
                return Err(DepsError::OutOfSync);
            }
            continue;
        };
        let digest: Digest = manifest.parse().map_err(|e| DepsError::Manifest {
            reference: format!("{repository}@{manifest}"),
            reason: format!("{e}"),
        })?;
        let reference = pinned_reference(repository, &digest)?;
        let (manifest, _, bytes) = fetch_manifest(client, &reference)?;
        let (layer, _, _) = fetch(&update, repository, &digest, &manifest, &bytes)?;
        fetched += 1;
        if layer.to_string() != package.layer {
            return Err(DepsError::Manifest {
                reference: reference.to_string(),
                reason: format!(
                    "its wasm layer is `{layer}`, not the locked `{}`",
                    package.layer
                ),
            });
        }
    }
    let wit = write_wit(project, layout, &lock.packages)?;
    Ok(BuildReport {
        packages: lock.packages,
        fetched,
        wit,
    })
}

/// Writes each locked WIT package (`kind = "wit"`, and the packages it carries) as
/// `wit/deps/<ns>-<name>-<version>/package.wit`, as `wkg wit fetch` does, so that
/// `wasmoci build --wit wit` and wit-bindgen find them. Other files there stay.
fn write_wit(
    project: &Project,
    layout: &Layout,
    packages: &[LockedPackage],
) -> Result<Vec<PathBuf>> {
    let deps = project.dir.join("wit").join("deps");
    let mut written = Vec::new();
    for package in packages.iter().filter(|p| p.kind == "wit") {
        let wit_error = |reason: String| DepsError::Manifest {
            reference: format!("{}@{}", package.name, package.version),
            reason,
        };
        let digest: Digest = package
            .layer
            .parse()
            .map_err(|e| wit_error(format!("{e}")))?;
        let wasm = match package.source.strip_prefix("path+") {
            Some(path) => {
                std::fs::read(project.dir.join(path)).map_err(|source| DepsError::Path {
                    path: PathBuf::from(path),
                    line: 0,
                    source,
                })?
            }
            None => layout
                .read_blob(&digest)
                .map_err(|e| DepsError::Store(Box::new(crate::ops::Error::Layout(Box::new(e)))))?,
        };
        let Ok(wit_component::DecodedWasm::WitPackage(resolve, _)) = wit_component::decode(&wasm)
        else {
            return Err(wit_error("its wasm is not a WIT package".into()));
        };
        for (id, wit_package) in resolve.packages.iter() {
            let mut printer = wit_component::WitPrinter::default();
            printer
                .print(&resolve, id, &[])
                .map_err(|e| wit_error(format!("failed to print its WIT: {e}")))?;
            let dir = deps.join(wit_package.name.to_string().replace([':', '@'], "-"));
            let file = dir.join("package.wit");
            std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    wasmoci_fs::write_atomic(&file, printer.output.to_string().as_bytes(), 0o644)
                })
                .map_err(|source| DepsError::LockFile {
                    action: "write",
                    path: file.clone(),
                    source,
                })?;
            written.push(file);
        }
    }
    written.sort();
    written.dedup();
    Ok(written)
}

/// Copies a locked package from the vendor layout into the store, if it is there.
fn from_vendor(package: &LockedPackage, vendored: &Layout, layout: &Layout) -> bool {
    let Some(digest) = package
        .manifest
        .as_deref()
        .and_then(|d| d.parse::<Digest>().ok())
    else {
        return false;
    };
    if !vendored.exists() || !in_store(package, vendored) {
        return false;
    }
    let name = package.source.strip_prefix("oci://").unwrap_or_default();
    let stored = vendored.resolve(&wasmoci_registry::LayoutRef::Digest(digest));
    let Ok(stored) = stored else {
        return false;
    };
    let tag = crate::ops::artifact::store_tag(&match format!("{name}@{digest}").parse() {
        Ok(reference) => reference,
        Err(_) => return false,
    });
    crate::ops::copy::copy_local(vendored, &stored, layout, &tag).is_ok()
        && in_store(package, layout)
}

/// Whether the store holds a locked package's manifest and wasm layer.
fn in_store(package: &LockedPackage, layout: &Layout) -> bool {
    package
        .manifest
        .iter()
        .chain(std::iter::once(&package.layer))
        .all(|d| {
            d.parse::<Digest>()
                .is_ok_and(|d| layout.blob_path(&d).is_file())
        })
}

/// The project's lock, which must be in sync with its `[dependencies]`.
pub fn check_lock(project: &Project) -> Result<super::lock::Lock> {
    let lock = read_lock(&project.dir)?.ok_or_else(|| DepsError::NoLock {
        dir: project.dir.clone(),
    })?;
    if lock.inputs != inputs(&project.dependencies, &project.registries) {
        return Err(DepsError::OutOfSync);
    }
    Ok(lock)
}

/// The default vendor directory, beside `wasmoci.toml`.
pub const VENDOR_DIR: &str = "vendor";

/// What `dependency vendor` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct VendorReport {
    /// The OCI image layout.
    pub layout: PathBuf,
    /// Each artifact, as `oci:DIR:TAG@DIGEST`.
    pub artifacts: Vec<String>,
}

/// `dependency vendor`: the locked closure (fetched first where the store lacks it) as
/// an OCI image layout at `dir`, each artifact tagged `REPO:VERSION` with its digest kept,
/// for `--offline` builds without the registries (skopeo and oras read it too).
pub fn vendor(
    project: &Project,
    client: &Client,
    layout: &Layout,
    dir: &Path,
) -> Result<VendorReport> {
    let built = build_locked(project, client, layout)?;
    let target = Layout::at(dir);
    let mut artifacts = Vec::new();
    for package in &built.packages {
        let (Some(repository), Some(manifest)) =
            (package.source.strip_prefix("oci://"), &package.manifest)
        else {
            continue;
        };
        let digest: Digest = manifest.parse().map_err(|e| DepsError::Manifest {
            reference: format!("{repository}@{manifest}"),
            reason: format!("{e}"),
        })?;
        let version = Version::parse(&package.version)
            .map(|v| wasmoci_spec::deps::tags::tag(&v))
            .unwrap_or_else(|_| package.version.clone());
        let tag = format!("{repository}:{version}");
        crate::ops::copy::copy(
            client,
            crate::ops::artifact::Endpoint::Local(
                layout.clone(),
                wasmoci_registry::LayoutRef::Digest(digest),
            ),
            &format!("{repository}@{digest}"),
            crate::ops::artifact::Endpoint::Local(
                target.clone(),
                wasmoci_registry::LayoutRef::Tag(tag.clone()),
            ),
            &format!("oci:{}:{tag}", dir.display()),
        )
        .map_err(|e| DepsError::Store(Box::new(e)))?;
        artifacts.push(format!("oci:{}:{tag}@{digest}", dir.display()));
    }
    Ok(VendorReport {
        layout: dir.to_owned(),
        artifacts,
    })
}

/// `dependency build --offline`: the lock is this project's and the store has every
/// package it pins (manifest and wasm layer), taking what it lacks from the project's
/// `vendor/` layout when there is one; nothing goes to a registry.
pub fn offline_build(project: &Project, layout: &Layout) -> Result<BuildReport> {
    let lock = check_lock(project)?;
    let vendored = Layout::at(project.dir.join(VENDOR_DIR));
    let mut missing = Vec::new();
    for package in &lock.packages {
        if !package.source.starts_with("path+")
            && !in_store(package, layout)
            && !from_vendor(package, &vendored, layout)
        {
            missing.push(format!("{}@{}", package.name, package.version));
        }
    }
    if !missing.is_empty() {
        return Err(DepsError::Offline(missing.join(", ")));
    }
    let wit = write_wit(project, layout, &lock.packages)?;
    Ok(BuildReport {
        packages: lock.packages,
        fetched: 0,
        wit,
    })
}
