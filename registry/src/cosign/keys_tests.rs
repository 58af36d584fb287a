//! The key files and signatures of cosign 2.5 (fixtures in `testdata/`), and the keys
//! and inputs that must be refused.

use std::convert::Infallible;

use super::*;

const PASSWORD_KEY: &str = include_str!("testdata/cosign-password.key");
const PASSWORD_PUB: &str = include_str!("testdata/cosign-password.pub");
const EMPTY_KEY: &str = include_str!("testdata/cosign-empty.key");
const EMPTY_PUB: &str = include_str!("testdata/cosign-empty.pub");
const PAYLOAD: &[u8] = include_bytes!("testdata/payload.json");
const COSIGN_SIGNATURE: &str = include_str!("testdata/payload.json.sig");
const P256_PKCS8_KEY: &str = include_str!("testdata/p256-pkcs8.key");
const P256_PKCS8_PUB: &str = include_str!("testdata/p256-pkcs8.pub");
const P256_SEC1_KEY: &str = include_str!("testdata/p256-sec1.key");
const P256_SEC1_PUB: &str = include_str!("testdata/p256-sec1.pub");

fn password(text: &'static str) -> impl FnOnce() -> Result<&'static str, Infallible> {
    move || Ok(text)
}

fn no_password() -> Result<&'static str, Infallible> {
    panic!("the password was asked for")
}

fn load(pem: &str, pass: &'static str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pem(pem, password(pass))
}

fn public(pem: &str) -> VerifyingKey {
    VerifyingKey::from_pem(pem).unwrap()
}

/// The PKCS #8 DER inside a PEM fixture.
fn pkcs8_der(pem: &str) -> Vec<u8> {
    pem::decode_vec(pem.trim_end().as_bytes()).unwrap().1
}

/// An encrypted key as go-securesystemslib writes one, with a fixed salt and nonce.
fn encrypt(label: &str, plaintext: &[u8], password: &[u8], n: u64) -> String {
    let salt = [7u8; 32];
    let nonce = [9u8; SECRETBOX_NONCE_LEN];
    let params = scrypt::Params::new(n.ilog2() as u8, 8, 1, 32).unwrap();
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key).unwrap();
    let mut buffer = plaintext.to_vec();
    XSalsa20Poly1305::new(BoxKey::from_slice(&key))
        .encrypt_in_place(Nonce::from_slice(&nonce), b"", &mut buffer)
        .unwrap();
    let json = serde_json::json!({
        "kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": BASE64.encode(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": BASE64.encode(nonce)},
        "ciphertext": BASE64.encode(&buffer),
    });
    pem_block(label, json.to_string().as_bytes())
}

fn pem_block(label: &str, body: &[u8]) -> String {
    pem::encode_string(label, pem::LineEnding::LF, body).unwrap()
}

#[test]
fn cosign_key_with_password_decrypts() {
    let key = load(PASSWORD_KEY, "test-password").unwrap();
    let expected = public(PASSWORD_PUB);
    assert_eq!(key.verifying_key(), expected);
    // `openssl pkey -pubin -in cosign-password.pub -outform DER | sha256sum`
    assert_eq!(expected.fingerprint(), "sha256:19272229d070");
}

#[test]
fn cosign_key_with_empty_password_decrypts() {
    let key = load(EMPTY_KEY, "").unwrap();
    assert_eq!(key.verifying_key(), public(EMPTY_PUB));
    assert_eq!(key.verifying_key().fingerprint(), "sha256:c6388e9805e4");
}

#[test]
fn wrong_password_is_its_own_error() {
    for (pem, wrong) in [
        (PASSWORD_KEY, "test-passwore"),
        (PASSWORD_KEY, ""),
        (EMPTY_KEY, "x"),
    ] {
        let err = load(pem, wrong).unwrap_err();
        assert!(matches!(err, KeyError::WrongPassword), "{err:?}");
        assert_eq!(
            err.to_string(),
            "failed to decrypt the private key: wrong password"
        );
    }
}

