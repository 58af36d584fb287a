//! cosign's "simple signing" format, as cosign 2.5 writes it to a registry: the payload
//! (the claim that a key signs), and the signature manifest under the tag
//! `sha256-<hex>.sig` (an OCI image manifest, one layer per signature: the payload, the
//! signature in its `dev.cosignproject.cosign/signature` annotation).

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmoci_spec::{Blob, Descriptor, Digest, ImageManifest, media_types};

/// The media type of a signature layer (its content is the payload).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// The layer annotation that holds the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The `critical.type` of an image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The largest payload read (cosign's are a few hundred bytes).
pub const MAX_PAYLOAD: u64 = 64 * 1024;

/// The most signatures one manifest may hold that are looked at.
pub const MAX_SIGNATURES: usize = 1000;

/// The tag cosign keeps the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", digest.to_string().replacen(':', "-", 1))
}

/// The payload a key signs for the manifest `digest` of the repository
/// `docker_reference` (`HOST/REPO`), byte for byte as cosign writes it
/// (`optional` is `null`).
pub fn payload(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    // serde_json's maps are ordered by key, which is cosign's order too.
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": digest.to_string() },
            "type": SIGNATURE_TYPE,
        },
        "optional": null,
    }))
    .expect("a payload always serializes")
}

/// What a payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `critical.identity.docker-reference`: the repository signed in.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`: the manifest signed.
    pub digest: Digest,
}

/// A payload that is not a cosign image signature claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the payload is not a cosign image signature: {0}")]
pub struct PayloadError(String);

/// Reads a payload's claims: `critical.type` must be an image signature and the digest
/// must parse.
pub fn claims(payload: &[u8]) -> Result<Claims, PayloadError> {
    #[derive(Deserialize)]
    struct Payload {
        critical: Critical,
    }
    #[derive(Deserialize)]
    struct Critical {
        identity: Identity,
        image: Image,
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(Deserialize)]
    struct Identity {
        #[serde(rename = "docker-reference")]
        docker_reference: String,
    }
    #[derive(Deserialize)]
    struct Image {
        #[serde(rename = "docker-manifest-digest")]
        digest: String,
    }
    let parsed: Payload =
        serde_json::from_slice(payload).map_err(|e| PayloadError(e.to_string()))?;
    let critical = parsed.critical;
    if critical.kind != SIGNATURE_TYPE {
        return Err(PayloadError(format!(
            "`critical.type` is `{}`, not `{SIGNATURE_TYPE}`",
            critical.kind
        )));
    }
    let digest = critical.image.digest.parse().map_err(|_| {
        PayloadError(format!(
            "`critical.image.docker-manifest-digest` `{}` is not a digest",
            critical.image.digest
        ))
    })?;
    Ok(Claims {
        docker_reference: critical.identity.docker_reference,
        digest,
    })
}

/// A signature manifest with one more signature: its manifest and config bytes.
#[derive(Debug)]
pub struct SignatureManifest {
    /// The manifest.
    pub manifest: Vec<u8>,
    /// Its config (an OCI image config whose `diff_ids` are the payloads' digests).
    pub config: Vec<u8>,
}

/// The signature manifest `existing` (its parsed manifest and config, when the tag had
/// one) with the signature `signature` of `payload` appended as a layer; the config's
/// `rootfs.diff_ids` and `history` grow with it, as cosign's do.
pub fn append(
    existing: Option<(&ImageManifest, &serde_json::Value)>,
    payload: &Blob<'_>,
    signature: &str,
) -> SignatureManifest {
    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
    let (mut layers, mut config) = match existing {
        Some((manifest, config)) => (manifest.layers.clone(), config.clone()),
        None => (
            Vec::new(),
            serde_json::json!({
                "architecture": "", "created": ZERO_TIME, "history": [], "os": "",
                "rootfs": { "type": "layers", "diff_ids": [] }, "config": {},
            }),
        ),
    };
    let mut layer = Descriptor::for_blob(SIMPLE_SIGNING, payload);
    layer.annotations = Some(BTreeMap::from([(
        SIGNATURE_ANNOTATION.to_owned(),
        signature.to_owned(),
    )]));
    layers.push(layer);
    if let Some(ids) = config["rootfs"]["diff_ids"].as_array_mut() {
        ids.push(payload.digest().to_string().into());
    }
    if let Some(history) = config["history"].as_array_mut() {
        history.push(serde_json::json!({ "created": ZERO_TIME }));
    }
    let config = serde_json::to_vec(&config).expect("a config always serializes");
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::for_bytes(media_types::OCI_IMAGE_CONFIG, &config),
        layers,
        subject: None,
        annotations: None,
    };
    SignatureManifest {
        manifest: manifest.to_json(),
        config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_cosigns_byte_for_byte() {
        // As cosign 2.5 wrote it for this digest in a docker-registry here.
        let digest: Digest =
            "sha256:68c2abcbad3b2cdbc83b4fd81ac07f546aca60d0784214cb3dfb847268fd7c06"
                .parse()
                .unwrap();
        let expected = r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5055/wasm/hello"},"image":{"docker-manifest-digest":"sha256:68c2abcbad3b2cdbc83b4fd81ac07f546aca60d0784214cb3dfb847268fd7c06"},"type":"cosign container image signature"},"optional":null}"#;
        let ours = payload("127.0.0.1:5055/wasm/hello", &digest);
        assert_eq!(String::from_utf8(ours.clone()).unwrap(), expected);
        let read = claims(&ours).unwrap();
        assert_eq!(read.digest, digest);
        assert_eq!(read.docker_reference, "127.0.0.1:5055/wasm/hello");
        assert_eq!(
            signature_tag(&digest),
            "sha256-68c2abcbad3b2cdbc83b4fd81ac07f546aca60d0784214cb3dfb847268fd7c06.sig"
        );
    }

    #[test]
    fn claims_of_another_kind_are_refused() {
        let other = br#"{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"}}"#;
        assert!(
            claims(other)
                .unwrap_err()
                .to_string()
                .contains("not a digest")
        );
        let attestation = br#"{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"sha256:68c2abcbad3b2cdbc83b4fd81ac07f546aca60d0784214cb3dfb847268fd7c06"},"type":"something else"}}"#;
        assert!(
            claims(attestation)
                .unwrap_err()
                .to_string()
                .contains("something else")
        );
        assert!(claims(b"[]").is_err());
    }

    #[test]
    fn appending_keeps_the_signatures_there() {
        let first = Blob::hash(b"payload one");
        let one = append(None, &first, "c2lnMQ==");
        let manifest = ImageManifest::from_json(&one.manifest).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&one.config).unwrap();
        assert_eq!(manifest.config.digest, Digest::of(&one.config));
        let second = Blob::hash(b"payload two");
        let two = append(Some((&manifest, &config)), &second, "c2lnMg==");
        let manifest = ImageManifest::from_json(&two.manifest).unwrap();
        assert_eq!(manifest.layers.len(), 2);
        assert_eq!(manifest.layers[0].digest, first.digest());
        assert_eq!(
            manifest.layers[1].annotation(SIGNATURE_ANNOTATION),
            Some("c2lnMg==")
        );
        let config: serde_json::Value = serde_json::from_slice(&two.config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(config["history"].as_array().unwrap().len(), 2);
    }
}
