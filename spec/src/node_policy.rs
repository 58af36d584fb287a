//! The node policy (`/etc/wasmoci/policy.toml`): what a node lets run, which the shim
//! enforces at Create and `wasmoci node policy check` evaluates from a workstation.
//!
//! ```toml
//! [images]
//! allow = ["registry.example.com/team-a/*"]   # repositories (globs); empty = any
//! require-digest = true                          # only refs pinned by digest may run
//! [signatures]
//! keys = ["/etc/wasmoci/keys/team-a.pub"]       # a valid signature by one of these is required
//! [components]
//! deny-imports = ["wasi:sockets/*"]             # same globs as `validate --deny-import`
//! max-size = "64MiB"
//! [direct-pull]
//! allow = ["registry.example.com/team-a/*"]   # repositories pulled with the node's credentials
//! credentials = "node"                           # "node" or "anonymous" (the default)
//! insecure-registries = ["127.0.0.1:5000"]      # may be on the node; plain HTTP on loopback
//! ```
//!
//! Parsing and the rules are here (pure); reading the file, fetching signatures and
//! reading the wasm are the caller's. Unknown keys are errors: a policy someone
//! misspelled must not quietly allow more.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::Digest;
use crate::policy::ImportPolicy;

/// Where a node keeps its policy.
pub const DEFAULT_PATH: &str = "/etc/wasmoci/policy.toml";

/// The largest policy file read.
pub const MAX_POLICY_FILE: u64 = 1 << 20;

/// A policy that cannot be used: the caller names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyFileError(String);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    images: Images,
    #[serde(default)]
    signatures: Signatures,
    #[serde(default)]
    components: Components,
    #[serde(default)]
    direct_pull: DirectPull,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Images {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    require_digest: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Signatures {
    #[serde(default)]
    keys: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Components {
    #[serde(default)]
    deny_imports: Vec<String>,
    max_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DirectPull {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    credentials: Credentials,
    #[serde(default)]
    insecure_registries: Vec<String>,
}

/// Which credentials a direct pull of an allowed repository uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Credentials {
    /// None (the default).
    #[default]
    Anonymous,
    /// The node's (its docker `config.json`, its per-host variables).
    Node,
}

/// A parsed node policy.
#[derive(Debug, Clone)]
pub struct NodePolicy {
    allow: Option<(GlobSet, Vec<String>)>,
    /// Only references pinned by a digest may run.
    pub require_digest: bool,
    /// The public key files a valid signature must be by (none: no signature needed).
    pub keys: Vec<String>,
    imports: ImportPolicy,
    deny_imports: Vec<String>,
    /// The largest wasm that may run.
    pub max_size: Option<u64>,
    direct_pull: Option<GlobSet>,
    /// What credentials a direct pull of a repository in `[direct-pull] allow` uses.
    pub direct_pull_credentials: Credentials,
    /// Registries (`host:port`) a direct pull may reach on this node or next to it.
    pub insecure_registries: Vec<String>,
}

/// What a rule needs to know of what is about to run.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// `HOST/REPO` of each name the image goes by (none: a file in a root filesystem of an
    /// image nobody named). containerd 1.7's CRI does not say which name a pod used when
    /// two name the same content, so every name is given, and a rule holds when it holds
    /// for one of them: it is the same content.
    pub repositories: &'a [String],
    /// Whether one of those names is pinned by a digest.
    pub pinned: bool,
    /// The manifest digest containerd (or our pull) resolved, when known.
    pub manifest: Option<Digest>,
    /// The wasm's size.
    pub size: u64,
}

/// A rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The rule holds.
    Pass,
    /// The rule is not set.
    NotSet,
    /// The rule refuses, and why.
    Refused(String),
}

/// A rule and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `images.allow`, `images.require-digest`, `components.max-size`, …
    pub rule: &'static str,
    /// Its verdict.
    pub verdict: Verdict,
}

fn globs(patterns: &[String], key: &str) -> Result<GlobSet, PolicyFileError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(false)
            .build()
            .map_err(|e| {
                PolicyFileError(format!(
                    "`{key}`: invalid pattern `{pattern}`: {}",
                    e.kind()
                ))
            })?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| PolicyFileError(format!("`{key}`: {e}")))
}

