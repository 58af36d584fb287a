//! `sign` and `verify`: cosign-compatible key-based signatures (no transparency log), over
//! the registry client's; key files read here, with the file named in every error.

use std::path::{Path, PathBuf};

use serde::Serialize;
use wasmoci_registry::Reference;
use wasmoci_registry::client::{Client, SignatureError, Signed, Verified};
use wasmoci_registry::cosign::{KeyError, MAX_KEY_LEN, SigningKey, VerifyingKey};
use wasmoci_spec::Digest;

use super::referrers::resolve_subject;
use super::{Error, Result};

/// A key file that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// It could not be read.
    #[error("failed to read the key `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Its content is not a key we can use.
    #[error("failed to load the key `{}`", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A locked dependency without a valid signature.
    #[error(transparent)]
    Dependency(Box<UnsignedDependency>),
    /// Signing or verifying failed.
    #[error("failed to {action} `{reference}` with {keys}")]
    Signature {
        /// `sign` or `verify`.
        action: &'static str,
        /// What.
        reference: String,
        /// The key files, named.
        keys: String,
        /// Why.
        #[source]
        source: Box<SignatureError>,
    },
}

fn read_key(path: &Path) -> Result<String> {
    let read = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_KEY_LEN as u64 + 1),
        &mut text,
    )
    .map_err(read)?;
    Ok(text)
}

fn load_error(path: &Path) -> impl FnOnce(KeyError) -> Error {
    let path = path.to_owned();
    move |source| KeyFileError::Load { path, source }.into()
}

/// Reads a private key: cosign's encrypted format (`password` is asked only then), or
/// PKCS#8/SEC1 PEM.
pub fn signing_key(
    path: &Path,
    password: impl FnOnce() -> std::result::Result<Vec<u8>, std::io::Error>,
) -> Result<SigningKey> {
    let text = read_key(path)?;
    SigningKey::from_pem(&text, password).map_err(load_error(path))
}

/// Reads a public key (`PUBLIC KEY` PEM).
pub fn verifying_key(path: &Path) -> Result<VerifyingKey> {
    let text = read_key(path)?;
    VerifyingKey::from_pem(&text).map_err(load_error(path))
}

fn signature_error(
    action: &'static str,
    reference: &Reference,
    key_files: &[&Path],
) -> impl FnOnce(SignatureError) -> Error {
    let reference = reference.to_string();
    let keys = key_files
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(", ");
    move |source| {
        KeyFileError::Signature {
            action,
            reference,
            keys,
            source: Box::new(source),
        }
        .into()
    }
}

/// `subject`'s digest (a tag resolved now), and `HOST/REPO@DIGEST`.
fn pinned(client: &Client, subject: &Reference) -> Result<(Digest, Reference)> {
    let digest = match subject.digest {
        Some(digest) => digest,
        None => resolve_subject(client, subject)?.digest,
    };
    let pinned = Reference {
        tag: None,
        ..subject.with_digest(digest)
    };
    Ok((digest, pinned))
}

/// What `sign` did.
#[derive(Debug, Clone, Serialize)]
pub struct SignReport {
    /// `HOST/REPO@DIGEST` signed.
    pub subject: String,
    /// Its digest.
    pub digest: Digest,
    /// `HOST/REPO:sha256-<hex>.sig`.
    pub signature_tag: String,
    /// The signature manifest's digest.
    pub signature_manifest: Digest,
    /// The payload's digest.
    pub payload: Digest,
    /// The base64 signature.
    pub signature: String,
    /// The key's fingerprint.
    pub key: String,
    /// How many signatures the manifest holds.
    pub signatures: usize,
    /// This key had signed it already: nothing was written.
    pub already_signed: bool,
}

/// Signs `subject` (a tag is resolved to its digest first) with `key`.
pub fn sign(
    client: &Client,
    subject: &Reference,
    key: &SigningKey,
    key_file: &Path,
) -> Result<SignReport> {
    let (digest, pinned) = pinned(client, subject)?;
    let signed: Signed = client.sign(&pinned, &digest, key).map_err(signature_error(
        "sign",
        &pinned,
        &[key_file],
    ))?;
    Ok(SignReport {
        subject: pinned.to_string(),
        digest,
        signature_tag: signed.tag.to_string(),
        signature_manifest: signed.manifest,
        payload: signed.payload,
        signature: signed.signature,
        key: key.verifying_key().fingerprint().to_owned(),
        signatures: signed.signatures,
        already_signed: signed.already_signed,
    })
}

