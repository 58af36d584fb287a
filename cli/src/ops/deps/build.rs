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
            let bytes = read_local(project, package)?;
            if Digest::of(&bytes).to_string() != package.layer {
                let (path, line) = local_entry(project, package);
                return Err(DepsError::LocalChanged { path, line });
            }
            continue;
        };
        let digest: Digest = manifest.parse().map_err(|e| DepsError::Manifest {
            reference: format!("{repository}@{manifest}"),
            reason: format!("{e}"),
        })?;
        let reference = pinned_reference(repository, &digest)?;
        let (manifest, _, bytes) = fetch_manifest(client, &reference)?;
        let (layer, _, _) = fetch(&update, layout, repository, &digest, &manifest, &bytes)?;
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
            Some(_) => read_local(project, package)?,
            None => layout
                .read_blob(&digest)
                .map_err(|e| DepsError::Store(Box::new(crate::ops::Error::Layout(Box::new(e)))))?,
        };
        let Ok(wit_component::DecodedWasm::WitPackage(resolve, _)) =
            wasmoci_spec::decode_wit(&wasm)
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

/// A locked local file's path (relative to the project) and its entry's line.
fn local_entry(project: &Project, package: &LockedPackage) -> (PathBuf, usize) {
    let path = PathBuf::from(package.source.strip_prefix("path+").unwrap_or_default());
    let line = project
        .dependencies
        .iter()
        .find(|d| {
            d.package == package.name && package.alias.as_deref() == d.renamed.then_some(&*d.key)
        })
        .map_or(0, |d| d.line);
    (path, line)
}

/// The bytes of a locked local file.
fn read_local(project: &Project, package: &LockedPackage) -> Result<Vec<u8>> {
    let (path, line) = local_entry(project, package);
    std::fs::read(project.dir.join(&path)).map_err(|source| DepsError::Path { path, line, source })
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
    /// The OCI image layout, or the registry prefix mirrored to.
    pub to: String,
    /// Each artifact, as `oci:DIR:TAG@DIGEST`.
    pub artifacts: Vec<String>,
}

/// Where `dependency vendor` puts the locked closure.
pub enum VendorTo<'a> {
    /// An OCI image layout, each artifact tagged `REPO:VERSION`.
    Layout(&'a Path),
    /// Another registry: each package at `PREFIX<ns>/<name>:<version>` (wkg's naming).
    Registry(&'a str),
}

/// Carries the referrers and signatures of `digest` from `from`'s repository to `dest`.
fn carry_to(
    client: &Client,
    digest: Digest,
    from: &wasmoci_registry::Reference,
    dest: &crate::ops::artifact::Endpoint,
    name: &str,
) -> crate::ops::Result<Vec<crate::ops::carry::Carried>> {
    use crate::ops::artifact::Endpoint;
    use crate::ops::carry::{End, carry};
    let to = match dest {
        Endpoint::Registry(r) => End::Registry(r),
        Endpoint::Local(layout, _) => End::Layout(layout, name),
    };
    carry(client, digest, &End::Registry(from), &to)
}

/// `dependency vendor`: the locked closure (fetched first where the store lacks it) as
/// an OCI image layout, for `--offline` builds without the registries (skopeo and oras
/// read it too), or mirrored to another registry; digests are kept either way.
pub fn vendor(
    project: &Project,
    client: &Client,
    layout: &Layout,
    to: &VendorTo<'_>,
    referrers: bool,
) -> Result<VendorReport> {
    let built = build_locked(project, client, layout)?;
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
        let (dest, dest_text) = match to {
            VendorTo::Layout(dir) => {
                let tag = format!("{repository}:{version}");
                (
                    crate::ops::artifact::Endpoint::Local(
                        Layout::at(dir),
                        wasmoci_registry::LayoutRef::Tag(tag.clone()),
                    ),
                    format!("oci:{}:{tag}", dir.display()),
                )
            }
            VendorTo::Registry(prefix) => {
                let text = format!(
                    "{}:{version}",
                    super::manifest::repository_under(prefix, &package.name)
                );
                let reference = text.parse().map_err(|e| DepsError::Manifest {
                    reference: text.clone(),
                    reason: format!("{e}"),
                })?;
                (crate::ops::artifact::Endpoint::Registry(reference), text)
            }
        };
        crate::ops::copy::copy(
            client,
            crate::ops::artifact::Endpoint::Local(
                layout.clone(),
                wasmoci_registry::LayoutRef::Digest(digest),
            ),
            &format!("{repository}@{digest}"),
            dest.clone(),
            &dest_text,
            false,
        )
        .map_err(|e| DepsError::Store(Box::new(e)))?;
        artifacts.push(format!("{dest_text}@{digest}"));
        if referrers {
            // From the registry the lock names (the store keeps no referrers).
            let from = pinned_reference(repository, &digest)?;
            let carried = carry_to(client, digest, &from, &dest, repository)
                .map_err(|e| DepsError::Store(Box::new(e)))?;
            artifacts.extend(carried.into_iter().map(|c| c.reference));
        }
    }
    Ok(VendorReport {
        to: match to {
            VendorTo::Layout(dir) => dir.display().to_string(),
            VendorTo::Registry(prefix) => (*prefix).to_owned(),
        },
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
