//! `semver-check`: whether NEW's WIT keeps OLD's promises within a semver-compatible
//! version, with `wit_component::semver_check` doing the work. A component NEW must fit
//! wherever OLD was used (it may export more and import less); a WIT package's world is
//! a contract compared as `wkg publish` does (NEW may import more and export less). Each
//! item of the world (import or export) is checked alone too, so every break is listed,
//! with the validator's reason.

use serde::Serialize;
use wit_component::DecodedWasm;
use wit_parser::{InterfaceId, PackageId, Resolve, World, WorldId, WorldItem, WorldKey};

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
) -> Result<(Resolve, WorldId, bool), SemverError> {
    if wasmoci_spec::WasmKind::detect(bytes) != Some(wasmoci_spec::WasmKind::Component) {
        return Err(SemverError::Decode {
            name: name.to_owned(),
            reason: "it is not a component (a core module has no WIT to compare)".into(),
        });
    }
    let decoded = wasmoci_spec::decode_wit(bytes).map_err(|e| SemverError::Decode {
        name: name.to_owned(),
        reason: e.to_string(),
    })?;
    match decoded {
        DecodedWasm::Component(..) if world.is_some() => Err(SemverError::World {
            name: name.to_owned(),
            reason: "`--world` is for WIT packages: a component is compared by its own world"
                .into(),
        }),
        DecodedWasm::Component(resolve, id) => Ok((resolve, id, true)),
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
            Ok((resolve, chosen, false))
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
        .map(|id| (WorldKey::Interface(*id), interface_item(*id)))
        .collect();
    let all = world(
        resolve,
        ALL_INTERFACES,
        package,
        Default::default(),
        exports,
    );
    add_world(resolve, all)
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
    resolve: &Resolve,
    name: &str,
    package: PackageId,
    imports: indexmap::IndexMap<WorldKey, WorldItem>,
    exports: indexmap::IndexMap<WorldKey, WorldItem>,
) -> World {
    // As wit-parser elaborates a world: the interfaces the items' types come from (`use`)
    // are imported first, or encoding the world fails.
    fn visit(
        resolve: &Resolve,
        id: InterfaceId,
        seen: &mut std::collections::HashSet<InterfaceId>,
        order: &mut Vec<InterfaceId>,
    ) {
        for dep in resolve.interface_direct_deps(id) {
            if seen.insert(dep) {
                visit(resolve, dep, seen, order);
                order.push(dep);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut order = Vec::new();
    for item in imports.values().chain(exports.values()) {
        if let WorldItem::Interface { id, .. } = item {
            visit(resolve, *id, &mut seen, &mut order);
        }
    }
    let mut elaborated = indexmap::IndexMap::new();
    for dep in order {
        let key = WorldKey::Interface(dep);
        if !imports.contains_key(&key) && !exports.contains_key(&key) {
            elaborated.insert(key, interface_item(dep));
        }
    }
    elaborated.extend(imports);
    World {
        name: name.to_owned(),
        imports: elaborated,
        exports,
        package: Some(package),
        docs: Default::default(),
        stability: Default::default(),
        includes: Vec::new(),
        span: Default::default(),
    }
}

fn interface_item(id: InterfaceId) -> WorldItem {
    WorldItem::Interface {
        id,
        stability: Default::default(),
        span: Default::default(),
        docs: Default::default(),
        external_id: None,
    }
}

/// `wit_component::semver_check`, with a panic inside it (it has index panics on worlds
/// it cannot encode) turned into an error.
fn checked(resolve: &Resolve, given: WorldId, expected: WorldId) -> anyhow::Result<()> {
    let resolve = resolve.clone();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        wit_component::semver_check(resolve, given, expected)
    }))
    .unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "the WIT could not be compared (wit-component failed)"
        ))
    })
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
    let (mut resolve, old_world, component) = world_of(old_name, old, world_name)?;
    let (mut other, new_world, _) = world_of(new_name, new, world_name)?;
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
    // A component: NEW must fit wherever OLD was used (NEW given, OLD's shape expected).
    // A WIT package's world is a contract, compared as wkg does: NEW may import more and
    // export less than OLD (`semver_check(OLD, NEW)`).
    let (given, expected) = if component {
        (new_world, old_world)
    } else {
        (old_world, new_world)
    };
    let whole = checked(&resolve, given, expected);
    let mut breaks = Vec::new();
    if whole.is_err() {
        breaks = item_breaks(&mut resolve, old_world, new_world, component);
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

/// Each import and export of OLD checked alone against NEW's item of that name, in the
/// direction the whole was; for a component, imports NEW adds are breaks too (whoever
/// provided OLD's imports does not provide them).
fn item_breaks(resolve: &mut Resolve, old: WorldId, new: WorldId, component: bool) -> Vec<Break> {
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
            let (old_one, new_one) = (single(key, item), single(new_key, new_item));
            let (a, b) = if exported {
                (
                    world(resolve, "item", old_package, Default::default(), old_one),
                    world(resolve, "item", new_package, Default::default(), new_one),
                )
            } else {
                (
                    world(resolve, "item", old_package, old_one, Default::default()),
                    world(resolve, "item", new_package, new_one, Default::default()),
                )
            };
            let (a, b) = (add_world(resolve, a), add_world(resolve, b));
            let (given, expected) = if component { (b, a) } else { (a, b) };
            if let Err(e) = checked(resolve, given, expected) {
                breaks.push(Break {
                    item: format!("{kind} `{name}`"),
                    reason: one_line(&e),
                });
            }
        }
        if !exported && component {
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
