//! `[dependencies]` and `[registries]` of `wasmoci.toml`, read into what the resolver
//! asks for. Every refusal names the line.
//!
//! ```toml
//! [dependencies]
//! "acme:kv"   = { oci = "ghcr.io/acme/kv", version = "^1.2" }  # a repository, tags = versions
//! "acme:log"  = "~0.3"                                         # repository from [registries]
//! "acme:auth" = { oci = "ghcr.io/acme/auth@sha256:…" }         # pinned, no range
//! "acme:dev"  = { path = "../dev/dev.wasm" }                   # a local file
//! "fast-kv"   = { package = "acme:kv", oci = "ghcr.io/acme/kv", version = "2" }  # renamed
//!
//! [registries]
//! acme = "ghcr.io/acme-corp/"     # namespace → HOST/PREFIX: HOST/PREFIX<ns>/<name>
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use semver::VersionReq;
use toml::Spanned;
use wasmoci_spec::Digest;

/// One `[dependencies]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The key as written: a package name, or an alias.
    pub key: String,
    /// The WIT package (`ns:pkg`).
    pub package: String,
    /// Whether the key is an alias (`package = …` given).
    pub renamed: bool,
    /// Where it comes from.
    pub source: Source,
    /// Its line in `wasmoci.toml` (1-based).
    pub line: usize,
}

/// Where a dependency comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Versions of an OCI repository (`None`: from `[registries]` or the namespace's
    /// registry), within `requirement`.
    Range {
        /// `oci = "HOST/REPO"`, if given.
        repository: Option<String>,
        /// `version`.
        requirement: VersionReq,
    },
    /// One manifest, by digest.
    Pinned {
        /// The repository.
        repository: String,
        /// The manifest digest.
        digest: Digest,
    },
    /// A file, relative to the project.
    Path(PathBuf),
}

/// `[dependencies]` and `[registries]` as the file has them, with spans.
pub type RawDependencies = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// A `[dependencies]` or `[registries]` entry that cannot be used: its line, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    /// The line (1-based).
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// The line of byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Whether `name` is a WIT package name without version: `ns:pkg`, each part kebab-case
/// (lowercase letters, digits, `-` between words).
pub fn is_package_name(name: &str) -> bool {
    match name.split_once(':') {
        Some((ns, pkg)) => is_kebab(ns) && is_kebab(pkg),
        None => false,
    }
}

