//! How artifacts are named, the same way in every command. The rule, with no guessing
//! beyond it:
//!
//! | form | means |
//! |---|---|
//! | `FILE.wasm`, `FILE.wat` | a file (the extension decides) |
//! | `oci:DIR:TAG`, `oci:DIR@sha256:…`, `oci:DIR` | an OCI image layout directory |
//! | `HOST/REPO[:TAG\|@DIGEST]` | a registry (`HOST` has a `.` or a `:port`, or is `localhost`) |
//! | `NAME[:TAG\|@DIGEST]` | the embedded store (no host); `TAG` defaults to `latest` |

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use wasmoci_registry::{LayoutRef, Reference};
use wasmoci_spec::Digest;

/// A named artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactRef {
    /// A `.wasm` or `.wat` file.
    File(PathBuf),
    /// A manifest in an OCI image layout directory.
    Layout {
        /// The directory.
        dir: PathBuf,
        /// Which manifest.
        reference: LayoutRef,
    },
    /// A manifest in the embedded store, by `NAME:TAG` or digest.
    Store(LayoutRef),
    /// A registry reference, parsed.
    Registry(Reference),
}

/// A name that is none of the forms, or a registry reference that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// None of the forms.
    #[error(
        "invalid artifact reference `{text}`: {reason}; name a `.wasm`/`.wat` file, `oci:DIR[:TAG]`, `NAME:TAG` in the store, or `HOST/REPO:TAG`"
    )]
    Form {
        /// The name.
        text: String,
        /// Why.
        reason: String,
    },
    /// A registry name that does not parse.
    #[error(transparent)]
    Registry(#[from] wasmoci_registry::reference::ReferenceError),
}

