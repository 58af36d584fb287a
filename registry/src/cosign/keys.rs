//! cosign's key files, and ECDSA P-256 signatures in the form cosign writes them.
//!
//! A cosign private key file is one PEM block, `ENCRYPTED SIGSTORE PRIVATE KEY` (cosign
//! 2.0 and later) or `ENCRYPTED COSIGN PRIVATE KEY` (older), whose body is JSON in the
//! format of go-securesystemslib's `encrypted` package:
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<base64>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<base64>"},"ciphertext":"<base64>"}
//! ```
//!
//! The secretbox key is scrypt(password, salt, N, r, p) (32 bytes), and the plaintext is
//! the PKCS #8 DER of the private key. As that package does, only the three scrypt
//! parameter sets it writes are accepted (N = 2^15, 2^16 or 2^17 with r = 8, p = 1), so
//! a crafted file cannot make us spend unbounded memory or time.

use std::error::Error as StdError;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::aead::{AeadInPlace as _, KeyInit as _};
use crypto_secretbox::{Key as BoxKey, Nonce, XSalsa20Poly1305};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::der::pem;
use p256::pkcs8::spki::SubjectPublicKeyInfoRef;
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _, ObjectIdentifier, PrivateKeyInfo};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// The largest key file accepted, in bytes. cosign's are under 1 KiB; an RSA 4096 PKCS #8
/// key, the largest key anyone would mistake for one, is about 3.3 KiB.
pub const MAX_KEY_LEN: usize = 64 * 1024;

/// The PEM label of the private keys cosign 2.0 and later write.
const SIGSTORE_ENCRYPTED_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The PEM label of the private keys cosign wrote before 2.0.
const COSIGN_ENCRYPTED_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
const PKCS8_LABEL: &str = "PRIVATE KEY";
const SEC1_LABEL: &str = "EC PRIVATE KEY";
const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

const PRIVATE_KEY_LABELS: &str = "a private key (`ENCRYPTED SIGSTORE PRIVATE KEY`, \
     `ENCRYPTED COSIGN PRIVATE KEY`, `PRIVATE KEY` or `EC PRIVATE KEY`)";
const PUBLIC_KEY_LABELS: &str = "a public key (`PUBLIC KEY`)";

const KDF_SCRYPT: &str = "scrypt";
const CIPHER_SECRETBOX: &str = "nacl/secretbox";
/// The scrypt parameters go-securesystemslib accepts, as (N, log2 N): its "legacy",
/// "standard" (what cosign 2.x writes) and "OWASP" levels, all with r = 8, p = 1.
const SCRYPT_N: [(u64, u8); 3] = [(1 << 15, 15), (1 << 16, 16), (1 << 17, 17)];
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SECRETBOX_KEY_LEN: usize = 32;
const SECRETBOX_NONCE_LEN: usize = 24;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_X448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.111");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");

/// Why a key could not be read. Messages describe the content, never the secret in it;
/// the caller adds which file it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The input is larger than [`MAX_KEY_LEN`].
    #[error("key is {len} bytes, more than the {max} bytes a key file may have")]
    TooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_KEY_LEN`].
        max: usize,
    },
    /// The input is not one PEM block.
    #[error("failed to parse the PEM encoding: {reason}")]
    Pem {
        /// What the PEM parser said.
        reason: String,
    },
    /// The PEM block is not a kind of key asked for.
    #[error("unexpected PEM block `{label}`: expected {expected}")]
    UnexpectedLabel {
        /// The label of the block (`-----BEGIN <label>-----`).
        label: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// The key is not an ECDSA P-256 key.
    #[error("unsupported key algorithm {algorithm}: only ECDSA P-256 keys are supported")]
    UnsupportedAlgorithm {
        /// The algorithm, e.g. `ECDSA P-384`, `RSA`, `Ed25519`, or the OID in backticks.
        algorithm: String,
    },
    /// The JSON of an encrypted cosign key does not parse.
    #[error("failed to parse the encrypted private key: {reason}")]
    Envelope {
        /// What is wrong with it.
        reason: String,
    },
    /// The encrypted key names a key derivation, cipher or scrypt parameters that cosign
    /// does not write.
    #[error("unsupported private key encryption: {reason}")]
    UnsupportedEncryption {
        /// What is unsupported.
        reason: String,
    },
    /// The password callback failed.
    #[error("failed to read the password of the private key")]
    Password {
        /// What the callback returned.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The secretbox did not open: the password is wrong (or the file was altered).
    #[error("failed to decrypt the private key: wrong password")]
    WrongPassword,
    /// The key inside the PEM block (after decryption, for an encrypted one) does not
    /// parse as the format it claims.
    #[error("failed to parse the {format}: {reason}")]
    Malformed {
        /// `PKCS #8 private key`, `SEC1 EC private key` or `public key`.
        format: &'static str,
        /// What the parser said.
        reason: String,
    },
}