#[test]
fn password_callback_error_is_kept() {
    let err = SigningKey::from_pem(PASSWORD_KEY, || Err::<String, _>("no terminal")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to read the password of the private key"
    );
    let source = StdError::source(&err).unwrap();
    assert_eq!(source.to_string(), "no terminal");
}

#[test]
fn legacy_cosign_label_and_scrypt_parameters() {
    let der = pkcs8_der(P256_PKCS8_KEY);
    let pem = encrypt(COSIGN_ENCRYPTED_LABEL, &der, b"legacy", 1 << 15);
    let key = load(&pem, "legacy").unwrap();
    assert_eq!(key.verifying_key(), public(P256_PKCS8_PUB));
}

#[test]
fn unusual_scrypt_parameters_are_refused_before_asking_the_password() {
    let der = pkcs8_der(P256_PKCS8_KEY);
    let pem = encrypt(SIGSTORE_ENCRYPTED_LABEL, &der, b"", 1 << 10);
    let err = SigningKey::from_pem(&pem, no_password).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported private key encryption: scrypt parameters N=1024, r=8, p=1, \
         expected N=32768, 65536 or 131072 with r=8, p=1"
    );
}

#[test]
fn damaged_envelopes_are_refused() {
    let cases = [
        (b"{}".as_slice(), "failed to parse the encrypted private key: missing field `kdf` at line 1 column 2"),
        (
            br#"{"kdf":{"name":"argon2","params":{"N":1,"r":1,"p":1},"salt":""},"cipher":{"name":"nacl/secretbox","nonce":""},"ciphertext":""}"#,
            "unsupported private key encryption: key derivation `argon2`, expected `scrypt`",
        ),
        (
            br#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"!"},"cipher":{"name":"nacl/secretbox","nonce":""},"ciphertext":""}"#,
            "failed to parse the encrypted private key: `kdf.salt` is not valid standard base64",
        ),
        (
            br#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""},"cipher":{"name":"nacl/secretbox","nonce":"AAAA"},"ciphertext":""}"#,
            "failed to parse the encrypted private key: `cipher.nonce` is 3 bytes, expected 24",
        ),
    ];
    for (body, expected) in cases {
        let pem = pem_block(SIGSTORE_ENCRYPTED_LABEL, body);
        let err = SigningKey::from_pem(&pem, no_password).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn encrypted_key_of_another_algorithm_is_named() {
    let der = pkcs8_der(include_str!("testdata/rsa-2048.key"));
    let pem = encrypt(SIGSTORE_ENCRYPTED_LABEL, &der, b"pw", 1 << 15);
    let err = load(&pem, "pw").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported key algorithm RSA: only ECDSA P-256 keys are supported"
    );
}

#[test]
fn unencrypted_p256_keys_load_without_a_password() {
    let key = SigningKey::from_pem(P256_PKCS8_KEY, no_password).unwrap();
    assert_eq!(key.verifying_key(), public(P256_PKCS8_PUB));
    assert_eq!(key.verifying_key().fingerprint(), "sha256:371ea5b4e5f8");
    let key = SigningKey::from_pem(P256_SEC1_KEY, no_password).unwrap();
    assert_eq!(key.verifying_key(), public(P256_SEC1_PUB));
}

#[test]
fn other_algorithms_are_refused_by_name() {
    let private = [
        (include_str!("testdata/p384-pkcs8.key"), "ECDSA P-384"),
        (include_str!("testdata/p384-sec1.key"), "ECDSA P-384"),
        (include_str!("testdata/ed25519.key"), "Ed25519"),
        (include_str!("testdata/rsa-2048.key"), "RSA"),
    ];
    for (pem, algorithm) in private {
        let err = SigningKey::from_pem(pem, no_password).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unsupported key algorithm {algorithm}: only ECDSA P-256 keys are supported")
        );
    }
    let public = [
        (include_str!("testdata/p384.pub"), "ECDSA P-384"),
        (include_str!("testdata/ed25519.pub"), "Ed25519"),
        (include_str!("testdata/rsa-2048.pub"), "RSA"),
    ];
    for (pem, algorithm) in public {
        let err = VerifyingKey::from_pem(pem).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unsupported key algorithm {algorithm}: only ECDSA P-256 keys are supported")
        );
    }
}

