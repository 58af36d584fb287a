//! `semver-check`: whether NEW's WIT keeps OLD's promises within a semver-compatible
//! version (what `wkg publish` checks), with `wit_component::semver_check` doing the
//! work: OLD's world as a component must fit where NEW's world is expected. Each item
//! of the world (import or export) is checked alone too, so every break is listed, with
//! the validator's reason.

use serde::Serialize;
use wit_component::DecodedWasm;
use wit_parser::{PackageId, Resolve, World, WorldId, WorldItem, WorldKey};

/// The world used for a WIT package without worlds: every interface, exported.
const ALL_INTERFACES: &str = "all-interfaces";

/// One break.
#[derive(Debug, Clone, Serialize)]
pub struct Break {
    /// `import `name``, `export `name``, or `the world`.
    pub item: String,
    /// Why.
    pub reason: String,
}

/// What the check found.
#[derive(Debug, Clone, Serialize)]
pub struct SemverReport {
    /// The world compared.
    pub world: String,
    /// Whether NEW keeps OLD's promises.
    pub compatible: bool,
    /// Every break.
    pub breaks: Vec<Break>,
}

impl SemverReport {
    /// One line per break: `ITEM: REASON`.
    pub fn break_lines(&self) -> Vec<String> {
        self.breaks
            .iter()
            .map(|b| format!("{}: {}", b.item, b.reason))
            .collect()
    }
}

/// An input that cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum SemverError {
    /// Not a component or WIT package.
    #[error("`{name}` is not a component or a WIT package: {reason}")]
    Decode {
        /// As named.
        name: String,
        /// The decoder's reason.
        reason: String,
    },
    /// The world to compare cannot be chosen.
    #[error("`{name}`: {reason}")]
    World {
        /// As named.
        name: String,
        /// Why.
        reason: String,
    },
    /// The two cannot be put side by side.
    #[error("failed to compare `{old}` with `{new}`: {reason}")]
    Merge {
        /// OLD as named.
        old: String,
        /// NEW as named.
        new: String,
        /// Why.
        reason: String,
    },
}

/// A decoded input: its WIT, the world compared, the package it is in.
fn world_of(
    name: &str,
    bytes: &[u8],
    world: Option<&str>,
) -> Result<(Resolve, WorldId), SemverError> {
    if wasmoci_spec::WasmKind::detect(bytes) != Some(wasmoci_spec::WasmKind::Component) {
        return Err(SemverError::Decode {
            name: name.to_owned(),
            reason: "it is not a component (a core module has no WIT to compare)".into(),
        });
    }
    let decoded = wit_component::decode(bytes).map_err(|e| SemverError::Decode {
        name: name.to_owned(),
        reason: format!("{e:#}"),
    })?;
    match decoded {
        DecodedWasm::Component(resolve, id) => Ok((resolve, id)),
        DecodedWasm::WitPackage(mut resolve, package) => {
            let worlds = &resolve.packages[package].worlds;
            let chosen = match world {
                Some(w) => worlds.get(w).copied().ok_or_else(|| SemverError::World {
                    name: name.to_owned(),
                    reason: format!(
                        "no world `{w}` (it has {})",
                        listed(worlds.keys().map(String::as_str))
                    ),
                })?,
                None if worlds.len() == 1 => worlds[0],
                None if worlds.is_empty() => all_interfaces(&mut resolve, package),
                None => {
                    return Err(SemverError::World {
                        name: name.to_owned(),
                        reason: format!(
                            "several worlds ({}): choose one with `--world`",
                            listed(worlds.keys().map(String::as_str))
                        ),
                    });
                }
            };
            Ok((resolve, chosen))
        }
    }
}

