//! Plugging: each plug's exports fill the imports of the socket, and of the other plugs,
//! that they match: the same name, else a semver-compatible one (`@1.2.0` for `@1.0.0`),
//! and only when the export's type is a subtype of the import's. A plug is instantiated
//! once, however many imports it fills, and only if it fills one; plugs never form a
//! cycle. What no plug fills stays an import of the composition, for the host.
//!
//! Unlike `wac plug`, plugs fill each other's imports (a chain socket → middle → logger
//! needs no WAC), and a plug that fills nothing is an error that says, per import, which
//! exports came close and why each did not fit.

use std::collections::{HashMap, VecDeque};

use wac_graph::{CompositionGraph, NodeId, PackageId};
use wac_types::{ItemKind, SubtypeChecker, are_semver_compatible};

use super::error::ComposeError;

/// A component registered in the graph, and the name people know it by.
#[derive(Debug, Clone)]
pub(super) struct Registered {
    pub(super) id: PackageId,
    pub(super) shown: String,
}

/// An export that came close to an import.
struct Candidate {
    /// Index into the plugs.
    plug: usize,
    export: String,
    /// Whether it fits, and why not.
    fits: Result<(), String>,
    exact: bool,
}

/// One import of one instance, and what was offered for it.
struct Wanted {
    consumer: String,
    import: String,
    candidates: Vec<Candidate>,
    chosen: Option<usize>,
}

/// How a candidate refused for closing a circle says so.
const CYCLE: &str = "it would form a cycle: ";

/// `name@version` → (`name`, `version`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once('@') {
        Some((base, version)) => (base, Some(version)),
        None => (name, None),
    }
}

/// Whether plug `from` needs `to` (directly or through other plugs).
fn reaches(needs: &HashMap<usize, Vec<usize>>, from: usize, to: usize) -> bool {
    let mut seen = vec![from];
    let mut stack = vec![from];
    while let Some(at) = stack.pop() {
        for &next in needs.get(&at).into_iter().flatten() {
            if next == to {
                return true;
            }
            if !seen.contains(&next) {
                seen.push(next);
                stack.push(next);
            }
        }
    }
    false
}