impl FromStr for ArtifactRef {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| ReferenceError::Form {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(fail("it is empty"));
        }
        let lower = text.to_ascii_lowercase();
        if lower.ends_with(".wasm") || lower.ends_with(".wat") {
            return Ok(ArtifactRef::File(PathBuf::from(text)));
        }
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, reference) = if let Some((left, digest)) = rest.rsplit_once('@') {
                // `oci:DIR:TAG@DIGEST`, as `build` prints it: the digest decides.
                let digest: Digest = digest.parse().map_err(|e| fail(&format!("{e}")))?;
                let dir = left.split_once(':').map_or(left, |(dir, _)| dir);
                (dir, LayoutRef::Digest(digest))
            } else if let Some((dir, tag)) = rest.split_once(':') {
                if tag.is_empty() {
                    return Err(fail("the tag after `oci:DIR:` is empty"));
                }
                (dir, LayoutRef::Tag(tag.to_owned()))
            } else {
                (rest, LayoutRef::Only)
            };
            if dir.is_empty() {
                return Err(fail("`oci:` needs a directory"));
            }
            return Ok(ArtifactRef::Layout {
                dir: PathBuf::from(dir),
                reference,
            });
        }
        if let Some((first, _)) = text.split_once('/')
            && (first.contains('.') || first.contains(':') || first == "localhost")
        {
            return Ok(ArtifactRef::Registry(text.parse()?));
        }
        // The embedded store: NAME[:TAG] or NAME@DIGEST.
        if let Some((name, digest)) = text.split_once('@') {
            // `NAME:TAG@DIGEST`, as `build` prints it: that name at that digest (the tag
            // is not checked, as docker's).
            let (name, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
            check_name(name).map_err(|r| fail(&r))?;
            check_tag(tag).map_err(|r| fail(&r))?;
            let digest: Digest = digest.parse().map_err(|e| fail(&format!("{e}")))?;
            return Ok(ArtifactRef::Store(LayoutRef::Named {
                name: name.to_owned(),
                digest,
            }));
        }
        let (name, tag) = text.rsplit_once(':').unwrap_or((text, "latest"));
        check_name(name).map_err(|r| fail(&r))?;
        check_tag(tag).map_err(|r| fail(&r))?;
        Ok(ArtifactRef::Store(LayoutRef::Tag(format!("{name}:{tag}"))))
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactRef::File(path) => write!(f, "{}", path.display()),
            ArtifactRef::Layout { dir, reference } => {
                write!(f, "oci:{}", dir.display())?;
                match reference {
                    LayoutRef::Tag(tag) => write!(f, ":{tag}"),
                    LayoutRef::Digest(d) => write!(f, "@{d}"),
                    LayoutRef::Named { name, digest } => write!(f, ":{name}@{digest}"),
                    LayoutRef::Only => Ok(()),
                }
            }
            ArtifactRef::Store(LayoutRef::Tag(tag)) => f.write_str(tag),
            ArtifactRef::Store(LayoutRef::Digest(d)) => write!(f, "@{d}"),
            ArtifactRef::Store(LayoutRef::Named { name, digest }) => write!(f, "{name}@{digest}"),
            ArtifactRef::Store(LayoutRef::Only) => f.write_str("(store)"),
            ArtifactRef::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// Checks a repository name: lowercase components of `[a-z0-9]` joined by `.`, `_`,
/// `__` or `-`, separated by `/` (the OCI distribution grammar).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    for component in name.split('/') {
        let ok = !component.is_empty()
            && component
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && component.as_bytes()[0].is_ascii_alphanumeric()
            && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric();
        if !ok {
            return Err(format!(
                "`{name}` is not a valid name: use lowercase letters, digits and `._-`, starting and ending with a letter or digit"
            ));
        }
    }
    Ok(())
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}` (the OCI distribution grammar).
pub fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.as_bytes()[0] == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a valid tag: use letters, digits and `._-` (at most 128, not starting with `.` or `-`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ArtifactRef {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn one_rule_for_every_form() {
        assert_eq!(parse("x/app.wasm"), ArtifactRef::File("x/app.wasm".into()));
        assert_eq!(parse("app.WAT"), ArtifactRef::File("app.WAT".into()));
        assert_eq!(
            parse("oci:out:hello:1.0.0"),
            ArtifactRef::Layout {
                dir: "out".into(),
                reference: LayoutRef::Tag("hello:1.0.0".into())
            }
        );
        let digest = wasmoci_spec::Digest::of(b"");
        assert_eq!(
            parse(&format!("oci:some/dir@{digest}")),
            ArtifactRef::Layout {
                dir: "some/dir".into(),
                reference: LayoutRef::Digest(digest)
            }
        );
        assert_eq!(
            parse(&format!("oci:out:hello:1.0.0@{digest}")),
            ArtifactRef::Layout {
                dir: "out".into(),
                reference: LayoutRef::Digest(digest)
            }
        );
        assert_eq!(
            parse(&format!("hello:1.0.0@{digest}")),
            ArtifactRef::Store(LayoutRef::Named {
                name: "hello".into(),
                digest
            })
        );
        assert_eq!(
            parse(&format!("hello@{digest}")).to_string(),
            format!("hello@{digest}")
        );
        assert_eq!(
            parse("oci:dir"),
            ArtifactRef::Layout {
                dir: "dir".into(),
                reference: LayoutRef::Only
            }
        );
        assert_eq!(
            parse("hello:0.1.0"),
            ArtifactRef::Store(LayoutRef::Tag("hello:0.1.0".into()))
        );
        assert_eq!(
            parse("team/hello"),
            ArtifactRef::Store(LayoutRef::Tag("team/hello:latest".into()))
        );
        for registry in [
            "ghcr.io/o/r:1",
            "localhost:5000/r",
            "localhost/r@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "127.0.0.1:5000/a/b",
        ] {
            assert_eq!(
                parse(registry),
                ArtifactRef::Registry(registry.parse().unwrap())
            );
            assert_eq!(parse(registry).to_string(), registry);
        }
    }

    #[test]
    fn bad_names_say_why() {
        for bad in [
            "",
            "Hello:1",
            "oci:",
            "oci:dir:",
            "hello:-x",
            "oci:d@sha256:12",
        ] {
            let err = bad.parse::<ArtifactRef>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid artifact reference `{bad}`")),
                "{err}"
            );
        }
    }
}
