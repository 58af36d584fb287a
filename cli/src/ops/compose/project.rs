//! `[compose]` in a project: `wasmoci build` composes the component it built with the
//! dependencies the lock pins, by plugging or by a WAC document (where the built
//! component is the package [`ROOT_PACKAGE`]).

use std::path::Path;

use wasmoci_spec::Digest;

use super::inputs::{self, Locked};
use super::{Component, ComposeOptions, ComposedFrom, Composition, compose_plugs, compose_wac};
use crate::ops::deps::lock::Lock;
use crate::ops::deps::resolve::read_lock;
use crate::ops::{Error, Result};
use crate::project::ComposeSection;

/// The package a project's WAC document names its own component by.
pub const ROOT_PACKAGE: &str = "root:component";

/// Composes `built` (the project `name`@`version` in `dir`) as `section` says, with the
/// dependencies `lock` pins (the project's `wasmoci.lock` when `None`), from `layout`.
pub fn compose_project(
    dir: &Path,
    section: &ComposeSection,
    (name, version): (&str, Option<&str>),
    built: &[u8],
    layout: &wasmoci_registry::Layout,
    lock: Option<&Lock>,
) -> Result<Composition> {
    let read;
    let lock = match lock {
        Some(lock) => Some(lock),
        None => {
            read = read_lock(dir).map_err(|e| Error::Dependencies(Box::new(e)))?;
            read.as_ref()
        }
    };
    let locked = lock.map(|lock| Locked { lock, dir, layout });
    let root = Component {
        shown: name.to_owned(),
        bytes: built.to_vec(),
        from: ComposedFrom {
            name: name.to_owned(),
            version: version.map(str::to_owned),
            manifest: None,
            layer: Digest::of(built).to_string(),
        },
    };
    let composed = match &section.wac {
        Some(wac) => {
            let path = dir.join(wac);
            let source = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                name: path.display().to_string(),
                source: Box::new(source),
            })?;
            let deps_dir = path.parent().unwrap_or(dir).join("deps");
            let mut find = |package: &str, version: Option<&semver::Version>| {
                if package == ROOT_PACKAGE {
                    return Ok(root.clone());
                }
                inputs::package(package, version, &[], locked.as_ref(), &deps_dir)
            };
            compose_wac(&path, &source, &mut find, ComposeOptions::default())
        }
        None => {
            let mut plugs = Vec::new();
            for plug in &section.plug {
                plugs.push(inputs::named(plug, locked.as_ref())?);
            }
            compose_plugs(root, plugs, ComposeOptions::default())
        }
    };
    composed.map_err(|e| Error::Compose(Box::new(e)))
}