/// Plugs `plugs` into `socket` (all registered in `graph`) and exports what the socket
/// exports.
pub(super) fn plug(
    graph: &mut CompositionGraph,
    socket: &Registered,
    plugs: &[Registered],
) -> Result<(), ComposeError> {
    let graph_error = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        ComposeError::Encode(text)
    };
    let socket_node = graph.instantiate(socket.id);
    let mut instances: HashMap<usize, NodeId> = HashMap::new();
    let mut needs: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut queue: VecDeque<(Option<usize>, NodeId)> = VecDeque::from([(None, socket_node)]);
    let mut record: Vec<Wanted> = Vec::new();
    let mut cache = Default::default();
    while let Some((consumer, node)) = queue.pop_front() {
        let (package, shown) = match consumer {
            None => (socket.id, &socket.shown),
            Some(i) => (plugs[i].id, &plugs[i].shown),
        };
        let imports: Vec<(String, ItemKind)> = graph.types()[graph[package].ty()]
            .imports
            .iter()
            .map(|(name, kind)| (name.clone(), *kind))
            .collect();
        for (import, wanted) in imports {
            let (import_base, import_version) = split_version(&import);
            let mut candidates = Vec::new();
            for (i, plug) in plugs.iter().enumerate() {
                if Some(i) == consumer {
                    continue;
                }
                let exports = &graph.types()[graph[plug.id].ty()].exports;
                for (export, offered) in exports {
                    let (base, version) = split_version(export);
                    if base != import_base {
                        continue;
                    }
                    let exact = *export == import;
                    let fits = if !exact && !are_semver_compatible(export, &import) {
                        Err(format!(
                            "version `{}` is not semver-compatible with `{}`",
                            version.unwrap_or("(none)"),
                            import_version.unwrap_or("(none)")
                        ))
                    } else if consumer.is_some_and(|c| reaches(&needs, i, c)) {
                        Err(format!("{CYCLE}`{}` already needs `{shown}`", plug.shown))
                    } else {
                        SubtypeChecker::new(&mut cache)
                            .is_subtype(*offered, graph.types(), wanted, graph.types())
                            .map_err(|e| format!("{e:#}"))
                    };
                    candidates.push(Candidate {
                        plug: i,
                        export: export.clone(),
                        fits,
                        exact,
                    });
                }
            }
            // The same name first, then a compatible version; command-line order within.
            let chosen = candidates
                .iter()
                .filter(|c| c.fits.is_ok())
                .min_by_key(|c| (!c.exact, c.plug))
                .map(|c| (c.plug, c.export.clone()));
            // Only a plug that would close a circle fits: that is an error, not an
            // import left to the host.
            if chosen.is_none()
                && let Some(c) = candidates.iter().find(|c| {
                    c.fits
                        .as_ref()
                        .is_err_and(|reason| reason.starts_with(CYCLE))
                })
            {
                return Err(ComposeError::Cycle(format!(
                    "`{shown}` imports `{import}`, which only `{}` exports, and `{}` needs `{shown}` (directly or through other plugs)",
                    plugs[c.plug].shown, plugs[c.plug].shown
                )));
            }
            if let Some((i, export)) = &chosen {
                let plug_node = match instances.get(i) {
                    Some(node) => *node,
                    None => {
                        let node = graph.instantiate(plugs[*i].id);
                        instances.insert(*i, node);
                        queue.push_back((Some(*i), node));
                        node
                    }
                };
                let alias = graph
                    .alias_instance_export(plug_node, export)
                    .map_err(|e| graph_error(&e))?;
                graph
                    .set_instantiation_argument(node, &import, alias)
                    .map_err(|e| graph_error(&e))?;
                if let Some(c) = consumer {
                    needs.entry(c).or_default().push(*i);
                }
            }
            record.push(Wanted {
                consumer: shown.clone(),
                import,
                candidates,
                chosen: chosen.map(|(i, _)| i),
            });
        }
    }
    if let Some(unused) = (0..plugs.len()).find(|i| !instances.contains_key(i)) {
        return Err(unplugged(graph, socket, plugs, unused, &record));
    }
    let exports: Vec<String> = graph.types()[graph[socket.id].ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in exports {
        let export = graph
            .alias_instance_export(socket_node, &name)
            .map_err(|e| graph_error(&e))?;
        graph.export(export, &name).map_err(|e| graph_error(&e))?;
    }
    Ok(())
}

/// Why plug `unused` filled nothing: per import it came close to, its export and why it
/// did not fit (or who filled the import first); else what it exports and what was
/// imported.
fn unplugged(
    graph: &CompositionGraph,
    socket: &Registered,
    plugs: &[Registered],
    unused: usize,
    record: &[Wanted],
) -> ComposeError {
    let name = &plugs[unused].shown;
    let mut lines = Vec::new();
    for wanted in record {
        let mine: Vec<&Candidate> = wanted
            .candidates
            .iter()
            .filter(|c| c.plug == unused)
            .collect();
        if mine.is_empty() {
            continue;
        }
        lines.push(format!(
            "import `{}` of `{}`:",
            wanted.import, wanted.consumer
        ));
        for candidate in mine {
            let how = if candidate.exact {
                "the same name"
            } else {
                "the same interface"
            };
            let why = match (&candidate.fits, wanted.chosen) {
                (Err(reason), _) => format!("it does not fit: {reason}"),
                (Ok(()), Some(other)) => {
                    format!("it fits, but `{}` filled it first", plugs[other].shown)
                }
                (Ok(()), None) => "it fits".to_owned(),
            };
            lines.push(format!(
                "  `{name}` exports `{}` ({how}): {why}",
                candidate.export
            ));
        }
    }
    if lines.is_empty() {
        let exports: Vec<String> = graph.types()[graph[plugs[unused].id].ty()]
            .exports
            .keys()
            .map(|e| format!("`{e}`"))
            .collect();
        lines.push(format!(
            "`{name}` exports {}; no import of `{}` or of the other plugs is that interface",
            if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            },
            socket.shown
        ));
        let imports: Vec<String> = record
            .iter()
            .filter(|w| w.chosen.is_none())
            .map(|w| format!("`{}` ({})", w.import, w.consumer))
            .collect();
        if !imports.is_empty() {
            lines.push(format!("left unfilled: {}", imports.join(", ")));
        }
    }
    ComposeError::Unplugged {
        summary: format!("plug `{name}` filled no import"),
        explanation: lines.join("\n"),
    }
}