impl NodePolicy {
    /// Parses a policy file's text. Unknown keys, wrong types, bad globs and sizes are
    /// errors naming the line or the key.
    pub fn parse(text: &str) -> Result<NodePolicy, PolicyFileError> {
        let file: File = toml::from_str(text).map_err(|e| PolicyFileError(one_line(&e)))?;
        let allow = if file.images.allow.is_empty() {
            None
        } else {
            Some((
                globs(&file.images.allow, "images.allow")?,
                file.images.allow,
            ))
        };
        let imports = ImportPolicy::new(&file.components.deny_imports, &[])
            .map_err(|e| PolicyFileError(format!("`components.deny-imports`: {e}")))?;
        let max_size = file
            .components
            .max_size
            .as_deref()
            .map(|text| {
                crate::units::parse_size(text)
                    .map_err(|e| PolicyFileError(format!("`components.max-size`: {e}")))
            })
            .transpose()?;
        let direct_pull = if file.direct_pull.allow.is_empty() {
            None
        } else {
            Some(globs(&file.direct_pull.allow, "direct-pull.allow")?)
        };
        Ok(NodePolicy {
            allow,
            require_digest: file.images.require_digest,
            keys: file.signatures.keys,
            imports,
            deny_imports: file.components.deny_imports,
            max_size,
            direct_pull,
            direct_pull_credentials: file.direct_pull.credentials,
            insecure_registries: file.direct_pull.insecure_registries,
        })
    }

    /// A policy that allows everything (no file).
    pub fn open() -> NodePolicy {
        NodePolicy::parse("").expect("the empty policy parses")
    }

    /// The `components.deny-imports` patterns.
    pub fn deny_imports(&self) -> &[String] {
        &self.deny_imports
    }

    /// Whether the component's imports must be read (`components.deny-imports` is set).
    pub fn checks_imports(&self) -> bool {
        !self.imports.is_empty()
    }

    /// Whether `repository` (`HOST/REPO`) is one `images.allow` lets run (any, when unset).
    pub fn allows(&self, repository: &str) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|(set, _)| set.is_match(repository))
    }

    /// Whether a direct pull of `repository` (`HOST/REPO`) may use the node's credentials.
    pub fn direct_pull_credentials_for(&self, repository: &str) -> bool {
        self.direct_pull_credentials == Credentials::Node
            && self
                .direct_pull
                .as_ref()
                .is_some_and(|set| set.is_match(repository))
    }

    /// The rules that need no I/O, each with its verdict: `images.allow`,
    /// `images.require-digest`, `components.max-size`. (`signatures.keys` and
    /// `components.deny-imports` are [`NodePolicy::imports_verdict`] and the caller's.)
    pub fn check(&self, subject: &Subject<'_>) -> Vec<Checked> {
        let allow = match (&self.allow, subject.repositories) {
            (None, _) => Verdict::NotSet,
            (Some(_), []) => Verdict::Refused(
                "the image's repository is not known (a file in the root filesystem of an image containerd cannot name)".into(),
            ),
            (Some((set, _)), names) if names.iter().any(|r| set.is_match(r)) => Verdict::Pass,
            (Some((_, patterns)), names) => Verdict::Refused(format!(
                "{} matches none of {}",
                quoted(names),
                quoted(patterns)
            )),
        };
        let pinned = match (self.require_digest, subject.pinned) {
            (false, _) => Verdict::NotSet,
            (true, true) => Verdict::Pass,
            (true, false) => {
                Verdict::Refused("the image is named by a tag, not pinned by a digest".into())
            }
        };
        let size = match self.max_size {
            None => Verdict::NotSet,
            Some(max) if subject.size <= max => Verdict::Pass,
            Some(max) => Verdict::Refused(format!(
                "the wasm is {} bytes, more than {max}",
                subject.size
            )),
        };
        vec![
            Checked {
                rule: "images.allow",
                verdict: allow,
            },
            Checked {
                rule: "images.require-digest",
                verdict: pinned,
            },
            Checked {
                rule: "components.max-size",
                verdict: size,
            },
        ]
    }

    /// `components.deny-imports` over a component's imports.
    pub fn imports_verdict<'a>(&self, imports: impl IntoIterator<Item = &'a str>) -> Checked {
        let verdict = if self.imports.is_empty() {
            Verdict::NotSet
        } else {
            let refused = self.imports.check(imports);
            match refused.first() {
                None => Verdict::Pass,
                Some(first) => Verdict::Refused(format!(
                    "it imports `{}`, which {} ({} denied import(s) in all; denied: {})",
                    first.import,
                    first.reason,
                    refused.len(),
                    quoted(&self.deny_imports)
                )),
            }
        };
        Checked {
            rule: "components.deny-imports",
            verdict,
        }
    }
}

