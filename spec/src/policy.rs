//! Capability policy: which imports an artifact may have, as globs over import names
//! (`ns:pkg/iface@version`; `*` matches any run of characters, `/` and `@` included).

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Deny and allow lists.
#[derive(Debug, Clone)]
pub struct ImportPolicy {
    deny: GlobSet,
    allow: Option<GlobSet>,
    deny_patterns: Vec<String>,
}

/// A pattern that is not a glob.
#[derive(Debug, thiserror::Error)]
#[error("invalid import pattern `{pattern}`: {reason}")]
pub struct PolicyError {
    pattern: String,
    reason: String,
}

/// One import the policy refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The import.
    pub import: String,
    /// The reason, naming the pattern.
    pub reason: String,
}

impl ImportPolicy {
    /// Builds a policy; an empty allow list allows everything not denied.
    pub fn new(deny: &[String], allow: &[String]) -> Result<Self, PolicyError> {
        Ok(ImportPolicy {
            deny: globs(deny)?,
            allow: if allow.is_empty() {
                None
            } else {
                Some(globs(allow)?)
            },
            deny_patterns: deny.to_vec(),
        })
    }

    /// Whether the policy restricts anything.
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow.is_none()
    }

    /// Every import the policy refuses.
    pub fn check<'a>(&self, imports: impl IntoIterator<Item = &'a str>) -> Vec<Refusal> {
        let mut out = Vec::new();
        for import in imports {
            if let Some(i) = self.deny.matches(import).first() {
                out.push(Refusal {
                    import: import.to_owned(),
                    reason: format!("matches the deny pattern `{}`", self.deny_patterns[*i]),
                });
            } else if let Some(allow) = &self.allow
                && !allow.is_match(import)
            {
                out.push(Refusal {
                    import: import.to_owned(),
                    reason: "matches no allow pattern".into(),
                });
            }
        }
        out
    }
}

/// What an artifact imports, as the policy's globs see it: interfaces and functions for a
/// component, import module names for a core module.
pub fn imports(wasm: &[u8], kind: crate::WasmKind) -> Result<Vec<String>, crate::Error> {
    Ok(match kind {
        crate::WasmKind::Component => crate::component_section(wasm)?.imports,
        crate::WasmKind::Module => crate::module_import_names(wasm),
    })
}

fn globs(patterns: &[String]) -> Result<GlobSet, PolicyError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob: Glob = GlobBuilder::new(pattern)
            .literal_separator(false)
            .build()
            .map_err(|e| PolicyError {
                pattern: pattern.clone(),
                reason: e.kind().to_string(),
            })?;
        set.add(glob);
    }
    set.build().map_err(|e| PolicyError {
        pattern: patterns.join(", "),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_then_allow() {
        let policy = ImportPolicy::new(&["wasi:sockets/*".into()], &["wasi:*".into()]).unwrap();
        let refused = policy.check([
            "wasi:cli/stdout@0.2.12",
            "wasi:sockets/tcp@0.2.0",
            "acme:db/query@1.0.0",
        ]);
        assert_eq!(
            refused,
            [
                Refusal {
                    import: "wasi:sockets/tcp@0.2.0".into(),
                    reason: "matches the deny pattern `wasi:sockets/*`".into()
                },
                Refusal {
                    import: "acme:db/query@1.0.0".into(),
                    reason: "matches no allow pattern".into()
                }
            ]
        );
        assert!(ImportPolicy::new(&[], &[]).unwrap().is_empty());
        assert!(ImportPolicy::new(&["wasi:[".into()], &[]).is_err());
    }
}