fn listed<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A world exporting every interface of `package`.
fn all_interfaces(resolve: &mut Resolve, package: PackageId) -> WorldId {
    let exports = resolve.packages[package]
        .interfaces
        .values()
        .map(|id| {
            (
                WorldKey::Interface(*id),
                WorldItem::Interface {
                    id: *id,
                    stability: Default::default(),
                    span: Default::default(),
                    docs: Default::default(),
                    external_id: None,
                },
            )
        })
        .collect();
    add_world(
        resolve,
        world(ALL_INTERFACES, package, Default::default(), exports),
    )
}

/// Adds `world` to its package.
fn add_world(resolve: &mut Resolve, mut world: World) -> WorldId {
    let package = world.package.expect("our worlds are in packages");
    let mut name = world.name.clone();
    let mut n = 0;
    while resolve.packages[package].worlds.contains_key(&name) {
        n += 1;
        name = format!("{}-{n}", world.name);
    }
    world.name = name.clone();
    let id = resolve.worlds.alloc(world);
    resolve.packages[package].worlds.insert(name, id);
    id
}

fn world(
    name: &str,
    package: PackageId,
    imports: indexmap::IndexMap<WorldKey, WorldItem>,
    exports: indexmap::IndexMap<WorldKey, WorldItem>,
) -> World {
    World {
        name: name.to_owned(),
        imports,
        exports,
        package: Some(package),
        docs: Default::default(),
        stability: Default::default(),
        includes: Vec::new(),
        span: Default::default(),
    }
}

