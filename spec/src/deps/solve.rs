//! The dependency solver: `pubgrub` over an [`Index`] of published versions and their
//! requirements. Pure: the index is whatever the caller fetched (a registry's tags and
//! manifests, a lock, a vendor directory).
//!
//! One version per package, unless the project renames an entry (`fast-kv = { package =
//! "acme:kv", … }`), which is then a package of its own to the solver, as in cargo.
//! Versions are tried highest first, except a locked one, which is kept while it fits
//! (so `dependency update PKG` moves only PKG and what it forces).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyProvider, PackageResolutionStatistics,
    PubGrubError, Ranges, Reporter,
};
use semver::{Version, VersionReq};

use super::requirement::{admits, ranges};

/// What the solver picks versions of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// The project being resolved.
    Root,
    /// A package (`ns:pkg`), or a renamed second copy of one (`alias`).
    Package {
        /// The package name.
        name: String,
        /// The project's key for a renamed entry.
        alias: Option<String>,
    },
}

impl Node {
    /// A package by name.
    pub fn package(name: &str) -> Node {
        Node::Package {
            name: name.to_owned(),
            alias: None,
        }
    }

    /// The package name the index knows it by.
    pub fn name(&self) -> Option<&str> {
        match self {
            Node::Root => None,
            Node::Package { name, .. } => Some(name),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Root => f.write_str("your project"),
            Node::Package { name, alias: None } => f.write_str(name),
            Node::Package {
                name,
                alias: Some(alias),
            } => write!(f, "{name} (as `{alias}`)"),
        }
    }
}

/// The published versions of packages and what each version requires.
pub trait Index {
    /// The versions of `package`, in any order.
    fn versions(&self, package: &str) -> Result<Vec<Version>, String>;
    /// What `package` at `version` requires: package name → requirement.
    fn requirements(
        &self,
        package: &str,
        version: &Version,
    ) -> Result<Vec<(String, VersionReq)>, String>;
}

/// A dependency of the project as the solver sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The package.
    pub node: Node,
    /// The versions it may be.
    pub requirement: VersionReq,
}

/// What the solver chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Solution {
    /// Each package's version (the root excluded).
    pub versions: BTreeMap<Node, Version>,
    /// Each package's requirements, as edges to the packages chosen for them.
    pub edges: BTreeMap<Node, BTreeSet<Node>>,
    /// Every requirement that asked for each package (for the lock).
    pub requested: BTreeMap<Node, BTreeSet<String>>,
}

/// Why there is no solution.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// No set of versions satisfies every requirement.
    #[error("failed to resolve the dependencies:\n{0}")]
    NoSolution(String),
    /// The index could not answer.
    #[error("failed to read the versions of `{package}`: {reason}")]
    Index {
        /// The package asked about.
        package: String,
        /// What went wrong.
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
struct IndexFailure {
    package: String,
    reason: String,
}

struct Provider<'a> {
    index: &'a dyn Index,
    root: &'a [Request],
    locked: &'a BTreeMap<Node, Version>,
    /// Versions read so far, highest first.
    versions: RefCell<BTreeMap<String, Vec<Version>>>,
    /// Every requirement seen on each package (the pre-release rule needs them).
    requested: RefCell<BTreeMap<Node, Vec<VersionReq>>>,
}