/// toml's error on one line: where (`TOML parse error at line 3, column 1`) and what,
/// without the quoted source lines between.
fn one_line(error: &toml::de::Error) -> String {
    let text = error.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_owned();
    let rest: Vec<&str> = lines.filter(|l| !l.contains('|')).collect();
    if rest.is_empty() {
        first
    } else {
        format!("{first}: {}", rest.join(" "))
    }
}

fn quoted(patterns: &[String]) -> String {
    patterns
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[images]
allow = ["registry.example.com/team-a/*"]
require-digest = true
[signatures]
keys = ["/etc/wasmoci/keys/team-a.pub"]
[components]
deny-imports = ["wasi:sockets/*"]
max-size = "64MiB"
[direct-pull]
allow = ["registry.example.com/team-a/*"]
credentials = "node"
"#;

    fn subject(repositories: &[String], pinned: bool, size: u64) -> Subject<'_> {
        Subject {
            repositories,
            pinned,
            manifest: None,
            size,
        }
    }

    fn refused(checked: &[Checked]) -> Vec<&'static str> {
        checked
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Refused(_)))
            .map(|c| c.rule)
            .collect()
    }

    #[test]
    fn the_example_policy_and_its_rules() {
        let policy = NodePolicy::parse(EXAMPLE).unwrap();
        assert_eq!(policy.keys, ["/etc/wasmoci/keys/team-a.pub"]);
        assert_eq!(policy.max_size, Some(64 << 20));
        let a = ["registry.example.com/team-a/app".to_owned()];
        let good = policy.check(&subject(&a, true, 10));
        assert!(refused(&good).is_empty(), "{good:?}");
        // The same content under another name too: it is allowed by the first.
        let both = [
            "registry.example.com/team-b/app".to_owned(),
            "registry.example.com/team-a/app".to_owned(),
        ];
        assert!(refused(&policy.check(&subject(&both, true, 10))).is_empty());
        let b = ["registry.example.com/team-b/app".to_owned()];
        let bad = policy.check(&subject(&b, false, 65 << 20));
        assert_eq!(
            refused(&bad),
            [
                "images.allow",
                "images.require-digest",
                "components.max-size"
            ]
        );
        let imports = policy.imports_verdict(["wasi:cli/stdout@0.2.0", "wasi:sockets/tcp@0.2.0"]);
        assert!(
            matches!(&imports.verdict, Verdict::Refused(r) if r.contains("wasi:sockets/tcp@0.2.0"))
        );
        assert!(policy.direct_pull_credentials_for("registry.example.com/team-a/app"));
        assert!(!policy.direct_pull_credentials_for("registry.example.com/team-b/app"));
    }

    #[test]
    fn no_file_allows_everything() {
        let policy = NodePolicy::open();
        let checked = policy.check(&Subject {
            repositories: &[],
            pinned: false,
            manifest: None,
            size: u64::MAX,
        });
        assert!(checked.iter().all(|c| c.verdict == Verdict::NotSet));
        assert!(!policy.checks_imports());
        assert!(!policy.direct_pull_credentials_for("r.example/a"));
    }

    #[test]
    fn a_broken_policy_names_the_line_or_the_key() {
        let unknown =
            NodePolicy::parse("[images]\nallow = []\nrequire-digests = true\n").unwrap_err();
        assert!(
            unknown.to_string().starts_with(
                "TOML parse error at line 3, column 1: unknown field `require-digests`"
            ),
            "{unknown}"
        );
        assert!(!unknown.to_string().contains('|'), "{unknown}");
        assert!(unknown.to_string().contains("require-digests"), "{unknown}");
        let syntax = NodePolicy::parse("[images\n").unwrap_err();
        assert!(syntax.to_string().contains("line 1"), "{syntax}");
        let size = NodePolicy::parse("[components]\nmax-size = \"lots\"\n").unwrap_err();
        assert!(size.to_string().contains("components.max-size"), "{size}");
        let glob = NodePolicy::parse("[images]\nallow = [\"a/[\"]\n").unwrap_err();
        assert!(glob.to_string().contains("images.allow"), "{glob}");
        let credentials = NodePolicy::parse("[direct-pull]\ncredentials = \"root\"\n").unwrap_err();
        assert!(credentials.to_string().contains("line 2"), "{credentials}");
    }
}