#[test]
fn unexpected_pem_blocks_are_named() {
    let certificate = pem_block("CERTIFICATE", b"\x30\x00");
    let err = SigningKey::from_pem(&certificate, no_password).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected PEM block `CERTIFICATE`: expected a private key \
         (`ENCRYPTED SIGSTORE PRIVATE KEY`, `ENCRYPTED COSIGN PRIVATE KEY`, \
         `PRIVATE KEY` or `EC PRIVATE KEY`)"
    );
    let err = SigningKey::from_pem(PASSWORD_PUB, no_password).unwrap_err();
    assert!(matches!(&err, KeyError::UnexpectedLabel { label, .. } if label == "PUBLIC KEY"));
    let err = VerifyingKey::from_pem(PASSWORD_KEY).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected PEM block `ENCRYPTED SIGSTORE PRIVATE KEY`: expected a public key (`PUBLIC KEY`)"
    );
    // headers make the body invalid RFC 7468, but the label is still named
    let legacy = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let err = SigningKey::from_pem(legacy, no_password).unwrap_err();
    assert!(
        matches!(&err, KeyError::UnexpectedLabel { label, .. } if label == "ENCRYPTED PRIVATE KEY")
    );
}

#[test]
fn text_that_is_not_pem_is_refused() {
    let err = SigningKey::from_pem("not a key", no_password).unwrap_err();
    assert!(matches!(err, KeyError::Pem { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("failed to parse the PEM encoding: "),
        "{err}"
    );
    let err = VerifyingKey::from_pem("").unwrap_err();
    assert!(matches!(err, KeyError::Pem { .. }), "{err:?}");
}

#[test]
fn malformed_der_is_refused() {
    let err = SigningKey::from_pem(
        &pem_block("PRIVATE KEY", b"\x30\x03\x02\x01\x00"),
        no_password,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            KeyError::Malformed {
                format: "PKCS #8 private key",
                ..
            }
        ),
        "{err:?}"
    );
    let err = VerifyingKey::from_pem(&pem_block("PUBLIC KEY", b"junk")).unwrap_err();
    assert!(
        matches!(
            err,
            KeyError::Malformed {
                format: "public key",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn oversize_input_is_refused() {
    let mut pem = String::from(P256_PKCS8_KEY);
    pem.push_str(&" ".repeat(MAX_KEY_LEN));
    let err = SigningKey::from_pem(&pem, no_password).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "key is {} bytes, more than the 65536 bytes a key file may have",
            pem.len()
        )
    );
    assert!(matches!(
        VerifyingKey::from_pem(&pem),
        Err(KeyError::TooLarge { .. })
    ));
}

#[test]
fn trailing_blank_lines_and_crlf_are_accepted() {
    let crlf = P256_PKCS8_PUB.replace('\n', "\r\n") + "\r\n\n";
    assert_eq!(public(&crlf), public(P256_PKCS8_PUB));
}

#[test]
fn debug_shows_no_secret() {
    let key = SigningKey::from_pem(P256_PKCS8_KEY, no_password).unwrap();
    assert_eq!(
        format!("{key:?}"),
        r#"SigningKey { public: "sha256:371ea5b4e5f8", .. }"#
    );
    assert_eq!(
        format!("{:?}", key.verifying_key()),
        r#"VerifyingKey("sha256:371ea5b4e5f8")"#
    );
}

#[test]
fn cosign_signature_verifies() {
    public(PASSWORD_PUB)
        .verify(PAYLOAD, COSIGN_SIGNATURE)
        .unwrap();
    // and with the newline a file or a shell may add
    public(PASSWORD_PUB)
        .verify(PAYLOAD, &format!("{COSIGN_SIGNATURE}\n"))
        .unwrap();
}

#[test]
fn sign_then_verify() {
    let key = load(PASSWORD_KEY, "test-password").unwrap();
    let signature = key.sign(PAYLOAD);
    key.verifying_key().verify(PAYLOAD, &signature).unwrap();
    public(PASSWORD_PUB).verify(PAYLOAD, &signature).unwrap();
    // ASN.1 DER, as cosign writes it
    let der = BASE64.decode(&signature).unwrap();
    assert_eq!(der[0], 0x30);
    assert!(Signature::from_der(&der).is_ok());
}

#[test]
fn fixed_size_signature_is_accepted() {
    let key = SigningKey::from_pem(P256_PKCS8_KEY, no_password).unwrap();
    let der = BASE64.decode(key.sign(b"payload")).unwrap();
    let fixed = Signature::from_der(&der).unwrap().to_bytes();
    assert_eq!(fixed.len(), 64);
    key.verifying_key()
        .verify(b"payload", &BASE64.encode(fixed))
        .unwrap();
}

#[test]
fn tampered_payload_does_not_verify() {
    let key = public(PASSWORD_PUB);
    let mut tampered = PAYLOAD.to_vec();
    tampered[10] ^= 1;
    let err = key.verify(&tampered, COSIGN_SIGNATURE).unwrap_err();
    assert!(matches!(err, VerifyError::Mismatch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "signature does not match the payload and the key `sha256:19272229d070`"
    );
}

#[test]
fn another_key_does_not_verify() {
    let err = public(EMPTY_PUB)
        .verify(PAYLOAD, COSIGN_SIGNATURE)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Mismatch { .. }), "{err:?}");
    let other = SigningKey::from_pem(P256_PKCS8_KEY, no_password).unwrap();
    let err = public(PASSWORD_PUB)
        .verify(PAYLOAD, &other.sign(PAYLOAD))
        .unwrap_err();
    assert!(matches!(err, VerifyError::Mismatch { .. }), "{err:?}");
}

#[test]
fn bad_signature_encodings_are_refused() {
    let key = public(PASSWORD_PUB);
    for garbage in ["not base64!", "MEUC*QCc", "MEU"] {
        let err = key.verify(PAYLOAD, garbage).unwrap_err();
        assert!(matches!(err, VerifyError::Base64), "{garbage}: {err:?}");
    }
    // base64 of bytes that are no signature
    for junk in [
        BASE64.encode(b"junk"),
        BASE64.encode([0u8; 64]),
        String::new(),
    ] {
        let err = key.verify(PAYLOAD, &junk).unwrap_err();
        assert!(matches!(err, VerifyError::Malformed), "{junk}: {err:?}");
    }
}

/// cosign itself verifies our signature (`cosign verify-blob`, no transparency log).
#[test]
fn cosign_verifies_our_signature() {
    // cosign 2.5 from Debian trixie, unpacked by `.ci/install`.
    let cosign = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tools/cosign-2.5/usr/bin/cosign");
    if !wasmoci_testdata::registry::require(cosign.to_str().unwrap()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = load(PASSWORD_KEY, "test-password").unwrap();
    let (payload, signature, public_key) = (
        dir.path().join("payload.json"),
        dir.path().join("payload.json.sig"),
        dir.path().join("cosign.pub"),
    );
    std::fs::write(&payload, PAYLOAD).unwrap();
    std::fs::write(&signature, key.sign(PAYLOAD)).unwrap();
    std::fs::write(&public_key, PASSWORD_PUB).unwrap();
    let output = std::process::Command::new(cosign)
        .arg("verify-blob")
        .arg("--key")
        .arg(&public_key)
        .arg("--signature")
        .arg(&signature)
        .arg("--insecure-ignore-tlog=true")
        .arg(&payload)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cosign verify-blob failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
