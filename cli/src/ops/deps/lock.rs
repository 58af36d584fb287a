//! `wasmoci.lock`: what a resolution chose, pinned by manifest and layer digest.
//!
//! ```toml
//! version = 1
//! inputs = "sha256:…"          # the normalized [dependencies] + [registries]: drift shows
//!
//! [[package]]
//! name = "acme:kv"
//! version = "1.4.2"
//! source = "oci://ghcr.io/acme/kv"
//! manifest = "sha256:…"
//! layer = "sha256:…"
//! size = 4096
//! kind = "component"
//! requirement = ["^1.2"]
//! dependencies = ["acme:log@0.3.1"]
//! ```
//!
//! Sorted, no timestamp, no absolute path: the same inputs give the same bytes anywhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmoci_spec::Digest;

use super::manifest::{Dependency, Source};

/// The lock file's name, beside `wasmoci.toml`.
pub const LOCK_FILE: &str = "wasmoci.lock";

/// The format version this code writes and reads.
pub const LOCK_VERSION: u32 = 1;

/// A lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// [`LOCK_VERSION`].
    pub version: u32,
    /// [`inputs`] of the project it was made for.
    pub inputs: String,
    /// The resolved packages, sorted by name, alias, version.
    #[serde(default, rename = "package")]
    pub packages: Vec<LockedPackage>,
}

/// One resolved package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    /// The WIT package name.
    pub name: String,
    /// The project's key when it renamed the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The version chosen (`0.0.0` for a path or a digest pin without one).
    #[serde(deserialize_with = "checked::version")]
    pub version: String,
    /// `oci://HOST/REPO`, or `path+RELATIVE` (relative to the project).
    pub source: String,
    /// The manifest digest (none for a path).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "checked::some_digest"
    )]
    pub manifest: Option<String>,
    /// The wasm layer's digest (a path's file hash).
    #[serde(deserialize_with = "checked::digest")]
    pub layer: String,
    /// The layer's size in bytes.
    pub size: u64,
    /// `component`, `wit` or `module`.
    pub kind: String,
    /// Every requirement that asked for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirement: Vec<String>,
    /// Its dependencies, as `name@version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
}

/// Fields checked as they are read, so that the parser's error names the line.
mod checked {
    use serde::{Deserialize, Deserializer, de::Error};

    pub(super) fn version<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let text = String::deserialize(d)?;
        semver::Version::parse(&text)
            .map_err(|e| D::Error::custom(format!("`{text}` is not a version: {e}")))?;
        Ok(text)
    }

    pub(super) fn digest<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<wasmoci_spec::Digest>()
            .map_err(|e| D::Error::custom(format!("`{text}` is not a digest: {e}")))?;
        Ok(text)
    }

    pub(super) fn some_digest<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        digest(d).map(Some)
    }
}

/// A lock file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Not this format.
    #[error("failed to parse `{LOCK_FILE}`: {0}")]
    Parse(String),
    /// A newer format.
    #[error("`{LOCK_FILE}` is format version {0}; this wasmoci reads version {LOCK_VERSION}")]
    Version(u32),
}

impl Lock {
    /// Parses a lock file's text.
    pub fn parse(text: &str) -> Result<Lock, LockError> {
        let lock: Lock = toml::from_str(text)
            .map_err(|e| LockError::Parse(e.to_string().trim_end().replace('\n', "\n  ")))?;
        if lock.version != LOCK_VERSION {
            return Err(LockError::Version(lock.version));
        }
        Ok(lock)
    }

    /// What the lock pins for a `[dependencies]` entry (its package, under its alias).
    pub fn package_of(&self, dep: &Dependency) -> Option<&LockedPackage> {
        self.packages.iter().find(|p| {
            p.name == dep.package && p.alias.as_deref() == dep.renamed.then_some(&*dep.key)
        })
    }

    /// The same lock with its packages and their lists sorted and deduplicated: what
    /// [`Lock::render`] writes.
    pub fn normalized(mut self) -> Lock {
        for package in &mut self.packages {
            package.requirement.sort();
            package.requirement.dedup();
            package.dependencies.sort();
            package.dependencies.dedup();
        }
        self.packages.sort();
        self
    }

