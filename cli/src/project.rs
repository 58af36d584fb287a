//! `wasmoci.toml`: the project file.
//!
//! ```toml
//! [package]
//! name = "hello"                       # required: the artifact's name
//! version = "0.1.0"                    # required: semver; the tag
//! authors = ["Alyssa P. Hacker <alyssa@example.com>"]
//! license = "Apache-2.0"               # SPDX expression
//! description = "Says hello"
//! source = "https://github.com/example/hello"
//! homepage = "https://example.com/hello"
//! revision = "4f2c1a9"                 # source control revision
//!
//! [build]
//! command = "cargo build --release --target wasm32-wasip1"   # optional, run first
//! wasm = "target/wasm32-wasip1/release/hello.wasm"           # required: .wasm or .wat
//! wit = "wit"                          # optional: give a core module this WIT…
//! world = "hello"                      # …and this world
//! module = false                       # true keeps a wasip1 module a module
//!
//! [policy]
//! deny-imports = ["wasi:sockets/*"]    # globs over `ns:pkg/iface@version`
//! allow-imports = ["wasi:*"]
//!
//! [dependencies]                       # see `ops::deps::manifest`
//! "acme:kv" = { oci = "ghcr.io/acme/kv", version = "^1.2" }
//!
//! [registries]
//! acme = "ghcr.io/acme-corp/"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ops::deps::manifest::{self, Dependency, RawDependencies};
use std::collections::BTreeMap;

/// The file name.
pub const PROJECT_FILE: &str = "wasmoci.toml";

/// A parsed `wasmoci.toml`, with paths made relative to its directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// `[package]`.
    pub package: Package,
    /// `[build]`.
    pub build: BuildSection,
    /// `[policy]`.
    #[serde(default)]
    pub policy: PolicySection,
    /// `[dependencies]`, as written.
    #[serde(default, rename = "dependencies")]
    raw_dependencies: RawDependencies,
    /// `[registries]`, as written.
    #[serde(default, rename = "registries")]
    raw_registries: RawDependencies,
    /// `[compose]`.
    #[serde(default)]
    pub compose: Option<ComposeSection>,
    /// `[dependencies]`, read.
    #[serde(skip)]
    pub dependencies: Vec<Dependency>,
    /// `[registries]`: namespace → `HOST/PREFIX`.
    #[serde(skip)]
    pub registries: BTreeMap<String, String>,
    /// The directory holding the file.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// `[package]`: what the artifact is, mirrored into its metadata and annotations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The artifact's name.
    pub name: String,
    /// Its version (semver).
    pub version: String,
    /// Its authors.
    #[serde(default)]
    pub authors: Vec<String>,
    /// SPDX license expression.
    pub license: Option<String>,
    /// One-line description.
    pub description: Option<String>,
    /// Source repository URL.
    pub source: Option<String>,
    /// Homepage URL.
    pub homepage: Option<String>,
    /// Source control revision.
    pub revision: Option<String>,
}

/// `[build]`: how to get the wasm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// A shell command run in the project directory first.
    pub command: Option<String>,
    /// The `.wasm` (or `.wat`) file the command produces.
    pub wasm: PathBuf,
    /// A WIT directory to give a core module its world.
    pub wit: Option<PathBuf>,
    /// The world in `wit`.
    pub world: Option<String>,
    /// Keep a wasip1 core module a module.
    #[serde(default)]
    pub module: bool,
}

/// `[compose]`: the built component composed with locked dependencies, by plugging
/// (`plug = ["acme:kv", …]`: dependency names) or by a WAC document (`wac = "app.wac"`,
/// in which the built component is the package `root:component`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeSection {
    /// A WAC document, relative to the project.
    pub wac: Option<PathBuf>,
    /// Dependencies (or artifacts) plugged into the built component, in order.
    #[serde(default)]
    pub plug: Vec<String>,
}

/// `[policy]`: which imports an artifact may have.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicySection {
    /// Imports matching any of these globs are refused.
    #[serde(default)]
    pub deny_imports: Vec<String>,
    /// If set, only imports matching one of these globs are allowed.
    #[serde(default)]
    pub allow_imports: Vec<String>,
}