impl Provider<'_> {
    fn versions(&self, package: &str) -> Result<Vec<Version>, IndexFailure> {
        if let Some(known) = self.versions.borrow().get(package) {
            return Ok(known.clone());
        }
        let mut found = self
            .index
            .versions(package)
            .map_err(|reason| IndexFailure {
                package: package.to_owned(),
                reason,
            })?;
        found.sort_by(|a, b| b.cmp(a));
        found.dedup();
        self.versions
            .borrow_mut()
            .insert(package.to_owned(), found.clone());
        Ok(found)
    }

    fn admitted(&self, node: &Node, version: &Version) -> bool {
        self.requested
            .borrow()
            .get(node)
            .is_none_or(|reqs| reqs.iter().all(|r| admits(r, version)))
    }

    fn note(&self, node: &Node, requirement: &VersionReq) {
        self.requested
            .borrow_mut()
            .entry(node.clone())
            .or_default()
            .push(requirement.clone());
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Node;
    type V = Version;
    type VS = Ranges<Version>;
    type M = String;
    type Priority = (u32, Reverse<usize>);
    type Err = IndexFailure;

    fn prioritize(
        &self,
        package: &Node,
        range: &Ranges<Version>,
        statistics: &PackageResolutionStatistics,
    ) -> Self::Priority {
        // Packages in conflict first, then those with fewest candidates.
        let candidates = package.name().map_or(1, |name| {
            self.versions(name)
                .map(|all| all.iter().filter(|v| range.contains(v)).count())
                .unwrap_or(0)
        });
        (statistics.conflict_count(), Reverse(candidates))
    }

    fn choose_version(
        &self,
        package: &Node,
        range: &Ranges<Version>,
    ) -> Result<Option<Version>, IndexFailure> {
        let Some(name) = package.name() else {
            return Ok(Some(Version::new(0, 0, 0)));
        };
        let fits = |v: &Version| range.contains(v) && self.admitted(package, v);
        if let Some(locked) = self.locked.get(package)
            && fits(locked)
            && self.versions(name)?.contains(locked)
        {
            return Ok(Some(locked.clone()));
        }
        Ok(self.versions(name)?.into_iter().find(|v| fits(v)))
    }

    fn get_dependencies(
        &self,
        package: &Node,
        version: &Version,
    ) -> Result<Dependencies<Node, Ranges<Version>, String>, IndexFailure> {
        let wanted: Vec<(Node, VersionReq)> = match package.name() {
            None => self
                .root
                .iter()
                .map(|r| (r.node.clone(), r.requirement.clone()))
                .collect(),
            Some(name) => self
                .index
                .requirements(name, version)
                .map_err(|reason| IndexFailure {
                    package: format!("{name}@{version}"),
                    reason,
                })?
                .into_iter()
                .map(|(dep, req)| (Node::package(&dep), req))
                .collect(),
        };
        // Two requirements on one package: both hold.
        let mut constraints: BTreeMap<Node, Ranges<Version>> = BTreeMap::new();
        for (node, requirement) in wanted {
            self.note(&node, &requirement);
            let range = ranges(&requirement);
            let merged = match constraints.remove(&node) {
                Some(existing) => range.intersection(&existing),
                None => range,
            };
            constraints.insert(node, merged);
        }
        Ok(Dependencies::Available(constraints.into_iter().collect()))
    }

    fn should_cancel(&self) -> Result<(), IndexFailure> {
        Ok(())
    }
}

/// Solves `root`'s requests over `index`, keeping `locked` versions where they fit.
pub fn solve(
    index: &dyn Index,
    root: &[Request],
    locked: &BTreeMap<Node, Version>,
) -> Result<Solution, SolveError> {
    let provider = Provider {
        index,
        root,
        locked,
        versions: RefCell::default(),
        requested: RefCell::default(),
    };
    match pubgrub::resolve(&provider, Node::Root, Version::new(0, 0, 0)) {
        Ok(chosen) => {
            let mut solution = Solution::default();
            for (node, version) in chosen {
                if node != Node::Root {
                    solution.versions.insert(node, version);
                }
            }
            for (node, version) in &solution.versions {
                let name = node.name().unwrap_or_default();
                let requirements =
                    index
                        .requirements(name, version)
                        .map_err(|reason| SolveError::Index {
                            package: format!("{name}@{version}"),
                            reason,
                        })?;
                let edges = requirements
                    .into_iter()
                    .map(|(dep, _)| Node::package(&dep))
                    .collect();
                solution.edges.insert(node.clone(), edges);
            }
            for (node, reqs) in provider.requested.into_inner() {
                if solution.versions.contains_key(&node) {
                    solution
                        .requested
                        .insert(node, reqs.iter().map(ToString::to_string).collect());
                }
            }
            Ok(solution)
        }
        Err(PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            // The root is not a versioned package to the reader.
            let mut text = DefaultStringReporter::report(&tree)
                .replace("your project 0.0.0", "your project")
                .replace(
                    ", your project is forbidden.",
                    ", your project's requirements cannot all hold.",
                );
            // What exists, for each package the explanation names.
            let mut named: Vec<&Node> = tree.packages().into_iter().collect();
            named.sort();
            for node in named {
                if let Some(name) = node.name() {
                    let versions = provider.versions(name).unwrap_or_default();
                    text.push_str(&format!("\n{name} {}", existing(&versions)));
                }
            }
            Err(SolveError::NoSolution(text))
        }
        Err(PubGrubError::ErrorChoosingVersion { source, .. })
        | Err(PubGrubError::ErrorRetrievingDependencies { source, .. }) => Err(SolveError::Index {
            package: source.package,
            reason: source.reason,
        }),
        Err(PubGrubError::ErrorInShouldCancel(e)) => Err(SolveError::Index {
            package: e.package,
            reason: e.reason,
        }),
    }
}