fn is_kebab(part: &str) -> bool {
    !part.is_empty()
        && part.split('-').all(|word| {
            !word.is_empty()
                && word.starts_with(|c: char| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// Reads `[dependencies]` (in `text`, for line numbers).
pub fn dependencies(text: &str, raw: &RawDependencies) -> Result<Vec<Dependency>, EntryError> {
    let mut out = Vec::new();
    for (key, value) in raw {
        let line = line_of(text, key.span().start);
        let fail = |reason: String| EntryError { line, reason };
        let key_text = key.get_ref().clone();
        let (package, renamed, source) = match value.get_ref() {
            toml::Value::String(req) => (key_text.clone(), false, range(None, req).map_err(fail)?),
            toml::Value::Table(table) => entry(&key_text, table).map_err(fail)?,
            other => {
                return Err(fail(format!(
                    "`{key_text}` must be a version requirement (\"^1.2\") or a table, not {}",
                    other.type_str()
                )));
            }
        };
        if !is_package_name(&package) {
            let reason = if renamed {
                format!("`package = \"{package}\"` is not a WIT package name (`ns:pkg`)")
            } else {
                format!(
                    "`{key_text}` is not a WIT package name (`ns:pkg`); a renamed entry needs `package = \"ns:pkg\"`"
                )
            };
            return Err(fail(reason));
        }
        if renamed && !is_kebab(&key_text) {
            return Err(fail(format!(
                "the alias `{key_text}` must be kebab-case (`fast-kv`)"
            )));
        }
        out.push(Dependency {
            key: key_text,
            package,
            renamed,
            source,
            line,
        });
    }
    out.sort_by_key(|d| d.line);
    Ok(out)
}

fn entry(
    key: &str,
    table: &toml::map::Map<String, toml::Value>,
) -> Result<(String, bool, Source), String> {
    let mut text = BTreeMap::new();
    for (name, value) in table {
        if !["oci", "version", "path", "package"].contains(&name.as_str()) {
            return Err(format!(
                "unknown key `{name}` in `{key}` (expected `oci`, `version`, `path` or `package`)"
            ));
        }
        let Some(s) = value.as_str() else {
            return Err(format!("`{key}.{name}` must be a string"));
        };
        text.insert(name.as_str(), s);
    }
    let (package, renamed) = match text.get("package") {
        Some(package) => ((*package).to_owned(), true),
        None => (key.to_owned(), false),
    };
    let source = match (text.get("path"), text.get("oci"), text.get("version")) {
        (Some(path), None, None) => Source::Path(PathBuf::from(path)),
        (Some(_), _, _) => {
            return Err(format!(
                "`{key}` has `path` and `oci` or `version`: a local file has no versions"
            ));
        }
        (None, Some(oci), version) => match oci.split_once('@') {
            Some((repository, digest)) => {
                if version.is_some() {
                    return Err(format!(
                        "`{key}` pins a digest and names a `version`: keep one"
                    ));
                }
                let digest = digest
                    .parse::<Digest>()
                    .map_err(|e| format!("`{key}.oci` `{oci}`: {e}"))?;
                Source::Pinned {
                    repository: repository.to_owned(),
                    digest,
                }
            }
            None => {
                let Some(version) = version else {
                    return Err(format!(
                        "`{key}` needs a `version` requirement, or a digest in `oci` (`REPO@sha256:…`)"
                    ));
                };
                range(Some(oci), version)?
            }
        },
        (None, None, Some(version)) => range(None, version)?,
        (None, None, None) => {
            return Err(format!("`{key}` needs `version`, `oci` or `path`"));
        }
    };
    Ok((package, renamed, source))
}

fn range(repository: Option<&str>, requirement: &str) -> Result<Source, String> {
    let parsed = VersionReq::parse(requirement)
        .map_err(|e| format!("`{requirement}` is not a version requirement: {e}"))?;
    Ok(Source::Range {
        repository: repository.map(str::to_owned),
        requirement: parsed,
    })
}

/// `[registries]`: namespace → `HOST/PREFIX`.
pub fn registries(
    text: &str,
    raw: &RawDependencies,
) -> Result<BTreeMap<String, String>, EntryError> {
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        let line = line_of(text, key.span().start);
        let Some(prefix) = value.get_ref().as_str() else {
            return Err(EntryError {
                line,
                reason: format!("`{}` must be a string `HOST/PREFIX`", key.get_ref()),
            });
        };
        if !is_kebab(key.get_ref()) || prefix.is_empty() || prefix.contains('@') {
            return Err(EntryError {
                line,
                reason: format!(
                    "`{} = \"{prefix}\"` must map a namespace to `HOST/PREFIX` (`ghcr.io/acme/`)",
                    key.get_ref()
                ),
            });
        }
        out.insert(key.get_ref().clone(), prefix.to_owned());
    }
    Ok(out)
}

/// The repository of `package` (`ns:name`) under `prefix`, by wkg's convention:
/// `HOST/PREFIX<ns>/<name>`.
pub fn repository_under(prefix: &str, package: &str) -> String {
    let (ns, name) = package.split_once(':').unwrap_or((package, ""));
    format!("{prefix}{ns}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        dependencies: RawDependencies,
        #[serde(default)]
        registries: RawDependencies,
    }

    fn read(text: &str) -> Result<Vec<Dependency>, EntryError> {
        let file: File = toml::from_str(text).unwrap();
        registries(text, &file.registries)?;
        dependencies(text, &file.dependencies)
    }

    #[test]
    fn reads_every_form() {
        let deps = read(concat!(
            "[dependencies]\n",
            "\"acme:kv\" = { oci = \"ghcr.io/acme/kv\", version = \"^1.2\" }\n",
            "\"acme:log\" = \"~0.3\"\n",
            "\"acme:auth\" = { oci = \"ghcr.io/acme/auth@sha256:0000000000000000000000000000000000000000000000000000000000000000\" }\n",
            "\"acme:dev\" = { path = \"../dev/dev.wasm\" }\n",
            "fast-kv = { package = \"acme:kv\", oci = \"ghcr.io/acme/kv\", version = \"2\" }\n",
            "[registries]\nacme = \"ghcr.io/acme-corp/\"\n",
        ))
        .unwrap();
        let keys: Vec<_> = deps.iter().map(|d| (d.key.as_str(), d.line)).collect();
        assert_eq!(
            keys,
            [
                ("acme:kv", 2),
                ("acme:log", 3),
                ("acme:auth", 4),
                ("acme:dev", 5),
                ("fast-kv", 6)
            ]
        );
        assert!(deps[4].renamed && deps[4].package == "acme:kv");
        assert!(
            matches!(&deps[2].source, Source::Pinned { repository, .. } if repository == "ghcr.io/acme/auth")
        );
        assert_eq!(
            repository_under("ghcr.io/acme-corp/", "acme:kv"),
            "ghcr.io/acme-corp/acme/kv"
        );
    }

    #[test]
    fn refusals_name_the_line() {
        let cases = [
            ("\"acme:kv\" = \"^^1\"", "is not a version requirement"),
            (
                "\"acme:kv\" = { versoin = \"1\" }",
                "unknown key `versoin` in `acme:kv`",
            ),
            ("fast-kv = \"1\"", "`fast-kv` is not a WIT package name"),
            ("\"Acme:kv\" = \"1\"", "`Acme:kv` is not a WIT package name"),
            (
                "x = { package = \"acme\", version = \"1\" }",
                "`package = \"acme\"` is not a WIT package name",
            ),
            (
                "\"acme:kv\" = { oci = \"r@sha256:00\", version = \"1\" }",
                "pins a digest and names a `version`",
            ),
            (
                "\"acme:kv\" = { oci = \"ghcr.io/acme/kv\" }",
                "needs a `version` requirement",
            ),
            (
                "\"acme:kv\" = { path = \"a.wasm\", version = \"1\" }",
                "a local file has no versions",
            ),
            ("\"acme:kv\" = 3", "must be a version requirement"),
        ];
        for (entry, expected) in cases {
            let text = format!("# a comment\n[dependencies]\n{entry}\n");
            let error = read(&text).unwrap_err();
            assert_eq!(error.line, 3, "{entry}");
            assert!(error.reason.contains(expected), "{entry}: {}", error.reason);
        }
    }
}