/// One signature that verified.
#[derive(Debug, Serialize)]
pub struct VerifiedSignature {
    /// The key's fingerprint.
    pub key: String,
    /// The key file.
    pub key_file: PathBuf,
    /// The repository the payload names.
    pub docker_reference: String,
    /// The payload's digest.
    pub payload: Digest,
}

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// `HOST/REPO@DIGEST` verified.
    pub subject: String,
    /// Its digest.
    pub digest: Digest,
    /// The signatures that verified.
    pub verified: Vec<VerifiedSignature>,
}

/// Verifies `subject` (a tag is resolved first) against the keys in `key_files`: at
/// least one valid signature by one of them, over a payload naming its digest.
pub fn verify(client: &Client, subject: &Reference, key_files: &[PathBuf]) -> Result<VerifyReport> {
    let keys = key_files
        .iter()
        .map(|path| verifying_key(path))
        .collect::<Result<Vec<_>>>()?;
    let (digest, pinned) = pinned(client, subject)?;
    let verified: Vec<Verified> =
        client
            .verify(&pinned, &digest, &keys)
            .map_err(signature_error(
                "verify",
                &pinned,
                &key_files.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
            ))?;
    let file_of = |fingerprint: &str| {
        keys.iter()
            .position(|k| k.fingerprint() == fingerprint)
            .map(|i| key_files[i].clone())
            .unwrap_or_default()
    };
    Ok(VerifyReport {
        subject: pinned.to_string(),
        digest,
        verified: verified
            .into_iter()
            .map(|v| VerifiedSignature {
                key_file: file_of(&v.key),
                key: v.key,
                docker_reference: v.docker_reference,
                payload: v.payload,
            })
            .collect(),
    })
}

/// A locked dependency whose signature was checked.
#[derive(Debug, Clone, Serialize)]
pub struct LockedSignature {
    /// `name@version`.
    pub package: String,
    /// `HOST/REPO@DIGEST`.
    pub reference: String,
    /// The fingerprints of the keys its valid signatures are by.
    pub keys: Vec<String>,
}

/// Why a locked dependency's signature did not check out.
#[derive(Debug, thiserror::Error)]
#[error("locked dependency `{package}` (`{reference}`) has no valid signature by {keys}")]
pub struct UnsignedDependency {
    /// `name@version`.
    pub package: String,
    /// `HOST/REPO@DIGEST`.
    pub reference: String,
    /// The key files, named.
    pub keys: String,
    /// Why.
    #[source]
    pub source: Box<SignatureError>,
}

/// Checks that every locked registry dependency of `packages` (by the digest the lock
/// pins) has a valid cosign signature by one of `key_files` (`dependency build
/// --verify-key`). Local files have none to check.
pub fn verify_locked(
    client: &Client,
    packages: &[crate::ops::deps::lock::LockedPackage],
    key_files: &[PathBuf],
) -> Result<Vec<LockedSignature>> {
    let keys = key_files
        .iter()
        .map(|path| verifying_key(path))
        .collect::<Result<Vec<_>>>()?;
    let named = key_files
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut checked = Vec::new();
    for package in packages {
        let (Some(repository), Some(manifest)) =
            (package.source.strip_prefix("oci://"), &package.manifest)
        else {
            continue;
        };
        let text = format!("{repository}@{manifest}");
        let package_name = format!("{}@{}", package.name, package.version);
        let invalid = |reason: String| {
            Error::Dependencies(Box::new(crate::ops::deps::resolve::DepsError::Manifest {
                reference: text.clone(),
                reason,
            }))
        };
        let reference: Reference = text.parse().map_err(|e| invalid(format!("{e}")))?;
        let digest = reference
            .digest
            .ok_or_else(|| invalid("no digest".into()))?;
        let verified = client
            .verify(&reference, &digest, &keys)
            .map_err(|source| {
                Error::from(KeyFileError::Dependency(Box::new(UnsignedDependency {
                    package: package_name.clone(),
                    reference: text.clone(),
                    keys: named.clone(),
                    source: Box::new(source),
                })))
            })?;
        let mut fingerprints: Vec<String> = verified.into_iter().map(|v| v.key).collect();
        fingerprints.dedup();
        checked.push(LockedSignature {
            package: package_name,
            reference: text,
            keys: fingerprints,
        });
    }
    Ok(checked)
}
