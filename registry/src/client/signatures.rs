//! Signatures where cosign keeps them (key-based, no transparency log): signing appends a
//! layer to the signature manifest at tag `sha256-<hex>.sig`, keeping the signatures
//! already there; verifying checks each signature there against the keys and the payload
//! against the digest asked about.

use wasmoci_spec::{Blob, Digest, ImageManifest, media_types};

use super::{Client, RegistryError};
use crate::cosign::simple::{
    self, MAX_PAYLOAD, MAX_SIGNATURES, SIGNATURE_ANNOTATION, SIMPLE_SIGNING, signature_tag,
};
use crate::cosign::{SigningKey, VerifyingKey};
use crate::layout::{Layout, LayoutRef};
use crate::reference::Reference;

/// How often a signature is appended again when another signer replaced the manifest
/// between our read and our write.
const SIGN_TRIES: usize = 5;

/// The largest signature manifest read.
const MAX_SIGNATURE_MANIFEST: u64 = 4 << 20;

/// What signing did.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The signature manifest's digest, after the signature was added.
    pub manifest: Digest,
    /// `HOST/REPO:sha256-<hex>.sig`.
    pub tag: Reference,
    /// The payload's digest (the signature layer).
    pub payload: Digest,
    /// The base64 signature.
    pub signature: String,
    /// How many signatures the manifest holds now.
    pub signatures: usize,
    /// The key had signed this already: nothing was written.
    pub already_signed: bool,
}

/// A signature that verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The fingerprint of the key it verified with.
    pub key: String,
    /// The repository the payload names (`critical.identity.docker-reference`).
    pub docker_reference: String,
    /// The payload's digest.
    pub payload: Digest,
}

/// Why signing or verifying failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// Talking to the registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// No signature manifest.
    #[error("`{digest}` is not signed: `{tag}` does not exist")]
    Unsigned {
        /// The manifest asked about.
        digest: Digest,
        /// The signature tag looked for.
        tag: String,
    },
    /// Signatures, none of them valid for these keys and this digest.
    #[error("no valid signature of `{digest}` by {keys}: {}", problems.join("; "))]
    NoValidSignature {
        /// The manifest asked about.
        digest: Digest,
        /// The keys, as `key `sha256:…``.
        keys: String,
        /// What was wrong with each signature.
        problems: Vec<String>,
    },
    /// The signature tag holds something cosign did not write.
    #[error("`{tag}` does not hold cosign signatures: {reason}")]
    NotSignatures {
        /// The tag.
        tag: String,
        /// Why.
        reason: String,
    },
    /// Another signer kept replacing the signature manifest.
    #[error(
        "failed to add a signature to `{tag}`: other signers kept replacing it; gave up after {SIGN_TRIES} tries"
    )]
    Contended {
        /// The tag.
        tag: String,
    },
    /// The scratch layout the signature is pushed from.
    #[error("failed to stage the signature in `{}`", path.display())]
    Stage {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<crate::Error>,
    },
}

/// `key `sha256:…``, or `keys `a`, `b``.
fn key_list(keys: &[VerifyingKey]) -> String {
    let names: Vec<String> = keys
        .iter()
        .map(|k| format!("`{}`", k.fingerprint()))
        .collect();
    match names.len() {
        1 => format!("key {}", names[0]),
        _ => format!("keys {}", names.join(", ")),
    }
}