/// The checker's error on one line, without its scaffolding (the synthetic `item` world).
fn one_line(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let text = text
        .strip_prefix("new world is not semver-compatible with the previous world: ")
        .unwrap_or(&text);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("type mismatch for import `item"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A key's name without the package version: `acme:greet/greeter`, or a plain name.
fn unversioned(resolve: &Resolve, key: &WorldKey) -> String {
    let name = resolve.name_world_key(key);
    match name.split_once('@') {
        Some((base, _)) => base.to_owned(),
        None => name,
    }
}

/// Compares OLD (`old`, named `old_name`) with NEW.
pub fn semver_check(
    (old_name, old): (&str, &[u8]),
    (new_name, new): (&str, &[u8]),
    world_name: Option<&str>,
) -> Result<SemverReport, SemverError> {
    let (mut resolve, old_world) = world_of(old_name, old, world_name)?;
    let (mut other, new_world) = world_of(new_name, new, world_name)?;
    // NEW's packages under versions of their own, so merging keeps them apart from
    // OLD's (the check compares names without versions).
    let ids: Vec<PackageId> = other.packages.iter().map(|(id, _)| id).collect();
    other.package_names.clear();
    for id in ids {
        let name = &mut other.packages[id].name;
        let mut version = name
            .version
            .clone()
            .unwrap_or(semver::Version::new(0, 0, 0));
        version.pre =
            semver::Prerelease::new("wasmoci-semver-check-new").expect("a valid pre-release");
        name.version = Some(version);
        let renamed = name.clone();
        other.package_names.insert(renamed, id);
    }
    let merge_error = |e: anyhow::Error| SemverError::Merge {
        old: old_name.to_owned(),
        new: new_name.to_owned(),
        reason: format!("{e:#}"),
    };
    let remap = resolve.merge(other).map_err(merge_error)?;
    let new_world = remap
        .map_world(new_world, Default::default())
        .map_err(|e| merge_error(e.into()))?;
    let shown = resolve.worlds[old_world].name.clone();
    // NEW must fit wherever OLD was expected: NEW is the component given, OLD the shape.
    let whole = wit_component::semver_check(resolve.clone(), new_world, old_world);
    let mut breaks = Vec::new();
    if whole.is_err() {
        breaks = item_breaks(&mut resolve, old_world, new_world);
        if breaks.is_empty()
            && let Err(e) = whole
        {
            breaks.push(Break {
                item: "the world".into(),
                reason: one_line(&e),
            });
        }
    }
    Ok(SemverReport {
        world: shown,
        compatible: breaks.is_empty(),
        breaks,
    })
}

/// Each import and export of OLD checked alone against NEW's item of that name; imports
/// NEW adds are breaks too (a consumer must now provide them).
fn item_breaks(resolve: &mut Resolve, old: WorldId, new: WorldId) -> Vec<Break> {
    let package =
        |w: WorldId, r: &Resolve| r.worlds[w].package.expect("decoded worlds are in packages");
    let (old_package, new_package) = (package(old, resolve), package(new, resolve));
    let mut breaks = Vec::new();
    for exported in [false, true] {
        let side = |w: WorldId, r: &Resolve| {
            let items = if exported {
                &r.worlds[w].exports
            } else {
                &r.worlds[w].imports
            };
            items
                .iter()
                .map(|(k, v)| (unversioned(r, k), (k.clone(), v.clone())))
                .collect::<Vec<_>>()
        };
        let (olds, news) = (side(old, resolve), side(new, resolve));
        let kind = if exported { "export" } else { "import" };
        for (name, (key, item)) in &olds {
            let Some((_, (new_key, new_item))) = news.iter().find(|(n, _)| n == name) else {
                if exported {
                    breaks.push(Break {
                        item: format!("{kind} `{name}`"),
                        reason: "NEW no longer has it".into(),
                    });
                }
                continue;
            };
            let single =
                |k: &WorldKey, i: &WorldItem| indexmap::IndexMap::from([(k.clone(), i.clone())]);
            let (a, b) = if exported {
                (
                    world("item", old_package, Default::default(), single(key, item)),
                    world(
                        "item",
                        new_package,
                        Default::default(),
                        single(new_key, new_item),
                    ),
                )
            } else {
                (
                    world("item", old_package, single(key, item), Default::default()),
                    world(
                        "item",
                        new_package,
                        single(new_key, new_item),
                        Default::default(),
                    ),
                )
            };
            let (a, b) = (add_world(resolve, a), add_world(resolve, b));
            if let Err(e) = wit_component::semver_check(resolve.clone(), b, a) {
                breaks.push(Break {
                    item: format!("{kind} `{name}`"),
                    reason: one_line(&e),
                });
            }
        }
        if !exported {
            for (name, _) in &news {
                if !olds.iter().any(|(n, _)| n == name) {
                    breaks.push(Break {
                        item: format!("import `{name}`"),
                        reason: "NEW adds it: whoever provided OLD's imports does not provide it"
                            .into(),
                    });
                }
            }
        }
    }
    breaks
}

/// The release `publish` compares with: the newest earlier release in `dest`'s repository
/// that `dest`'s version is semver-compatible with (`^EARLIER` admits it), as `wkg
/// publish` picks it. `None` when `dest`'s tag is no version, or there is none.
pub fn previous_release(
    client: &wasmoci_registry::client::Client,
    dest: &wasmoci_registry::Reference,
) -> crate::ops::Result<Option<wasmoci_registry::Reference>> {
    use wasmoci_spec::deps::tags;
    let Some(version) = dest.tag.as_deref().and_then(tags::version) else {
        return Ok(None);
    };
    let mut repository = dest.clone();
    repository.tag = None;
    repository.digest = None;
    let listed = match client.tags(&repository) {
        Ok(listed) => listed,
        // A repository nobody published to yet has no earlier release.
        Err(wasmoci_registry::client::RegistryError::NotFound { .. }) => return Ok(None),
        Err(e) => {
            return Err(crate::ops::Error::Tags {
                repository: Box::new(repository),
                source: Box::new(e),
            });
        }
    };
    let earlier = listed
        .into_iter()
        .filter_map(|t| tags::version(&t).map(|v| (v, t)))
        .filter(|(v, _)| v.pre.is_empty() && *v < version)
        .filter(|(v, _)| {
            semver::VersionReq::parse(&format!("^{v}")).is_ok_and(|req| req.matches(&version))
        })
        .max_by(|a, b| a.0.cmp(&b.0));
    Ok(earlier.map(|(_, tag)| {
        let mut at = repository;
        at.tag = Some(tag);
        at
    }))
}