/// Why a signature did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature is not standard base64 (what cosign writes).
    #[error("failed to decode the signature: not valid standard base64")]
    Base64,
    /// The decoded signature is neither ASN.1 DER nor the 64-byte fixed form.
    #[error("failed to decode the signature: not an ECDSA P-256 signature in ASN.1 DER")]
    Malformed,
    /// The signature is well formed but was not made over this payload by this key.
    #[error("signature does not match the payload and the key `{key}`")]
    Mismatch {
        /// The [`VerifyingKey::fingerprint`] of the key.
        key: String,
    },
}

/// An ECDSA P-256 private key: what signs.
///
/// Its [`Debug`] shows only the fingerprint of its public key. The secret is wiped from
/// memory when it is dropped.
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
}

impl SigningKey {
    /// Reads a private key from PEM text.
    ///
    /// Accepts cosign's encrypted keys (`ENCRYPTED SIGSTORE PRIVATE KEY`, and the older
    /// `ENCRYPTED COSIGN PRIVATE KEY`) and unencrypted P-256 keys as PKCS #8
    /// (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). `password` is called only for an
    /// encrypted key, at most once; an empty password is valid (cosign allows it). The
    /// password it returns is wiped from memory once used (a `String` or `Vec<u8>` is
    /// moved, not copied).
    ///
    /// Text before the `-----BEGIN` line is ignored; PEM headers are not accepted.
    pub fn from_pem<P, E>(
        pem: &str,
        password: impl FnOnce() -> Result<P, E>,
    ) -> Result<Self, KeyError>
    where
        P: Into<Vec<u8>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let (label, der) = decode_pem(
            pem,
            &[
                SIGSTORE_ENCRYPTED_LABEL,
                COSIGN_ENCRYPTED_LABEL,
                PKCS8_LABEL,
                SEC1_LABEL,
            ],
            PRIVATE_KEY_LABELS,
        )?;
        let inner = match label.as_str() {
            SIGSTORE_ENCRYPTED_LABEL | COSIGN_ENCRYPTED_LABEL => {
                let plaintext = decrypt(&der, password)?;
                signing_key_from_pkcs8(&plaintext)?
            }
            PKCS8_LABEL => signing_key_from_pkcs8(&der)?,
            _ => signing_key_from_sec1(&der)?,
        };
        Ok(Self { inner })
    }

    /// The public half of this key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::new(*self.inner.verifying_key())
    }

    /// Signs `payload` as cosign does: ECDSA P-256 over its SHA-256, the signature in
    /// ASN.1 DER, in standard base64 — the value of the
    /// `dev.cosignproject.cosign/signature` annotation. Signing is deterministic
    /// (RFC 6979): the same key and payload give the same signature.
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: Signature = self.inner.sign(payload);
        BASE64.encode(signature.to_der().as_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.verifying_key().fingerprint)
            .finish_non_exhaustive()
    }
}

/// An ECDSA P-256 public key: what verifies.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    inner: p256::ecdsa::VerifyingKey,
    fingerprint: String,
}

