//! Key-based signing as cosign does it: the key files `cosign generate-key-pair` writes,
//! and the signatures `cosign sign` puts in the `dev.cosignproject.cosign/signature`
//! annotation (ECDSA P-256 over SHA-256 of the payload, ASN.1 DER, standard base64).
//!
//! [`SigningKey::from_pem`] reads cosign's encrypted private keys (scrypt + NaCl
//! secretbox around a PKCS #8 key) as well as plain PKCS #8 and SEC1 P-256 keys;
//! [`VerifyingKey::from_pem`] reads the `PUBLIC KEY` file that goes with them. [`simple`]
//! is the payload and the signature manifest; the registry client signs and verifies
//! with them (`client::Client::sign`, `client::Client::verify`).

mod keys;
pub mod simple;

pub use keys::{KeyError, MAX_KEY_LEN, SigningKey, VerifyError, VerifyingKey};
