//! The solver's index over registries: one tag listing per package, one manifest per
//! version the solver looks at, each read once; the repositories packages come from,
//! learnt from the project and from each manifest's `dev.wasmoci.dependencies`.
//!
//! The solver asks one question at a time; the registry is asked ahead of it. Before it
//! starts, [`RegistryIndex::read_ahead`] walks the graph a level at a time, [`PARALLEL`]
//! requests at once: each package's tag listing and the manifest of the version it will
//! most likely take (the locked one, else the newest its requirement admits). So a cold
//! resolution costs about two round trips per level of the graph, not per package. A
//! guess the solver does not follow costs one manifest; when it backtracks, the versions
//! it then looks at are read as it asks, and so are packages no guess reached (their tag
//! listings together, [`RegistryIndex::prefetch`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use semver::{Version, VersionReq};
use wasmoci_registry::Reference;
use wasmoci_registry::client::Client;
use wasmoci_spec::deps::requirement::{admits, ranges};
use wasmoci_spec::deps::solve::Index;
use wasmoci_spec::deps::tags;
use wasmoci_spec::{Digest, ImageManifest};

use super::error::DepsError;
use super::resolve::ANNOTATION;

/// The versions and manifests of packages, read from registries as the solver asks.
pub(super) struct RegistryIndex<'a> {
    pub(super) client: &'a Client,
    /// package → repository, as the project and the manifests the solver reads say.
    pub(super) repositories: RefCell<BTreeMap<String, String>>,
    /// package → repository, as a manifest read ahead says: used to read ahead only, and
    /// replaced (with what was read from it) when the solver learns otherwise.
    pub(super) guessed: RefCell<BTreeMap<String, String>>,
    /// package → (version, tag), read once.
    pub(super) tags: RefCell<BTreeMap<String, Vec<(Version, String)>>>,
    /// (package, version) → manifest and its digest, read once.
    pub(super) manifests: RefCell<BTreeMap<(String, Version), Fetched>>,
    /// The typed error behind the last failure the solver reports.
    pub(super) failure: RefCell<Option<DepsError>>,
}

/// Tag listings read at once.
const PARALLEL: usize = 8;

