//! Version requirements (`semver::VersionReq`, cargo's meaning) as the solver's ranges.
//!
//! A requirement is an AND of comparators; each becomes an interval of versions and the
//! requirement their intersection. Pre-releases follow the `semver` crate's rule, which
//! no interval can say: a pre-release version is admitted only when a comparator of the
//! requirement names the same `major.minor.patch` with a pre-release
//! ([`admits`]). The intervals are exact for every other version.

use pubgrub::Ranges;
use semver::{Comparator, Op, Prerelease, Version, VersionReq};

/// The versions `req` admits, pre-releases aside (see [`admits`]).
pub fn ranges(req: &VersionReq) -> Ranges<Version> {
    req.comparators
        .iter()
        .fold(Ranges::full(), |all, c| all.intersection(&comparator(c)))
}

/// Whether `req` admits `version` by the pre-release rule (always, for a release).
pub fn admits(req: &VersionReq, version: &Version) -> bool {
    version.pre.is_empty()
        || req.comparators.iter().any(|c| {
            c.major == version.major
                && c.minor == Some(version.minor)
                && c.patch == Some(version.patch)
                && !c.pre.is_empty()
        })
}

fn v(major: u64, minor: u64, patch: u64) -> Version {
    Version::new(major, minor, patch)
}

/// The comparator's lower bound, the version it names (missing parts 0).
fn named(c: &Comparator) -> Version {
    Version {
        major: c.major,
        minor: c.minor.unwrap_or(0),
        patch: c.patch.unwrap_or(0),
        pre: c.pre.clone(),
        build: semver::BuildMetadata::EMPTY,
    }
}

/// The first version past what the comparator's given parts cover: `1` → `2.0.0`,
/// `1.2` → `1.3.0`, `1.2.3` → `1.2.4`.
fn past(c: &Comparator) -> Version {
    match (c.minor, c.patch) {
        (None, _) => v(c.major + 1, 0, 0),
        (Some(minor), None) => v(c.major, minor + 1, 0),
        (Some(minor), Some(patch)) => v(c.major, minor, patch + 1),
    }
}

/// The lowest version of the comparator's given parts: `1.2` → `1.2.0` with no
/// pre-release of it (a bound below which the pre-releases of `1.2.0` lie).
fn floor(c: &Comparator) -> Version {
    let mut version = named(c);
    if c.patch.is_none() {
        version.pre = Prerelease::EMPTY;
    }
    version
}

fn comparator(c: &Comparator) -> Ranges<Version> {
    let full = c.minor.is_some() && c.patch.is_some();
    match c.op {
        Op::Exact | Op::Wildcard if full => Ranges::singleton(named(c)),
        Op::Exact | Op::Wildcard => Ranges::between(floor(c), past(c)),
        Op::Greater if full => Ranges::strictly_higher_than(named(c)),
        Op::Greater => Ranges::higher_than(past(c)),
        Op::GreaterEq => Ranges::higher_than(floor(c)),
        Op::Less => Ranges::strictly_lower_than(floor(c)),
        Op::LessEq if full => Ranges::lower_than(named(c)),
        Op::LessEq => Ranges::strictly_lower_than(past(c)),
        Op::Tilde => {
            let end = match c.minor {
                None => v(c.major + 1, 0, 0),
                Some(minor) => v(c.major, minor + 1, 0),
            };
            Ranges::between(floor(c), end)
        }
        Op::Caret => {
            let end = match (c.major, c.minor, c.patch) {
                (0, None, _) => v(1, 0, 0),
                (0, Some(0), Some(patch)) => v(0, 0, patch + 1),
                (0, Some(minor), _) => v(0, minor + 1, 0),
                (major, _, _) => v(major + 1, 0, 0),
            };
            Ranges::between(floor(c), end)
        }
        // `Op` is non-exhaustive: a comparator this code does not know admits nothing,
        // rather than everything.
        _ => Ranges::empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every requirement here, against every version here: `ranges` + `admits` agree with
    /// `VersionReq::matches`.
    #[test]
    fn ranges_agree_with_semver_matches() {
        let requirements = [
            "*",
            "1",
            "1.2",
            "1.2.3",
            "=1",
            "=1.2",
            "=1.2.3",
            "=1.2.3-beta",
            "^1.2.3",
            "^1.2",
            "^1",
            "^0.2.3",
            "^0.2",
            "^0.0.3",
            "^0.0",
            "^0",
            "^1.2.3-alpha",
            "~1.2.3",
            "~1.2",
            "~1",
            "~1.2.3-beta",
            ">1.2.3",
            ">1.2",
            ">1",
            ">=1.2.3",
            ">=1.2",
            ">=1",
            ">=1.2.3-alpha",
            "<1.2.3",
            "<1.2",
            "<1",
            "<=1.2.3",
            "<=1.2",
            "<=1",
            "1.*",
            "1.2.*",
            "1.x",
            ">=1.2, <1.5",
            ">=0.3.0-alpha, <0.3.1",
            ">1.2.3-alpha.1",
            "<2.0.0-beta",
            "^0.0.3-rc.1",
            "~0",
            "=0.0",
            ">=1.2.3, <=1.2.3",
        ];
        let mut versions = Vec::new();
        for major in 0..3 {
            for minor in 0..4 {
                for patch in 0..5 {
                    versions.push(v(major, minor, patch));
                    for pre in ["alpha", "alpha.1", "beta", "rc.1"] {
                        let mut version = v(major, minor, patch);
                        version.pre = Prerelease::new(pre).unwrap();
                        versions.push(version);
                    }
                }
            }
        }
        let mut wrong = Vec::new();
        for text in requirements {
            let req = VersionReq::parse(text).unwrap();
            let set = ranges(&req);
            for version in &versions {
                let ours = set.contains(version) && admits(&req, version);
                if ours != req.matches(version) {
                    wrong.push(format!("`{text}` {version}: ours {ours}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
