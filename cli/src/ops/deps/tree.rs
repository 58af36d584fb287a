//! `dependency tree`: the locked graph, read from `wasmoci.lock` alone (no network), from
//! the project's entries down (or, inverted, from a package up to the entries that pull
//! it in), as text, Graphviz `dot` or JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::error::DepsError;
use super::lock::LockedPackage;
use super::resolve::read_lock;
use crate::project::Project;

/// A node of the tree.
#[derive(Debug, Clone, Serialize)]
pub struct TreeNode {
    /// `name@version` (with `(as alias)` for a renamed entry).
    pub package: String,
    /// What it requires (or, inverted, what requires it); empty past `--depth` or where
    /// a package was already shown above (`repeated`).
    pub children: Vec<TreeNode>,
    /// Shown already, higher in the tree: its children are not repeated.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
}

/// The locked graph: `name@version` → its edges.
struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
    label: BTreeMap<String, String>,
}

fn id(package: &LockedPackage) -> String {
    format!("{}@{}", package.name, package.version)
}

impl Graph {
    fn of(packages: &[LockedPackage]) -> Graph {
        let mut edges = BTreeMap::new();
        let mut label = BTreeMap::new();
        for package in packages {
            let shown = match &package.alias {
                Some(alias) => format!("{} (as {alias})", id(package)),
                None => id(package),
            };
            label.insert(id(package), shown);
            edges.insert(
                id(package),
                package
                    .dependencies
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>(),
            );
        }
        Graph { edges, label }
    }

    fn inverted(&self) -> Graph {
        let mut edges: BTreeMap<String, BTreeSet<String>> = self
            .edges
            .keys()
            .map(|k| (k.clone(), BTreeSet::new()))
            .collect();
        for (from, tos) in &self.edges {
            for to in tos {
                edges.entry(to.clone()).or_default().insert(from.clone());
            }
        }
        Graph {
            edges,
            label: self.label.clone(),
        }
    }

    fn node(&self, at: &str, depth: usize, seen: &mut BTreeSet<String>) -> TreeNode {
        let package = self.label.get(at).cloned().unwrap_or_else(|| at.to_owned());
        if !seen.insert(at.to_owned()) {
            return TreeNode {
                package,
                children: Vec::new(),
                repeated: true,
            };
        }
        let children = if depth == 0 {
            Vec::new()
        } else {
            self.edges
                .get(at)
                .into_iter()
                .flatten()
                .map(|child| self.node(child, depth - 1, seen))
                .collect()
        };
        TreeNode {
            package,
            children,
            repeated: false,
        }
    }
}

/// The tree of the project's locked dependencies, or, with `invert`, of what pulls
/// `invert` in; `depth` levels below the top at most.
pub fn tree(
    project: &Project,
    invert: Option<&str>,
    depth: Option<usize>,
) -> Result<Vec<TreeNode>, DepsError> {
    let lock = read_lock(&project.dir)?.ok_or_else(|| DepsError::NoLock {
        dir: project.dir.clone(),
    })?;
    let graph = Graph::of(&lock.packages);
    let depth = depth.unwrap_or(usize::MAX);
    let mut seen = BTreeSet::new();
    match invert {
        Some(name) => {
            let inverted = graph.inverted();
            let tops: Vec<&LockedPackage> = lock
                .packages
                .iter()
                .filter(|p| p.name == name || id(p) == name || p.alias.as_deref() == Some(name))
                .collect();
            if tops.is_empty() {
                return Err(DepsError::Usage(format!(
                    "`{name}` is not in `wasmoci.lock`"
                )));
            }
            Ok(tops
                .into_iter()
                .map(|p| inverted.node(&id(p), depth, &mut seen))
                .collect())
        }
        None => {
            // The project's own entries are the tops.
            let tops: Vec<&LockedPackage> = lock
                .packages
                .iter()
                .filter(|p| {
                    project
                        .dependencies
                        .iter()
                        .any(|d| lock.package_of(d).is_some_and(|q| std::ptr::eq(q, *p)))
                })
                .collect();
            Ok(tops
                .into_iter()
                .map(|p| graph.node(&id(p), depth, &mut seen))
                .collect())
        }
    }
}

/// The tree as text: `├──`/`└──` branches, `(*)` after a package shown above.
pub fn text(nodes: &[TreeNode]) -> String {
    fn walk(node: &TreeNode, prefix: &str, last: bool, top: bool, out: &mut String) {
        let branch = match (top, last) {
            (true, _) => "",
            (false, true) => "└── ",
            (false, false) => "├── ",
        };
        let mark = if node.repeated { " (*)" } else { "" };
        out.push_str(&format!("{prefix}{branch}{}{mark}\n", node.package));
        let below = match (top, last) {
            (true, _) => prefix.to_owned(),
            (false, true) => format!("{prefix}    "),
            (false, false) => format!("{prefix}│   "),
        };
        for (i, child) in node.children.iter().enumerate() {
            walk(child, &below, i + 1 == node.children.len(), false, out);
        }
    }
    let mut out = String::new();
    for node in nodes {
        walk(node, "", true, true, &mut out);
    }
    out
}

/// The tree as a Graphviz digraph.
pub fn dot(nodes: &[TreeNode]) -> String {
    fn walk(node: &TreeNode, out: &mut BTreeSet<String>) {
        for child in &node.children {
            out.insert(format!("  {:?} -> {:?};", node.package, child.package));
            walk(child, out);
        }
    }
    let mut edges = BTreeSet::new();
    let mut names = BTreeSet::new();
    fn names_of(node: &TreeNode, out: &mut BTreeSet<String>) {
        out.insert(format!("  {:?};", node.package));
        for child in &node.children {
            names_of(child, out);
        }
    }
    for node in nodes {
        walk(node, &mut edges);
        names_of(node, &mut names);
    }
    let mut out = String::from("digraph dependencies {\n");
    for line in names.iter().chain(edges.iter()) {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("}\n");
    out
}