impl VerifyingKey {
    fn new(inner: p256::ecdsa::VerifyingKey) -> Self {
        let spki = inner
            .to_public_key_der()
            .expect("a P-256 public key always encodes as SubjectPublicKeyInfo");
        let digest = Sha256::digest(spki.as_bytes());
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            inner,
            fingerprint: format!("sha256:{hex}"),
        }
    }

    /// Reads a public key from PEM text: a `PUBLIC KEY` block (SubjectPublicKeyInfo), as
    /// in cosign's `cosign.pub`.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (_, der) = decode_pem(pem, &[PUBLIC_KEY_LABEL], PUBLIC_KEY_LABELS)?;
        let malformed = |reason: String| KeyError::Malformed {
            format: "public key",
            reason,
        };
        let spki = SubjectPublicKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| malformed(e.to_string()))?;
        check_algorithm(spki.algorithm.oid, spki.algorithm.parameters_oid().ok())?;
        let inner = p256::ecdsa::VerifyingKey::from_public_key_der(&der)
            .map_err(|e| malformed(e.to_string()))?;
        Ok(Self::new(inner))
    }

    /// A short name for this key in messages: `sha256:` and the first 12 hex digits of
    /// the SHA-256 of its SubjectPublicKeyInfo DER (what `openssl pkey -pubin -outform
    /// DER` prints for `cosign.pub`), e.g. `sha256:3f1c0a9b2e4d`. It tells keys apart in
    /// messages; it is not meant to pin a key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Checks `signature_b64`, as in the `dev.cosignproject.cosign/signature` annotation,
    /// over `payload`: standard base64 (surrounding whitespace ignored) of an ECDSA P-256
    /// signature over the payload's SHA-256, in ASN.1 DER as cosign writes it, or in the
    /// 64-byte fixed form (r ‖ s), which cosign's verifier also accepts.
    pub fn verify(&self, payload: &[u8], signature_b64: &str) -> Result<(), VerifyError> {
        let bytes = BASE64
            .decode(signature_b64.trim_ascii())
            .map_err(|_| VerifyError::Base64)?;
        let signature = match Signature::from_der(&bytes) {
            Ok(signature) => signature,
            Err(_) if bytes.len() == 64 => {
                Signature::from_slice(&bytes).map_err(|_| VerifyError::Malformed)?
            }
            Err(_) => return Err(VerifyError::Malformed),
        };
        self.inner
            .verify(payload, &signature)
            .map_err(|_| VerifyError::Mismatch {
                key: self.fingerprint.clone(),
            })
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifyingKey")
            .field(&self.fingerprint)
            .finish()
    }
}

/// The label and the decoded body of the one PEM block in `text`, which must be one of
/// `accepted` (else the error says `expected`). The body is wiped when dropped: it may be
/// an unencrypted private key.
fn decode_pem(
    text: &str,
    accepted: &[&str],
    expected: &'static str,
) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    if text.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLarge {
            len: text.len(),
            max: MAX_KEY_LEN,
        });
    }
    // the PEM parser takes one line ending after the last boundary, not blank lines
    let bytes = text.trim_end().as_bytes();
    let pem_error = |e: pem::Error| KeyError::Pem {
        reason: e.to_string(),
    };
    // the label first, so that a block we don't read is named even if its body is not
    // RFC 7468 (e.g. has headers)
    let label = pem::decode_label(bytes).map_err(pem_error)?.to_owned();
    if !accepted.contains(&label.as_str()) {
        if label.starts_with("RSA ") {
            // PKCS #1 `RSA PRIVATE KEY` or `RSA PUBLIC KEY`
            return Err(KeyError::UnsupportedAlgorithm {
                algorithm: "RSA".to_owned(),
            });
        }
        return Err(KeyError::UnexpectedLabel { label, expected });
    }
    let (_, body) = pem::decode_vec(bytes).map_err(pem_error)?;
    Ok((label, Zeroizing::new(body)))
}

/// cosign's encrypted private key (the JSON of go-securesystemslib's `encrypted`
/// package). Byte fields are standard base64, as Go's `encoding/json` writes `[]byte`.
#[derive(Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Opens cosign's encrypted key: the PKCS #8 DER inside, wiped when dropped.
fn decrypt<P, E>(
    envelope: &[u8],
    password: impl FnOnce() -> Result<P, E>,
) -> Result<Zeroizing<Vec<u8>>, KeyError>
where
    P: Into<Vec<u8>>,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let envelope: Envelope = serde_json::from_slice(envelope).map_err(|e| KeyError::Envelope {
        reason: e.to_string(),
    })?;
    if envelope.kdf.name != KDF_SCRYPT {
        return Err(KeyError::UnsupportedEncryption {
            reason: format!(
                "key derivation `{}`, expected `{KDF_SCRYPT}`",
                envelope.kdf.name
            ),
        });
    }
    if envelope.cipher.name != CIPHER_SECRETBOX {
        return Err(KeyError::UnsupportedEncryption {
            reason: format!(
                "cipher `{}`, expected `{CIPHER_SECRETBOX}`",
                envelope.cipher.name
            ),
        });
    }
    let ScryptParams { n, r, p } = envelope.kdf.params;
    let log_n = SCRYPT_N
        .iter()
        .find(|&&(known, _)| known == n)
        .map(|&(_, log_n)| log_n)
        .filter(|_| r == u64::from(SCRYPT_R) && p == u64::from(SCRYPT_P))
        .ok_or_else(|| KeyError::UnsupportedEncryption {
            reason: format!(
                "scrypt parameters N={n}, r={r}, p={p}, expected N=32768, 65536 or 131072 \
                 with r=8, p=1"
            ),
        })?;
    let salt = decode_field("kdf.salt", &envelope.kdf.salt)?;
    let nonce = decode_field("cipher.nonce", &envelope.cipher.nonce)?;
    if nonce.len() != SECRETBOX_NONCE_LEN {
        return Err(KeyError::Envelope {
            reason: format!(
                "`cipher.nonce` is {} bytes, expected {SECRETBOX_NONCE_LEN}",
                nonce.len()
            ),
        });
    }
    let mut buffer = Zeroizing::new(decode_field("ciphertext", &envelope.ciphertext)?);

    let password: Zeroizing<Vec<u8>> = Zeroizing::new(
        password()
            .map_err(|e| KeyError::Password { source: e.into() })?
            .into(),
    );
    // r and p are checked above, and 32 is a valid length: these cannot fail
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P, SECRETBOX_KEY_LEN)
        .expect("the accepted scrypt parameters are valid");
    let mut key = Zeroizing::new([0u8; SECRETBOX_KEY_LEN]);
    scrypt::scrypt(&password, &salt, &params, key.as_mut_slice())
        .expect("32 bytes is a valid scrypt output length");
    XSalsa20Poly1305::new(BoxKey::from_slice(key.as_slice()))
        .decrypt_in_place(Nonce::from_slice(&nonce), b"", &mut *buffer)
        .map_err(|_| KeyError::WrongPassword)?;
    Ok(buffer)
}