/// A project file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The file is not there.
    #[error("no `{PROJECT_FILE}` in `{}`", dir.display())]
    Missing {
        /// Where we looked.
        dir: PathBuf,
    },
    /// It cannot be read.
    #[error("failed to read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not valid TOML for this schema (unknown keys included).
    #[error("failed to parse `{}`: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and column.
        reason: String,
    },
    /// A `[dependencies]` or `[registries]` entry that cannot be used.
    #[error("invalid `[{section}]` entry in `{}`, line {line}: {reason}", path.display())]
    Entry {
        /// The file.
        path: PathBuf,
        /// `dependencies` or `registries`.
        section: &'static str,
        /// The entry's line.
        line: usize,
        /// Why.
        reason: String,
    },
    /// A value that parses but is wrong.
    #[error("invalid `{field}` in `{}`: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which key, e.g. `package.version`.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl Project {
    /// Reads `dir/wasmoci.toml`.
    pub fn load(dir: &Path) -> Result<Project, ProjectError> {
        let path = dir.join(PROJECT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProjectError::Missing {
                    dir: dir.to_owned(),
                });
            }
            Err(source) => return Err(ProjectError::Read { path, source }),
        };
        Project::parse(&text, &path)
    }

    /// Parses the text of the file at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Project, ProjectError> {
        let mut project: Project = toml::from_str(text).map_err(|e| ProjectError::Parse {
            path: path.to_owned(),
            reason: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        let invalid = |field, reason: String| ProjectError::Invalid {
            path: path.to_owned(),
            field,
            reason,
        };
        crate::reference::check_name(&project.package.name)
            .map_err(|r| invalid("package.name", r))?;
        semver::Version::parse(&project.package.version).map_err(|e| {
            invalid(
                "package.version",
                format!("`{}` is not a semver version: {e}", project.package.version),
            )
        })?;
        if project.build.world.is_some() && project.build.wit.is_none() {
            return Err(invalid(
                "build.world",
                "a world needs `build.wit`, the directory it is in".into(),
            ));
        }
        if let Some(compose) = &project.compose
            && compose.wac.is_some() != compose.plug.is_empty()
        {
            return Err(invalid(
                "compose",
                "give either `wac` (a WAC document) or `plug` (dependency names), not both or neither"
                    .into(),
            ));
        }
        let entry = |section| {
            move |e: manifest::EntryError| ProjectError::Entry {
                path: path.to_owned(),
                section,
                line: e.line,
                reason: e.reason,
            }
        };
        project.registries =
            manifest::registries(text, &project.raw_registries).map_err(entry("registries"))?;
        project.dependencies = manifest::dependencies(text, &project.raw_dependencies)
            .map_err(entry("dependencies"))?;
        project.dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        Ok(project)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Project, ProjectError> {
        Project::parse(text, Path::new("p/wasmoci.toml"))
    }

    #[test]
    fn reads_a_full_project() {
        let p = parse(
            r#"
            [package]
            name = "hello"
            version = "0.1.0"
            authors = ["A <a@example.com>"]
            license = "Apache-2.0"
            [build]
            command = "make"
            wasm = "out/hello.wasm"
            [policy]
            deny-imports = ["wasi:sockets/*"]
            "#,
        )
        .unwrap();
        assert_eq!(p.package.name, "hello");
        assert_eq!(p.build.wasm, Path::new("out/hello.wasm"));
        assert_eq!(p.policy.deny_imports, ["wasi:sockets/*"]);
        assert_eq!(p.dir, Path::new("p"));
        assert!(p.dependencies.is_empty());
    }

    #[test]
    fn a_bad_dependency_is_named_with_its_line() {
        let err = parse(
            "[package]\nname = \"a\"\nversion = \"1.0.0\"\n[build]\nwasm = \"a.wasm\"\n[dependencies]\n\"acme:kv\" = \"^^1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("invalid `[dependencies]` entry in `p/wasmoci.toml`, line 7: `^^1` is not a version requirement"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_versions_are_named() {
        let err = parse(
            "[package]\nname = \"a\"\nversion = \"1.0.0\"\nlicence = \"MIT\"\n[build]\nwasm = \"a.wasm\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `licence`"), "{err}");
        assert!(err.starts_with("failed to parse `p/wasmoci.toml`"), "{err}");
        let err = parse("[package]\nname = \"a\"\nversion = \"1.0\"\n[build]\nwasm = \"a.wasm\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "invalid `package.version` in `p/wasmoci.toml`: `1.0` is not a semver version"
            ),
            "{err}"
        );
    }
}