    /// The file's text: packages and lists sorted, so equal locks are equal bytes.
    pub fn render(&self) -> String {
        let body = toml::to_string(&self.clone().normalized()).unwrap_or_default();
        format!("# wasmoci.lock: written by `wasmoci dependency update`; do not edit\n{body}")
    }
}

/// The hash of what a resolution depends on: `[dependencies]` and `[registries]`,
/// normalized (keys sorted, requirements as `semver` prints them), so that reformatting
/// the file changes nothing and any change to an entry shows.
pub fn inputs(dependencies: &[Dependency], registries: &BTreeMap<String, String>) -> String {
    let entries: BTreeMap<&str, serde_json::Value> = dependencies
        .iter()
        .map(|d| {
            let source = match &d.source {
                Source::Range {
                    repository,
                    requirement,
                } => serde_json::json!({"oci": repository, "version": requirement.to_string()}),
                Source::Pinned { repository, digest } => {
                    serde_json::json!({"oci": format!("{repository}@{digest}")})
                }
                Source::Path(path) => serde_json::json!({"path": path.to_string_lossy()}),
            };
            (
                d.key.as_str(),
                serde_json::json!({"package": d.package, "source": source}),
            )
        })
        .collect();
    let normal = serde_json::json!({"dependencies": entries, "registries": registries});
    Digest::of(normal.to_string().as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, version: &str) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            alias: None,
            version: version.into(),
            source: format!("oci://r.example/{name}"),
            manifest: Some(format!("sha256:{}", "a".repeat(64))),
            layer: format!("sha256:{}", "b".repeat(64)),
            size: 10,
            kind: "component".into(),
            requirement: vec!["^1".into(), "^1.2".into()],
            dependencies: vec![],
        }
    }

    #[test]
    fn the_same_lock_is_the_same_bytes_and_reads_back() {
        let a = Lock {
            version: 1,
            inputs: "sha256:00".into(),
            packages: vec![package("acme:log", "0.3.1"), package("acme:kv", "1.2.0")],
        };
        let mut b = a.clone();
        b.packages.reverse();
        b.packages[0].requirement.reverse();
        assert_eq!(a.render(), b.render());
        let text = a.render();
        assert!(
            text.find("acme:kv").unwrap() < text.find("acme:log").unwrap(),
            "{text}"
        );
        let back = Lock::parse(&text).unwrap();
        assert_eq!(back.render(), text);
    }

    #[test]
    fn other_versions_and_fields_are_refused() {
        let err = Lock::parse("version = 2\ninputs = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "`wasmoci.lock` is format version 2; this wasmoci reads version 1"
        );
        let err = Lock::parse("version = 1\ninputs = \"x\"\ngenerated = \"today\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `generated`"), "{err}");
        // A hand-edited digest or version: the line is named.
        let good = Lock {
            version: 1,
            inputs: "sha256:00".into(),
            packages: vec![package("acme:kv", "1.2.0")],
        }
        .render();
        for (from, to, says) in [
            ("sha256:bbbb", "sha256:zz", "is not a digest"),
            ("1.2.0", "one", "is not a version"),
        ] {
            let bad = good.replacen(from, to, 1);
            let err = Lock::parse(&bad).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains("line "), "{err}");
        }
        // A field taken out: named, with the package's line.
        let bad: String = good
            .lines()
            .filter(|l| !l.starts_with("layer = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = Lock::parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("missing field `layer`") && err.contains("line "),
            "{err}"
        );
    }

    #[test]
    fn inputs_ignore_layout_and_see_every_change() {
        use crate::ops::deps::manifest::{RawDependencies, dependencies};
        #[derive(serde::Deserialize)]
        struct File {
            dependencies: RawDependencies,
        }
        let read = |text: &str| {
            let file: File = toml::from_str(text).unwrap();
            inputs(
                &dependencies(text, &file.dependencies).unwrap(),
                &BTreeMap::new(),
            )
        };
        let one = read("[dependencies]\n\"acme:kv\" = \"^1.2\"\n\"acme:log\" = \"0.3\"\n");
        let same = read(
            "[dependencies]\n\n\"acme:log\" = \"0.3\"\n\"acme:kv\" = { version = \"^1.2\" }\n",
        );
        let other = read("[dependencies]\n\"acme:kv\" = \"^1.3\"\n\"acme:log\" = \"0.3\"\n");
        assert_eq!(one, same);
        assert_ne!(one, other);
    }
}
