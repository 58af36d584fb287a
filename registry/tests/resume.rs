//! A download that breaks off mid-blob: resumed with `Range` from the bytes already
//! verified, asked again from the start when the registry ignores `Range`, bounded, and
//! nothing half-written. The fake registry cuts the connection where a proxy would.

use std::sync::{Arc, Mutex};

use wasmoci_testdata::fake::{FakeRegistry, FakeResponse};

use super::{Artifact, artifact, nothing_kept, pull};

/// How the fake answers a blob request that names a `Range`.
#[derive(Clone, Copy)]
enum Ranges {
    /// `206` with the rest.
    Honoured,
    /// The whole blob again, `200`.
    Ignored,
    /// `206` with the rest, cut short again.
    HonouredButCut,
}

/// A registry that cuts the layer's first download at half its bytes; the requests for
/// the layer it saw (`GET` with their `Range`).
fn cutting(a: Arc<Artifact>, ranges: Ranges) -> (FakeRegistry, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let registry = FakeRegistry::start(move |req| {
        let path = req.path.as_str();
        if path.contains("/manifests/") {
            return FakeResponse::new(200, a.manifest.clone())
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .header("docker-content-digest", &a.manifest_digest);
        }
        if path.ends_with(&a.config_digest) {
            return FakeResponse::new(200, a.config.clone());
        }
        if !path.ends_with(&a.layer_digest) {
            return FakeResponse::new(404, Vec::new());
        }
        let range = req.header("range").map(str::to_owned);
        log.lock().unwrap().push(range.clone());
        let half = a.layer.len() / 2;
        let cut = |response: FakeResponse, at: usize| FakeResponse {
            truncate_to: Some(at),
            ..response
        };
        let Some(range) = range else {
            return cut(FakeResponse::new(200, a.layer.clone()), half);
        };
        let from: usize = range
            .trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse()
            .unwrap();
        let rest = FakeResponse::new(206, a.layer[from..].to_vec()).header(
            "content-range",
            &format!("bytes {from}-{}/{}", a.layer.len() - 1, a.layer.len()),
        );
        match ranges {
            Ranges::Honoured => rest,
            Ranges::Ignored => FakeResponse::new(200, a.layer.clone()),
            Ranges::HonouredButCut => cut(rest, 1),
        }
    });
    (registry, seen)
}

#[test]
fn a_download_cut_mid_blob_resumes_from_the_bytes_already_verified() {
    let a = Arc::new(artifact());
    let half = a.layer.len() / 2;
    let (registry, seen) = cutting(a.clone(), Ranges::Honoured);
    let (dir, result) = pull(&registry.addr, ":1", std::time::Duration::from_secs(5));
    result.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [None, Some(format!("bytes={half}-"))]
    );
    let stored = dir
        .path()
        .join("layout/blobs/sha256")
        .join(&a.layer_digest[7..]);
    assert_eq!(std::fs::read(stored).unwrap(), a.layer);
}

#[test]
fn a_registry_that_ignores_range_is_asked_from_the_start() {
    let a = Arc::new(artifact());
    let half = a.layer.len() / 2;
    let (registry, seen) = cutting(a.clone(), Ranges::Ignored);
    let (dir, result) = pull(&registry.addr, ":1", std::time::Duration::from_secs(5));
    // Cut, asked from `half` (answered from 0: refused), asked again from the start
    // (cut again: the fake cuts every whole download), … until the retries run out.
    assert!(result.is_err());
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], None);
    assert_eq!(seen[1], Some(format!("bytes={half}-")));
    assert_eq!(seen[2], None, "{seen:?}");
    assert!(seen.len() <= 16, "bounded: {seen:?}");
    nothing_kept(dir.path());
}

#[test]
fn resuming_is_bounded_and_names_the_blob() {
    let a = Arc::new(artifact());
    let (registry, seen) = cutting(a.clone(), Ranges::HonouredButCut);
    let (dir, result) = pull(&registry.addr, ":1", std::time::Duration::from_secs(5));
    let error = result.unwrap_err().to_string();
    assert!(
        error.contains(&a.layer_digest) && error.contains("broke off"),
        "{error}"
    );
    assert!(seen.lock().unwrap().len() <= 16, "bounded");
    nothing_kept(dir.path());
}

#[test]
fn a_body_longer_than_its_descriptor_or_a_huge_manifest_is_refused() {
    // The layer with bytes after it: cut off at the descriptor's size + 1, refused.
    let a = Arc::new(artifact());
    let (digest, mut longer) = (a.layer_digest.clone(), a.layer.clone());
    longer.extend_from_slice(&[0u8; 4096]);
    let registry = super::fake(a.clone(), move |path, _| {
        path.ends_with(&digest)
            .then(|| FakeResponse::new(200, longer.clone()))
    });
    let (dir, result) = pull(&registry.addr, ":1", std::time::Duration::from_secs(5));
    let error = result.unwrap_err().to_string();
    assert!(error.contains(&a.layer_digest), "{error}");
    nothing_kept(dir.path());

    // A manifest over 4 MiB: refused before it is parsed, the reference named.
    let huge = vec![b' '; (4 << 20) + 1];
    let registry = super::fake(a, move |path, _| {
        path.contains("/manifests/").then(|| {
            FakeResponse::new(200, huge.clone())
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        })
    });
    let (dir, result) = pull(&registry.addr, ":1", std::time::Duration::from_secs(5));
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            wasmoci_registry::client::RegistryError::TooLarge { .. }
        ) && error.to_string().contains("fault/test:1")
            && error.to_string().contains("4 MiB"),
        "{error}"
    );
    nothing_kept(dir.path());
}