impl RegistryIndex<'_> {
    /// Lists the tags of those of `packages` not listed yet, together. A failure is left
    /// for [`Index::versions`] to meet again and report.
    pub(super) fn prefetch<'p>(&self, packages: impl IntoIterator<Item = &'p str>) {
        let todo: Vec<(String, Reference)> = packages
            .into_iter()
            .filter(|p| !self.tags.borrow().contains_key(*p))
            .filter_map(|p| Some((p.to_owned(), self.repository(p).ok()?)))
            .collect();
        if todo.len() < 2 {
            return;
        }
        let client = self.client;
        for chunk in todo.chunks(PARALLEL) {
            let listed: Vec<(String, Vec<String>)> = std::thread::scope(|scope| {
                let running: Vec<_> = chunk
                    .iter()
                    .map(|(package, reference)| {
                        scope.spawn(move || (package.clone(), client.tags(reference)))
                    })
                    .collect();
                running
                    .into_iter()
                    .filter_map(|r| match r.join() {
                        Ok((package, Ok(tags))) => Some((package, tags)),
                        _ => None,
                    })
                    .collect()
            });
            let mut known = self.tags.borrow_mut();
            for (package, tags) in listed {
                known.insert(package, versions_of(tags));
            }
        }
    }

    /// Reads ahead of the solver (see the module's text), from `roots` (package and
    /// requirement), preferring `locked` versions. Best effort: what fails here is asked
    /// again, and reported, when the solver needs it.
    pub(super) fn read_ahead(
        &self,
        roots: Vec<(String, VersionReq)>,
        locked: &BTreeMap<String, Version>,
    ) {
        let mut seen = BTreeSet::new();
        let mut level: Vec<(String, VersionReq)> = roots
            .into_iter()
            .filter(|(package, _)| seen.insert(package.clone()))
            .collect();
        while !level.is_empty() {
            let jobs: Vec<Job> = level
                .into_iter()
                .filter_map(|(package, requirement)| {
                    let reference = self.repository(&package).ok()?;
                    let listed = self.tags.borrow().get(&package).cloned();
                    let prefer = locked.get(&package).cloned();
                    Some(Job {
                        package,
                        requirement,
                        reference,
                        listed,
                        prefer,
                    })
                })
                .collect();
            let client = self.client;
            let mut done = Vec::new();
            for chunk in jobs.chunks(PARALLEL) {
                std::thread::scope(|scope| {
                    let running: Vec<_> = chunk
                        .iter()
                        .map(|job| scope.spawn(move || job.run(client)))
                        .collect();
                    done.extend(running.into_iter().filter_map(|r| r.join().ok()));
                });
            }
            let mut next = Vec::new();
            for (package, listed, guessed) in done {
                if let Some(listed) = listed {
                    self.tags.borrow_mut().insert(package.clone(), listed);
                }
                let Some((version, fetched)) = guessed else {
                    continue;
                };
                for (name, requirement, repository) in
                    requirements_of(&fetched.0).unwrap_or_default()
                {
                    let known = self.repositories.borrow().get(&name).cloned();
                    let agrees = match known {
                        Some(known) => known == repository,
                        None => {
                            self.guessed
                                .borrow_mut()
                                .entry(name.clone())
                                .or_insert_with(|| repository.clone())
                                == &repository
                        }
                    };
                    if agrees && seen.insert(name.clone()) {
                        next.push((name, requirement));
                    }
                }
                self.manifests
                    .borrow_mut()
                    .insert((package, version), fetched);
            }
            level = next;
        }
    }

    pub(super) fn fail(&self, error: DepsError) -> String {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        *self.failure.borrow_mut() = Some(error);
        text
    }

    /// The typed error behind a failure the index reported as `reason` about `package`.
    pub(super) fn failure_or(&self, package: &str, reason: String) -> DepsError {
        self.failure.take().unwrap_or_else(|| {
            DepsError::Solve(wasmoci_spec::deps::solve::SolveError::Index {
                package: package.to_owned(),
                reason,
            })
        })
    }

    fn repository(&self, package: &str) -> std::result::Result<Reference, String> {
        let repository = self
            .repositories
            .borrow()
            .get(package)
            .cloned()
            .or_else(|| self.guessed.borrow().get(package).cloned())
            .ok_or_else(|| format!("no repository is known for `{package}`"))?;
        repository
            .parse()
            .map_err(|e| format!("invalid repository `{repository}`: {e}"))
    }

    pub(super) fn manifest(
        &self,
        package: &str,
        version: &Version,
    ) -> std::result::Result<Fetched, String> {
        let key = (package.to_owned(), version.clone());
        if let Some(found) = self.manifests.borrow().get(&key) {
            return Ok(found.clone());
        }
        let reference = self.tagged(package, version)?;
        let found = fetch_manifest(self.client, &reference).map_err(|e| self.fail(e))?;
        self.manifests.borrow_mut().insert(key, found.clone());
        Ok(found)
    }

    /// `package` at `version`: its repository and the tag that version was listed under.
    fn tagged(&self, package: &str, version: &Version) -> std::result::Result<Reference, String> {
        let tag = self
            .tags
            .borrow()
            .get(package)
            .and_then(|all| {
                all.iter()
                    .find(|(v, _)| v == version)
                    .map(|(_, t)| t.clone())
            })
            .unwrap_or_else(|| tags::tag(version));
        let mut reference = self.repository(package)?;
        reference.tag = Some(tag);
        Ok(reference)
    }

    pub(super) fn learn(&self, package: &str, repository: &str) -> std::result::Result<(), String> {
        let mut known = self.repositories.borrow_mut();
        match known.get(package) {
            Some(first) if first != repository => Err(self.fail(DepsError::TwoRepositories {
                package: package.to_owned(),
                first: first.clone(),
                second: repository.to_owned(),
            })),
            _ => {
                // What was read ahead from another repository is not this package's.
                let guessed = self.guessed.borrow_mut().remove(package);
                if guessed.is_some_and(|g| g != repository) {
                    self.tags.borrow_mut().remove(package);
                    self.manifests.borrow_mut().retain(|(p, _), _| p != package);
                }
                known.insert(package.to_owned(), repository.to_owned());
                Ok(())
            }
        }
    }
}