fn decode_field(name: &str, value: &str) -> Result<Vec<u8>, KeyError> {
    BASE64.decode(value).map_err(|_| KeyError::Envelope {
        reason: format!("`{name}` is not valid standard base64"),
    })
}

fn signing_key_from_pkcs8(der: &[u8]) -> Result<p256::ecdsa::SigningKey, KeyError> {
    let malformed = |reason: String| KeyError::Malformed {
        format: "PKCS #8 private key",
        reason,
    };
    let info = PrivateKeyInfo::try_from(der).map_err(|e| malformed(e.to_string()))?;
    check_algorithm(info.algorithm.oid, info.algorithm.parameters_oid().ok())?;
    let secret = p256::SecretKey::try_from(info).map_err(|e| malformed(e.to_string()))?;
    Ok(secret.into())
}

fn signing_key_from_sec1(der: &[u8]) -> Result<p256::ecdsa::SigningKey, KeyError> {
    let malformed = |reason: String| KeyError::Malformed {
        format: "SEC1 EC private key",
        reason,
    };
    let key = sec1::EcPrivateKey::try_from(der).map_err(|e| malformed(e.to_string()))?;
    match key.parameters.and_then(|p| p.named_curve()) {
        Some(curve) => check_algorithm(OID_EC_PUBLIC_KEY, Some(curve))?,
        // no curve named: a P-256 scalar is 32 bytes (the public key, when there is one,
        // is checked against it below)
        None if key.private_key.len() != 32 => {
            return Err(KeyError::UnsupportedAlgorithm {
                algorithm: format!("ECDSA with a {}-byte private key", key.private_key.len()),
            });
        }
        None => {}
    }
    let secret = p256::SecretKey::try_from(key).map_err(|e| malformed(e.to_string()))?;
    Ok(secret.into())
}

/// Refuses any algorithm but ECDSA on P-256, naming what it is.
fn check_algorithm(
    oid: ObjectIdentifier,
    parameters: Option<ObjectIdentifier>,
) -> Result<(), KeyError> {
    if oid == OID_EC_PUBLIC_KEY && parameters == Some(OID_P256) {
        return Ok(());
    }
    let algorithm = match oid {
        OID_EC_PUBLIC_KEY => match parameters {
            Some(OID_P384) => "ECDSA P-384".to_owned(),
            Some(OID_P521) => "ECDSA P-521".to_owned(),
            Some(OID_SECP256K1) => "ECDSA secp256k1".to_owned(),
            Some(curve) => format!("ECDSA on curve `{curve}`"),
            None => "ECDSA without a named curve".to_owned(),
        },
        OID_RSA | OID_RSA_PSS => "RSA".to_owned(),
        OID_ED25519 => "Ed25519".to_owned(),
        OID_ED448 => "Ed448".to_owned(),
        OID_X25519 => "X25519".to_owned(),
        OID_X448 => "X448".to_owned(),
        other => format!("`{other}`"),
    };
    Err(KeyError::UnsupportedAlgorithm { algorithm })
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