impl Client {
    /// The signature manifest at `at` (a `.sig` tag), its config and the digest of its
    /// bytes as the registry holds them; `None` when the tag does not exist. Anything but cosign signatures there is an error.
    fn signature_manifest(
        &self,
        at: &Reference,
    ) -> Result<Option<(ImageManifest, serde_json::Value, Digest)>, SignatureError> {
        let Some((bytes, _)) = self.manifest_if_any(
            at,
            media_types::OCI_MANIFEST,
            MAX_SIGNATURE_MANIFEST,
            "read the signatures",
        )?
        else {
            return Ok(None);
        };
        let not = |reason: String| SignatureError::NotSignatures {
            tag: at.to_string(),
            reason,
        };
        let manifest = ImageManifest::from_json(&bytes).map_err(|e| not(e.to_string()))?;
        if manifest.layers.len() > MAX_SIGNATURES {
            return Err(not(format!(
                "{} layers, more than the {MAX_SIGNATURES} looked at",
                manifest.layers.len()
            )));
        }
        if manifest.config.size > MAX_SIGNATURE_MANIFEST {
            return Err(not(format!("its config is {} bytes", manifest.config.size)));
        }
        let config = self.blob(at, &manifest.config.digest)?;
        let config: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|e| not(format!("its config is not JSON: {e}")))?;
        Ok(Some((manifest, config, Digest::of(&bytes))))
    }

    /// Signs the manifest `digest` of `subject`'s repository with `key`, as `cosign sign
    /// --key` does: the simple-signing payload, signed, appended to the signature manifest
    /// at `sha256-<hex>.sig` (created when there is none; the signatures there are kept).
    /// Read, append, write, read back; tried again when another signer got in between.
    pub fn sign(
        &self,
        subject: &Reference,
        digest: &Digest,
        key: &SigningKey,
    ) -> Result<Signed, SignatureError> {
        let payload_bytes = simple::payload(&subject.repository_path(), digest);
        let payload = Blob::hash(&payload_bytes);
        let signature = key.sign(&payload_bytes);
        let verifying = key.verifying_key();
        let at = subject.with_tag(&signature_tag(digest));
        let ours = |m: &ImageManifest| {
            m.layers.iter().any(|l| {
                l.digest == payload.digest()
                    && l.annotation(SIGNATURE_ANNOTATION)
                        .is_some_and(|s| verifying.verify(&payload_bytes, s).is_ok())
            })
        };
        let scratch = tempfile::tempdir().map_err(|e| SignatureError::Stage {
            path: std::env::temp_dir(),
            source: Box::new(crate::Error::Io {
                action: "create a temporary directory in",
                path: std::env::temp_dir(),
                source: e,
            }),
        })?;
        for attempt in 0..SIGN_TRIES {
            let existing = self.signature_manifest(&at)?;
            if let Some((manifest, _, manifest_digest)) = &existing {
                if let Some(other) = manifest
                    .layers
                    .iter()
                    .find(|l| l.media_type != SIMPLE_SIGNING)
                {
                    return Err(SignatureError::NotSignatures {
                        tag: at.to_string(),
                        reason: format!("a layer is `{}`", other.media_type),
                    });
                }
                if ours(manifest) {
                    return Ok(Signed {
                        manifest: *manifest_digest,
                        tag: at,
                        payload: payload.digest(),
                        signature,
                        signatures: manifest.layers.len(),
                        already_signed: true,
                    });
                }
            }
            let built = simple::append(
                existing.as_ref().map(|(m, c, _)| (m, c)),
                &payload,
                &signature,
            );
            let layout = Layout::at(scratch.path().join(attempt.to_string()));
            let stage = |e: crate::Error| SignatureError::Stage {
                path: layout.root().to_owned(),
                source: Box::new(e),
            };
            let tag = signature_tag(digest);
            let stored = layout
                .store(
                    &built.manifest,
                    &[Blob::hash(&built.config), payload],
                    Some(&tag),
                )
                .map_err(stage)?;
            let stored = layout
                .resolve(&LayoutRef::Digest(stored.digest))
                .map_err(stage)?;
            self.push(&layout, &stored, &at)?;
            // A registry cannot be asked to write only if the tag is unchanged: ours must
            // still be there.
            if let Some((manifest, _, _)) = self.signature_manifest(&at)?
                && ours(&manifest)
            {
                return Ok(Signed {
                    manifest: stored.descriptor.digest,
                    tag: at,
                    payload: payload.digest(),
                    signature,
                    signatures: manifest.layers.len(),
                    already_signed: false,
                });
            }
        }
        Err(SignatureError::Contended {
            tag: at.to_string(),
        })
    }

    /// Verifies the signatures of the manifest `digest` of `subject`'s repository, as
    /// `cosign verify --key` does (no transparency log): at least one signature at
    /// `sha256-<hex>.sig` must verify with one of `keys` over its payload, and the payload
    /// must name `digest`. Returns those that do; the error lists what was wrong with each
    /// of the others.
    pub fn verify(
        &self,
        subject: &Reference,
        digest: &Digest,
        keys: &[VerifyingKey],
    ) -> Result<Vec<Verified>, SignatureError> {
        let at = subject.with_tag(&signature_tag(digest));
        let Some((manifest, _, _)) = self.signature_manifest(&at)? else {
            return Err(SignatureError::Unsigned {
                digest: *digest,
                tag: at.to_string(),
            });
        };
        let mut verified = Vec::new();
        let mut problems = Vec::new();
        for (i, layer) in manifest.layers.iter().enumerate() {
            let name = format!("signature {} (`{}`)", i + 1, layer.digest);
            if layer.media_type != SIMPLE_SIGNING {
                problems.push(format!("{name} is `{}`, not a signature", layer.media_type));
                continue;
            }
            let Some(signature) = layer.annotation(SIGNATURE_ANNOTATION) else {
                problems.push(format!("{name} has no `{SIGNATURE_ANNOTATION}` annotation"));
                continue;
            };
            if layer.size > MAX_PAYLOAD {
                problems.push(format!("{name}: its payload is {} bytes", layer.size));
                continue;
            }
            let payload = self.blob(&at, &layer.digest)?;
            let Some(key) = keys.iter().find(|k| k.verify(&payload, signature).is_ok()) else {
                problems.push(format!("{name} is not signed by {}", key_list(keys)));
                continue;
            };
            match simple::claims(&payload) {
                Ok(claims) if claims.digest == *digest => verified.push(Verified {
                    key: key.fingerprint().to_owned(),
                    docker_reference: claims.docker_reference,
                    payload: layer.digest,
                }),
                Ok(claims) => problems.push(format!(
                    "{name} signs `{}`, another manifest",
                    claims.digest
                )),
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
        if verified.is_empty() {
            if manifest.layers.is_empty() {
                problems.push("the signature manifest has no signatures".into());
            }
            return Err(SignatureError::NoValidSignature {
                digest: *digest,
                keys: key_list(keys),
                problems,
            });
        }
        Ok(verified)
    }
}