impl Index for RegistryIndex<'_> {
    fn versions(&self, package: &str) -> std::result::Result<Vec<Version>, String> {
        if let Some(found) = self.tags.borrow().get(package) {
            return Ok(found.iter().map(|(v, _)| v.clone()).collect());
        }
        let reference = self.repository(package)?;
        let listed = self.client.tags(&reference).map_err(|source| {
            self.fail(DepsError::Fetch {
                reference: reference.to_string(),
                source: Box::new(source),
            })
        })?;
        let found = versions_of(listed);
        let versions = found.iter().map(|(v, _)| v.clone()).collect();
        self.tags.borrow_mut().insert(package.to_owned(), found);
        Ok(versions)
    }

    fn requirements(
        &self,
        package: &str,
        version: &Version,
    ) -> std::result::Result<Vec<(String, VersionReq)>, String> {
        let (manifest, _, _) = self.manifest(package, version)?;
        let wanted = requirements_of(&manifest).map_err(|reason| {
            let reference = self
                .tagged(package, version)
                .map_or_else(|_| format!("{package}@{version}"), |r| r.to_string());
            self.fail(DepsError::Manifest { reference, reason })
        })?;
        let mut out = Vec::new();
        for (name, requirement, repository) in wanted {
            self.learn(&name, &repository)?;
            out.push((name, requirement));
        }
        self.prefetch(out.iter().map(|(name, _)| name.as_str()));
        Ok(out)
    }
}

/// One package read ahead: its tags (unless `listed`), then its likely version's manifest.
struct Job {
    package: String,
    requirement: VersionReq,
    reference: Reference,
    listed: Option<Vec<(Version, String)>>,
    prefer: Option<Version>,
}

/// A package read ahead: its tags when newly listed, and the guessed version's manifest.
type ReadAhead = (
    String,
    Option<Vec<(Version, String)>>,
    Option<(Version, Fetched)>,
);

impl Job {
    fn run(&self, client: &Client) -> ReadAhead {
        let (listed, fresh) = match &self.listed {
            Some(listed) => (listed.clone(), false),
            None => match client.tags(&self.reference) {
                Ok(tags) => (versions_of(tags), true),
                Err(_) => return (self.package.clone(), None, None),
            },
        };
        let range = ranges(&self.requirement);
        let fits = |v: &Version| range.contains(v) && admits(&self.requirement, v);
        let guess = listed
            .iter()
            .find(|(v, _)| Some(v) == self.prefer.as_ref() && fits(v))
            .or_else(|| {
                listed
                    .iter()
                    .filter(|(v, _)| fits(v))
                    .max_by(|a, b| a.0.cmp(&b.0))
            });
        let fetched = guess.and_then(|(version, tag)| {
            let mut at = self.reference.clone();
            at.tag = Some(tag.clone());
            Some((version.clone(), fetch_manifest(client, &at).ok()?))
        });
        (self.package.clone(), fresh.then_some(listed), fetched)
    }
}

/// The tags that are versions, with the version each reads as.
pub(super) fn versions_of(tags: Vec<String>) -> Vec<(Version, String)> {
    tags.into_iter()
        .filter_map(|t| tags::version(&t).map(|v| (v, t)))
        .collect()
}

/// [`ANNOTATION`] of a manifest: (package, requirement, repository) each; none without it.
pub(super) fn requirements_of(
    manifest: &ImageManifest,
) -> std::result::Result<Vec<(String, VersionReq, String)>, String> {
    let Some(text) = manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
    else {
        return Ok(Vec::new());
    };
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| format!("`{ANNOTATION}` is not a JSON object: {e}"))?;
    let mut out = Vec::new();
    for (key, entry) in entries {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let package = field("package").unwrap_or_else(|| key.clone());
        let (Some(version), Some(oci)) = (field("version"), field("oci")) else {
            return Err(format!(
                "`{ANNOTATION}` entry `{key}` needs `version` and `oci`"
            ));
        };
        let requirement = VersionReq::parse(&version)
            .map_err(|e| format!("`{ANNOTATION}` entry `{key}`: `{version}`: {e}"))?;
        out.push((package, requirement, oci));
    }
    Ok(out)
}

/// A manifest as fetched: parsed, its digest, its bytes (checked against the digest).
pub(super) type Fetched = (ImageManifest, Digest, Vec<u8>);

pub(super) fn fetch_manifest(client: &Client, reference: &Reference) -> Result<Fetched> {
    let (bytes, digest, _) = client
        .manifest(reference)
        .map_err(|source| DepsError::Fetch {
            reference: reference.to_string(),
            source: Box::new(source),
        })?;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| DepsError::Manifest {
            reference: reference.to_string(),
            reason: format!("not an OCI image manifest: {e}"),
        })?;
    Ok((manifest, digest, bytes))
}

type Result<T> = std::result::Result<T, DepsError>;