/// "has no published version", "has only 1.0.0", "has only 1.0.0, 1.1.0 and 2.0.0".
fn existing(versions: &[Version]) -> String {
    let mut ascending: Vec<String> = versions.iter().rev().map(ToString::to_string).collect();
    match ascending.len() {
        0 => "has no published version".into(),
        1 => format!("has only {}", ascending[0]),
        _ => {
            let last = ascending.pop().unwrap_or_default();
            format!("has only {} and {last}", ascending.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of a test index: package, version, its requirements.
    type Row = (
        &'static str,
        &'static str,
        Vec<(&'static str, &'static str)>,
    );

    /// An index from rows.
    struct Fixed(Vec<Row>);

    impl Index for Fixed {
        fn versions(&self, package: &str) -> Result<Vec<Version>, String> {
            Ok(self
                .0
                .iter()
                .filter(|(p, _, _)| *p == package)
                .map(|(_, v, _)| Version::parse(v).unwrap())
                .collect())
        }

        fn requirements(
            &self,
            package: &str,
            version: &Version,
        ) -> Result<Vec<(String, VersionReq)>, String> {
            Ok(self
                .0
                .iter()
                .find(|(p, v, _)| *p == package && Version::parse(v).unwrap() == *version)
                .map(|(_, _, deps)| {
                    deps.iter()
                        .map(|(d, r)| ((*d).to_owned(), VersionReq::parse(r).unwrap()))
                        .collect()
                })
                .unwrap_or_default())
        }
    }

    fn request(name: &str, req: &str) -> Request {
        Request {
            node: Node::package(name),
            requirement: VersionReq::parse(req).unwrap(),
        }
    }

    fn versions(solution: &Solution) -> Vec<String> {
        solution
            .versions
            .iter()
            .map(|(n, v)| format!("{n}@{v}"))
            .collect()
    }

    fn index() -> Fixed {
        Fixed(vec![
            ("acme:kv", "1.0.0", vec![]),
            ("acme:kv", "1.1.0", vec![("acme:log", "^0.3")]),
            ("acme:kv", "2.0.0", vec![("acme:log", "^0.4")]),
            ("acme:kv", "2.1.0-rc.1", vec![]),
            ("acme:log", "0.3.1", vec![]),
            ("acme:log", "0.4.0", vec![]),
            (
                "acme:app",
                "1.0.0",
                vec![("acme:kv", "^2"), ("acme:log", "~0.3")],
            ),
        ])
    }

    #[test]
    fn picks_the_highest_versions_that_fit_and_their_requirements() {
        let solution = solve(&index(), &[request("acme:kv", "^1")], &BTreeMap::new()).unwrap();
        assert_eq!(versions(&solution), ["acme:kv@1.1.0", "acme:log@0.3.1"]);
        assert_eq!(
            solution.edges[&Node::package("acme:kv")],
            BTreeSet::from([Node::package("acme:log")])
        );
        // No pre-release unless asked for by name.
        let solution = solve(&index(), &[request("acme:kv", "*")], &BTreeMap::new()).unwrap();
        assert_eq!(versions(&solution), ["acme:kv@2.0.0", "acme:log@0.4.0"]);
        let solution = solve(
            &index(),
            &[request("acme:kv", ">=2.1.0-rc.1")],
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(versions(&solution), ["acme:kv@2.1.0-rc.1"]);
    }

    #[test]
    fn a_locked_version_is_kept_while_it_fits() {
        let locked = BTreeMap::from([(Node::package("acme:kv"), Version::new(1, 0, 0))]);
        let solution = solve(&index(), &[request("acme:kv", "^1")], &locked).unwrap();
        assert_eq!(versions(&solution), ["acme:kv@1.0.0"]);
        let solution = solve(&index(), &[request("acme:kv", "^2")], &locked).unwrap();
        assert_eq!(versions(&solution), ["acme:kv@2.0.0", "acme:log@0.4.0"]);
    }

    #[test]
    fn a_renamed_entry_is_a_second_version() {
        let mut second = request("acme:kv", "^1");
        second.node = Node::Package {
            name: "acme:kv".into(),
            alias: Some("old-kv".into()),
        };
        let solution = solve(
            &index(),
            &[request("acme:kv", "^2"), second],
            &BTreeMap::new(),
        )
        .unwrap();
        // kv 2.0.0 needs log ^0.4 and the alias's 1.1.0 log ^0.3: one log, so the alias
        // falls back to 1.0.0, which needs none.
        assert_eq!(
            versions(&solution),
            [
                "acme:kv@2.0.0",
                "acme:kv (as `old-kv`)@1.0.0",
                "acme:log@0.4.0"
            ]
        );
    }

    #[test]
    fn no_solution_is_explained_with_what_exists() {
        let error = solve(
            &index(),
            &[request("acme:app", "1"), request("acme:log", "^0.4")],
            &BTreeMap::new(),
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(!text.contains("0.0.0"), "{text}");
        assert!(text.contains("acme:log has only 0.3.1 and 0.4.0"), "{text}");
        let error = solve(&index(), &[request("acme:kv", "^3")], &BTreeMap::new()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("acme:kv has only 1.0.0, 1.1.0, 2.0.0 and 2.1.0-rc.1"),
            "{text}"
        );
    }
}
