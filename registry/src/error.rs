use std::io;
use std::path::PathBuf;

use wasmoci_spec::Digest;

/// What can go wrong with a layout.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        /// What we were doing (`read`, `create`, `rename`, …).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The directory has no valid `oci-layout` file.
    #[error("`{}` is not an OCI image layout: {reason}", path.display())]
    NotALayout {
        /// The directory.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// `index.json` does not parse.
    #[error("failed to parse `{}`: {reason}", path.display())]
    IndexJson {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// No manifest is tagged with this name.
    #[error("no artifact tagged `{tag}` in `{}`{}", layout.display(), closest_hint(tag, available))]
    TagNotFound {
        /// The tag asked for.
        tag: String,
        /// The layout.
        layout: PathBuf,
        /// The tags it does have.
        available: Vec<String>,
    },
    /// No entry of the index names this manifest.
    #[error("no manifest `{digest}` in `{}`", layout.display())]
    ManifestNotFound {
        /// The digest asked for.
        digest: Digest,
        /// The layout.
        layout: PathBuf,
    },
    /// `NAME@DIGEST`: the manifest is there, but only under other names.
    #[error("no artifact `{name}@{digest}` in `{}`: `{digest}` is stored only as {}", layout.display(), quoted(names))]
    OtherNames {
        /// The name asked for.
        name: String,
        /// The digest asked for.
        digest: Digest,
        /// The layout.
        layout: PathBuf,
        /// The tags that manifest has.
        names: Vec<String>,
    },
    /// The layout holds several manifests and the reference named none.
    #[error("`{}` holds {count} artifacts; name one with `:TAG` or `@DIGEST`{}", layout.display(), available_hint(tags))]
    Ambiguous {
        /// The layout.
        layout: PathBuf,
        /// How many manifests the index lists.
        count: usize,
        /// Their tags.
        tags: Vec<String>,
    },
    /// The layout is empty and the reference named nothing.
    #[error("`{}` holds no artifacts", layout.display())]
    Empty {
        /// The layout.
        layout: PathBuf,
    },
    /// A blob the index or a manifest refers to is not there.
    #[error("blob `{digest}` is missing from the layout (expected at `{}`)", path.display())]
    BlobMissing {
        /// Its digest.
        digest: Digest,
        /// Where it should be.
        path: PathBuf,
    },
    /// A blob whose content does not hash to its name.
    #[error("blob `{}` is corrupt: its content hashes to `{actual}`, not `{expected}`", path.display())]
    BlobCorrupt {
        /// The file.
        path: PathBuf,
        /// The digest it is named after.
        expected: Digest,
        /// The digest of its content.
        actual: Digest,
    },
    /// A blob that is not sent anywhere: a symbolic link, not a regular file, outside the
    /// layout, or not of its descriptor's size.
    #[error("failed to send blob `{}`: {reason}", path.display())]
    BlobRefused {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A blob that is not a file to read whole.
    #[error("failed to read blob `{}`: {reason}", path.display())]
    BlobUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Content whose size or digest is not what its descriptor says.
    #[error("content for `{expected}` hashes to `{actual}` ({size} bytes); nothing was written")]
    ContentMismatch {
        /// What the descriptor said.
        expected: Digest,
        /// What we received.
        actual: Digest,
        /// How many bytes we received.
        size: u64,
    },
    /// The manifest blob does not parse.
    #[error("failed to parse manifest `{digest}`: {reason}")]
    ManifestJson {
        /// Its digest.
        digest: Digest,
        /// What the parser said.
        reason: String,
    },
    /// A tag that cannot go in `org.opencontainers.image.ref.name`.
    #[error("invalid tag `{tag}`: {reason}")]
    InvalidTag {
        /// The tag.
        tag: String,
        /// Why.
        reason: &'static str,
    },
}

impl Error {
    /// For a tag the layout lacks: the closest tags it has, as ` (did you mean …?)`, to
    /// append to another message; empty otherwise.
    pub fn did_you_mean(&self) -> String {
        match self {
            Error::TagNotFound { tag, available, .. } => closest_hint(tag, available),
            _ => String::new(),
        }
    }
}

/// What to say about the tags a layout has when `asked` is not one of them: the closest
/// ones ("did you mean"), at most five, those of the same name first; when none is close,
/// all of them if they are few.
fn closest_hint(asked: &str, tags: &[String]) -> String {
    const MOST: usize = 5;
    let name = crate::layout::name_of(asked);
    // Close: within a third of the last path segment (a registry prefix is shared by all).
    let last = asked.rsplit('/').next().unwrap_or(asked);
    let near = (last.chars().count() / 3).max(2);
    let mut ranked: Vec<(bool, usize, &String)> = tags
        .iter()
        .map(|t| (crate::layout::name_of(t) != name, distance(asked, t), t))
        .filter(|&(other_name, d, _)| !other_name || d <= near)
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.2 == b.2);
    if !ranked.is_empty() {
        let close: Vec<String> = ranked
            .iter()
            .take(MOST)
            .map(|(_, _, t)| format!("`{t}`"))
            .collect();
        let text = match close.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => unreachable!("not empty"),
        };
        return format!(" (did you mean {text}?)");
    }
    match tags.len() {
        0 => String::new(),
        n if n <= MOST => format!(" (it has {})", quoted(tags)),
        n => format!(" (none of its {n} tags is close)"),
    }
}

/// The Levenshtein distance between `a` and `b`, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn quoted(names: &[String]) -> String {
    let list: Vec<String> = names.iter().map(|t| format!("`{t}`")).collect();
    list.join(", ")
}

fn available_hint(tags: &[String]) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = tags.iter().map(|t| format!("`{t}`")).collect();
        format!(" (it has {})", list.join(", "))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn io(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            action,
            path: path.into(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_names_the_closest_tags() {
        let tags = |list: &[&str]| list.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let store = tags(&[
            "hello:stable",
            "hello:edge",
            "tool:0.1.0",
            "hello:edge-image",
            "helo:1.0.0",
            "world:1.0.0",
            "hello:1.0.1",
            "hello:2.0.0",
            "hello:0.9.0",
        ]);
        assert_eq!(
            closest_hint("hello:1.0.0", &store),
            " (did you mean `hello:1.0.1`, `hello:2.0.0`, `hello:0.9.0`, `hello:edge` or `hello:stable`?)"
        );
        assert_eq!(
            closest_hint("helo:1.0.1", &store),
            " (did you mean `helo:1.0.0`, `hello:1.0.1` or `hello:2.0.0`?)"
        );
        assert_eq!(
            closest_hint("zzz:9", &store),
            " (none of its 9 tags is close)"
        );
        assert_eq!(
            closest_hint("no-such-tag", &tags(&["valid-module"])),
            " (it has `valid-module`)"
        );
        assert_eq!(closest_hint("x", &[]), "");
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }
}
