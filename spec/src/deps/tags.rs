//! Tags as versions, Helm's rule for OCI: a tag is a version when it parses as semver
//! after `_` is read as `+` (a tag cannot hold `+`); other tags (`latest`, `sha256-…`
//! signatures and referrers) are not versions and are skipped.

use semver::Version;

/// The version a tag names, if it names one.
pub fn version(tag: &str) -> Option<Version> {
    if tag.starts_with("sha256-") {
        return None;
    }
    Version::parse(&tag.replace('_', "+")).ok()
}

/// The tag a version is published under.
pub fn tag(version: &Version) -> String {
    version.to_string().replace('+', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_as_versions() {
        assert_eq!(version("1.2.3"), Some(Version::new(1, 2, 3)));
        assert_eq!(version("1.2.3_build.5").unwrap().build.as_str(), "build.5");
        assert_eq!(tag(&version("1.2.3_build.5").unwrap()), "1.2.3_build.5");
        assert_eq!(version("2.0.0-rc.1").unwrap().pre.as_str(), "rc.1");
        for other in ["latest", "1.2", "v1.2.3", "sha256-abc.sig", "main"] {
            assert_eq!(version(other), None, "{other}");
        }
    }
}
