//! Content paired with its digest, so that a store can trust the pair without hashing it
//! again.

use crate::Digest;

/// Bytes and the SHA-256 digest of exactly those bytes. The fields are private: a `Blob`
/// comes from [`Blob::hash`] or from a builder in this crate that hashed the same bytes,
/// never from a digest someone states, so the two cannot disagree.
#[derive(Debug, Clone, Copy)]
pub struct Blob<'a> {
    digest: Digest,
    bytes: &'a [u8],
}

impl<'a> Blob<'a> {
    /// Hashes `bytes`.
    pub fn hash(bytes: &'a [u8]) -> Self {
        Blob {
            digest: Digest::of(bytes),
            bytes,
        }
    }

    /// A pair this crate has just hashed (`digest` is `Digest::of(bytes)`).
    pub(crate) fn hashed(digest: Digest, bytes: &'a [u8]) -> Self {
        debug_assert_eq!(digest, Digest::of(bytes));
        Blob { digest, bytes }
    }

    /// The digest of [`bytes`](Self::bytes).
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The content.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The content's length.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}
