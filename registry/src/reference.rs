//! Registry references: `HOST/REPO[:TAG][@DIGEST]`.

use std::fmt;
use std::str::FromStr;

use wasmoci_spec::Digest;

/// Docker Hub's registry host, as `docker.io` names are normalized to.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// A reference to a manifest in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `ghcr.io`, `localhost:5000`, `127.0.0.1:41234`, `[::1]:5000`.
    pub registry: String,
    /// `org/app` (`library/app` for a bare Docker Hub name).
    pub repository: String,
    /// The tag, if named.
    pub tag: Option<String>,
    /// The digest, if named (it wins over the tag).
    pub digest: Option<Digest>,
}

/// A reference that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid registry reference `{text}`: {reason}")]
pub struct ReferenceError {
    text: String,
    reason: String,
}

impl Reference {
    /// What to ask the registry for: the digest when there is one, else the tag
    /// (`latest` when neither is named).
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// Whether the registry is on this machine (`localhost`, 127.0.0.0/8, `[::1]`), where
    /// plain HTTP is used without being asked.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }

    /// `host/repository`, without a tag or digest.
    pub fn repository_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository at a digest.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

/// Whether `authority` (`host[:port]`) is this machine: `localhost` (any case), an IPv4
/// address in 127.0.0.0/8 or IPv6's loopback. The one rule for a registry and a token
/// service alike.
pub fn is_loopback_host(authority: &str) -> bool {
    let host = host_of(authority);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host part of `host[:port]` (brackets removed from IPv6).
pub fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            registry
        }
    })
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| ReferenceError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(digest.parse::<Digest>().map_err(|e| fail(&e.to_string()))?),
            ),
            None => (text, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| fail("expected `HOST/REPOSITORY[:TAG]`"))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(fail(
                "the first part must be a registry host (with a `.` or a `:port`, or `localhost`)",
            ));
        }
        // A tag follows the last `:` after the last `/`.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_owned())),
            _ => (path, None),
        };
        if repository.is_empty()
            || !repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            })
        {
            return Err(fail(
                "the repository must be lowercase letters, digits and `._-`, separated by `/`",
            ));
        }
        if let Some(tag) = &tag
            && (tag.is_empty()
                || tag.len() > 128
                || !tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                || tag.starts_with(['.', '-']))
        {
            return Err(fail(
                "the tag must be letters, digits and `._-` (at most 128)",
            ));
        }
        let (registry, repository) = match registry {
            "docker.io" | "index.docker.io" | DOCKER_HUB if !repository.contains('/') => {
                (DOCKER_HUB.to_owned(), format!("library/{repository}"))
            }
            "docker.io" | "index.docker.io" => (DOCKER_HUB.to_owned(), repository.to_owned()),
            other => (other.to_owned(), repository.to_owned()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_references() {
        let r: Reference = "localhost:5000/team/app:1.0.0".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "team/app", Some("1.0.0"))
        );
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "localhost:5000/team/app:1.0.0");
        let d = Digest::of(b"x");
        let r: Reference = format!("ghcr.io/o/r:v1@{d}").parse().unwrap();
        assert_eq!(r.target(), d.to_string());
        assert!(!r.is_loopback());
        let r: Reference = "docker.io/hello".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            (DOCKER_HUB, "library/hello")
        );
        assert_eq!(r.target(), "latest");
        for loopback in ["127.0.0.1:5000/a", "[::1]:5000/a", "127.9.9.9/a"] {
            assert!(
                loopback.parse::<Reference>().unwrap().is_loopback(),
                "{loopback}"
            );
        }
        for bad in [
            "app:1",
            "ghcr.io/App",
            "ghcr.io/",
            "ghcr.io/a:",
            "ghcr.io/a@sha256:1",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }
}
