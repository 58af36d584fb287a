//! The wiring of a composition, for `--graph`: the instances (package, version, layer
//! digest), which instance's export fills which import, and the imports left to the host.

use std::collections::BTreeSet;

use serde::Serialize;
use wac_graph::{CompositionGraph, NodeId, NodeKind};

use super::Component;
use super::plug::Registered;

/// Instances, wires and host imports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Wiring {
    /// The instances, in the order they are made.
    pub instances: Vec<Instance>,
    /// Exports filling imports.
    pub wires: Vec<Wire>,
    /// Imports no instance fills: the composition imports them.
    pub host_imports: Vec<HostImport>,
}

/// An instance of an input.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    /// `i0`, `i1`, …
    pub id: String,
    /// The input's name.
    pub name: String,
    /// Its version, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The digest of its bytes.
    pub layer: String,
}

/// One import filled by an export.
#[derive(Debug, Clone, Serialize)]
pub struct Wire {
    /// The instance exporting.
    pub from: String,
    /// Its export.
    pub export: String,
    /// The instance importing.
    pub to: String,
    /// Its import.
    pub import: String,
}

/// An import left to the host.
#[derive(Debug, Clone, Serialize)]
pub struct HostImport {
    /// The import name.
    pub import: String,
    /// The instances that need it.
    pub needed_by: Vec<String>,
}

impl Wiring {
    /// The wiring of `graph`, whose packages are `registered` (for `inputs`, in order).
    pub(super) fn of(
        graph: &CompositionGraph,
        registered: &[Registered],
        inputs: &[&Component],
    ) -> Wiring {
        let mut wiring = Wiring::default();
        let instances: Vec<NodeId> = graph
            .node_ids()
            .filter(|n| matches!(graph[*n].kind(), NodeKind::Instantiation(_)))
            .collect();
        let id_of = |node: NodeId| {
            instances
                .iter()
                .position(|n| *n == node)
                .map(|i| format!("i{i}"))
        };
        for (i, node) in instances.iter().enumerate() {
            let package = graph[*node].package();
            let input = registered
                .iter()
                .position(|r| Some(r.id) == package)
                .and_then(|p| inputs.get(p));
            wiring.instances.push(Instance {
                id: format!("i{i}"),
                name: input.map_or_else(
                    || graph[*node].name().unwrap_or("?").to_owned(),
                    |c| c.shown.clone(),
                ),
                version: input.and_then(|c| c.from.version.clone()),
                layer: input.map(|c| c.from.layer.clone()).unwrap_or_default(),
            });
            let mut filled = BTreeSet::new();
            for (import, argument) in graph.get_instantiation_arguments(*node) {
                filled.insert(import.to_owned());
                // An export of an instance; else something the composition imports (an
                // import statement of a WAC document, or an alias of one).
                match graph
                    .get_alias_source(argument)
                    .and_then(|(source, export)| Some((id_of(source)?, export)))
                {
                    Some((from, export)) => wiring.wires.push(Wire {
                        from,
                        export: export.to_owned(),
                        to: format!("i{i}"),
                        import: import.to_owned(),
                    }),
                    None => host(&mut wiring, import, i),
                }
            }
            if let Some(package) = package {
                for import in graph.types()[graph[package].ty()].imports.keys() {
                    if !filled.contains(import) {
                        host(&mut wiring, import, i);
                    }
                }
            }
        }
        wiring.host_imports.sort_by(|a, b| a.import.cmp(&b.import));
        wiring
    }

    /// Graphviz.
    pub fn to_dot(&self) -> String {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::from("digraph composition {\n  rankdir=LR;\n");
        for i in &self.instances {
            let version = i
                .version
                .as_deref()
                .map_or(String::new(), |v| format!("@{v}"));
            let short = i.layer.strip_prefix("sha256:").unwrap_or(&i.layer);
            out.push_str(&format!(
                "  {} [shape=box, label=\"{}{}\\n{}\"];\n",
                i.id,
                quote(&i.name),
                quote(&version),
                &short[..short.len().min(12)]
            ));
        }
        out.push_str("  host [shape=ellipse, label=\"host\"];\n");
        for w in &self.wires {
            out.push_str(&format!(
                "  {} -> {} [label=\"{}\"];\n",
                w.from,
                w.to,
                quote(&w.import)
            ));
        }
        for h in &self.host_imports {
            for to in &h.needed_by {
                out.push_str(&format!(
                    "  host -> {to} [style=dashed, label=\"{}\"];\n",
                    quote(&h.import)
                ));
            }
        }
        out.push_str("}\n");
        out
    }
}

fn host(wiring: &mut Wiring, import: &str, instance: usize) {
    let id = format!("i{instance}");
    match wiring.host_imports.iter_mut().find(|h| h.import == import) {
        Some(h) => h.needed_by.push(id),
        None => wiring.host_imports.push(HostImport {
            import: import.to_owned(),
            needed_by: vec![id],
        }),
    }
}
