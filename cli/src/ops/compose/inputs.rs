//! Where composition inputs come from: a name on the command line (`FILE.wasm|.wat`,
//! `oci:DIR:TAG`, `NAME:TAG` in the store, `HOST/REPO:TAG|@sha256:…` pulled first) or a
//! dependency of the project's lock (then the locked layer digest is what is read, and
//! checked); for a WAC document's packages, `--dep`, then the lock, then `deps/` beside
//! the document (`deps/<ns>/<pkg>.wasm`, `deps/<ns>/<pkg>/<version>.wasm`, as wac).

use std::path::{Path, PathBuf};

use semver::Version;
use wasmoci_registry::Layout;
use wasmoci_spec::{Digest, annotations};

use super::{Component, ComposedFrom};
use crate::ops::artifact::{Loaded, load};
use crate::ops::deps::lock::{Lock, LockedPackage};
use crate::ops::{Error, Result};
use crate::reference::ArtifactRef;

/// The lock of the project composing, and the store holding what it pins.
pub struct Locked<'a> {
    /// `wasmoci.lock`.
    pub lock: &'a Lock,
    /// The project directory (for `path+` entries).
    pub dir: &'a Path,
    /// The store.
    pub layout: &'a Layout,
}

impl Locked<'_> {
    /// The locked package `name` is (its name or its alias), at `version` if given.
    /// An alias first, then the package's own (unaliased) entry; a name only renamed
    /// entries have matches when there is one of them, else nothing (ambiguous).
    pub fn find(&self, name: &str, version: Option<&Version>) -> Option<&LockedPackage> {
        let at = |p: &&LockedPackage| version.is_none_or(|v| p.version == v.to_string());
        let packages = || self.lock.packages.iter().filter(at);
        packages()
            .find(|p| p.alias.as_deref() == Some(name))
            .or_else(|| packages().find(|p| p.name == name && p.alias.is_none()))
            .or_else(|| {
                let mut named = packages().filter(|p| p.name == name);
                match (named.next(), named.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            })
    }

    /// The component of a locked package: its layer from the store (or its file), checked
    /// against the lock's digest.
    pub fn component(&self, package: &LockedPackage) -> Result<Component> {
        let shown = package
            .alias
            .clone()
            .unwrap_or_else(|| package.name.clone());
        let invalid = |reason: String| {
            Error::Compose(Box::new(super::ComposeError::Locked {
                name: shown.clone(),
                reason,
            }))
        };
        let layer: Digest = package
            .layer
            .parse()
            .map_err(|e| invalid(format!("its locked layer digest is invalid: {e}")))?;
        let bytes = match package.source.strip_prefix("path+") {
            Some(path) => {
                let bytes = std::fs::read(self.dir.join(path)).map_err(|e| {
                    invalid(format!("failed to read `{path}`: {e}"))
                })?;
                if Digest::of(&bytes) != layer {
                    return Err(invalid(format!(
                        "`{path}` changed since it was locked (run `wasmoci dependency update`)"
                    )));
                }
                bytes
            }
            None => self.layout.read_blob(&layer).map_err(|e| {
                invalid(format!(
                    "its layer `{layer}` is not in the store as locked ({e}): run `wasmoci dependency build`"
                ))
            })?,
        };
        Ok(Component {
            shown: shown.clone(),
            bytes,
            from: ComposedFrom {
                name: shown,
                version: Some(package.version.clone()),
                manifest: package.manifest.clone(),
                layer: layer.to_string(),
            },
        })
    }
}

/// The component an argument names: a locked dependency when `locked` has one by that
/// name, else an artifact reference (pulled already, when it names a registry).
pub fn named(text: &str, locked: Option<&Locked<'_>>) -> Result<Component> {
    if let Some(package) = locked.and_then(|l| l.find(text, None)) {
        return locked.map_or_else(|| unreachable!(), |l| l.component(package));
    }
    let reference: ArtifactRef = text.parse()?;
    artifact(text, &reference)
}

/// The component of an artifact reference.
pub fn artifact(shown: &str, reference: &ArtifactRef) -> Result<Component> {
    match load(reference)? {
        Loaded::File { path, bytes } => {
            // The file's name, not its path: the same file composes the same anywhere.
            let name = path
                .file_name()
                .map_or_else(|| shown.to_owned(), |n| n.to_string_lossy().into_owned());
            Ok(Component {
                shown: shown.to_owned(),
                bytes,
                from: ComposedFrom {
                    name,
                    version: None,
                    manifest: None,
                    // Hashed when the composition is described.
                    layer: String::new(),
                },
            })
        }
        Loaded::Stored(parts) => {
            let version = parts.manifest.as_ref().ok().and_then(|m| {
                m.annotations
                    .as_ref()
                    .and_then(|a| a.get(annotations::VERSION).cloned())
            });
            let wasm = parts.wasm()?;
            Ok(Component {
                shown: shown.to_owned(),
                from: ComposedFrom {
                    name: shown.to_owned(),
                    version,
                    manifest: Some(parts.stored.descriptor.digest.to_string()),
                    layer: wasm.digest.to_string(),
                },
                bytes: wasm.bytes,
            })
        }
    }
}

/// A WAC document's package `name` (at `version`): from `deps` (`ns:pkg=ARTIFACT`, or
/// `ns:pkg@version=…`), then `locked`, then `deps_dir`. `Err`: where it looked.
pub fn package(
    name: &str,
    version: Option<&Version>,
    deps: &[(String, String)],
    locked: Option<&Locked<'_>>,
    deps_dir: &Path,
) -> std::result::Result<Component, String> {
    let full = version.map_or_else(|| name.to_owned(), |v| format!("{name}@{v}"));
    let mut looked = Vec::new();
    if let Some((_, artifact)) = deps.iter().find(|(key, _)| *key == full || *key == name) {
        return named_for(&full, artifact, locked);
    }
    looked.push("`--dep`".to_owned());
    match locked {
        Some(l) => {
            if let Some(package) = l.find(name, version) {
                return l.component(package).map_err(|e| e.to_string());
            }
            looked.push(format!("`{}`", l.dir.join("wasmoci.lock").display()));
        }
        None => looked.push("no `wasmoci.lock`".to_owned()),
    }
    let (ns, pkg) = name.split_once(':').unwrap_or((name, name));
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(v) = version {
        candidates.push(deps_dir.join(ns).join(pkg).join(format!("{v}.wasm")));
    }
    candidates.push(deps_dir.join(ns).join(format!("{pkg}.wasm")));
    for path in &candidates {
        if path.is_file() {
            let text = path.display().to_string();
            return named_for(&full, &text, None);
        }
        looked.push(format!("`{}`", path.display()));
    }
    Err(looked.join(", "))
}

fn named_for(
    shown: &str,
    text: &str,
    locked: Option<&Locked<'_>>,
) -> std::result::Result<Component, String> {
    let mut component = named(text, locked).map_err(|e| format!("`{text}`: {e}"))?;
    component.shown = shown.to_owned();
    component.from.name = shown.to_owned();
    Ok(component)
}
