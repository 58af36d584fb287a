//! A hostile registry is bounded: a huge token answer, endless tag pages, a blob size
//! that lies, and layers nothing runs (left at the registry unless a copy asks).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmoci_registry::auth::Secret;
use wasmoci_registry::client::{Client, ClientOptions, PullOptions, RegistryError};
use wasmoci_registry::{Layout, Reference};
use wasmoci_spec::{Descriptor, Digest, ImageManifest};
use wasmoci_testdata::fake::{FakeRegistry, FakeRequest, FakeResponse};

use super::{Artifact, artifact};

fn options() -> ClientOptions {
    ClientOptions {
        stall_timeout: Duration::from_secs(10),
        retry_budget: Duration::from_secs(1),
        ..ClientOptions::default()
    }
}

#[test]
fn a_huge_token_answer_is_cut_off_at_1_mib() {
    // The realm is this same fake (plain-HTTP loopback); its token is 2 MiB of valid JSON.
    let token = format!(r#"{{"token":"{}"}}"#, "a".repeat(2 << 20));
    let registry = FakeRegistry::start(move |req| {
        if req.path.starts_with("/token") {
            return FakeResponse::new(200, token.clone());
        }
        if req.header("authorization").is_none() {
            let host = req.header("host").unwrap_or_default().to_owned();
            return FakeResponse::new(401, Vec::new()).header(
                "www-authenticate",
                &format!(r#"Bearer realm="http://{host}/token",service="fake""#),
            );
        }
        FakeResponse::new(404, Vec::new())
    });
    let client = Client::new(options()).unwrap();
    let r: Reference = format!("{}/big/token:1", registry.addr).parse().unwrap();
    let err = client.manifest(&r).unwrap_err();
    assert!(matches!(err, RegistryError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "failed to read the token for `{r}`: the answer of `http://{}/token` is larger than 1 MiB",
            registry.addr
        )
    );
}

/// A registry whose tag pages never end (each links to the next), with `per_page` tags
/// on each. For the test's own sake it stops linking after 300 pages.
fn endless_tags(per_page: usize) -> (FakeRegistry, Arc<AtomicUsize>) {
    let pages = Arc::new(AtomicUsize::new(0));
    let count = pages.clone();
    let registry = FakeRegistry::start(move |_| {
        let n = count.fetch_add(1, Ordering::Relaxed);
        let tags: Vec<String> = (0..per_page).map(|i| format!("\"t{n}-{i}\"")).collect();
        let body = format!(r#"{{"name":"x","tags":[{}]}}"#, tags.join(","));
        let response = FakeResponse::new(200, body);
        if n < 300 {
            response.header(
                "link",
                &format!(r#"</v2/tag/bomb/tags/list?n=100&last=t{n}>; rel="next""#),
            )
        } else {
            response
        }
    });
    (registry, pages)
}

#[test]
fn endless_tag_pages_stop_at_the_limits() {
    let (registry, pages) = endless_tags(100);
    let r: Reference = format!("{}/tag/bomb", registry.addr).parse().unwrap();
    let client = Client::new(ClientOptions {
        max_tags: 1_000,
        ..options()
    })
    .unwrap();
    let err = client.tags(&r).unwrap_err();
    assert!(matches!(err, RegistryError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "failed to list the tags of `{r}`: the listing has more tags than the limit of 1000"
        )
    );
    assert_eq!(pages.load(Ordering::Relaxed), 11);

    // Pages without a tag are bounded by their count.
    let (registry, pages) = endless_tags(0);
    let r: Reference = format!("{}/tag/bomb", registry.addr).parse().unwrap();
    let client = Client::new(ClientOptions {
        max_tag_pages: 20,
        ..options()
    })
    .unwrap();
    let err = client.tags(&r).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "failed to list the tags of `{r}`: the listing has more pages than the limit of 20"
        )
    );
    assert_eq!(pages.load(Ordering::Relaxed), 20);
}

/// `a`'s manifest with `extra` layers after its wasm layer.
fn with_layers(a: &Artifact, extra: &[Descriptor]) -> Vec<u8> {
    let mut manifest = ImageManifest::from_json(&a.manifest).unwrap();
    manifest.layers.extend(extra.iter().cloned());
    serde_json::to_vec(&manifest).unwrap()
}

/// Serves `manifest` and the blobs in `blobs` (by digest), logging each blob asked for.
fn serving(
    manifest: Vec<u8>,
    blobs: Vec<(Digest, Vec<u8>)>,
) -> (FakeRegistry, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let registry = FakeRegistry::start(move |req| {
        if req.path.contains("/manifests/") {
            return FakeResponse::new(200, manifest.clone())
                .header("content-type", "application/vnd.oci.image.manifest.v1+json");
        }
        log.lock().unwrap().push(req.path.clone());
        match blobs
            .iter()
            .find(|(d, _)| req.path.ends_with(&d.to_string()))
        {
            Some((_, bytes)) => FakeResponse::new(200, bytes.clone()),
            None => FakeResponse::new(404, Vec::new()),
        }
    });
    (registry, asked)
}

#[test]
fn a_blob_larger_than_the_limit_is_refused_before_a_byte_moves() {
    let a = artifact();
    // It claims 10 TB; the registry would send bytes until the client stopped reading.
    let liar = Descriptor {
        size: 10 << 40,
        ..Descriptor::for_bytes("application/octet-stream", b"anything")
    };
    let manifest = with_layers(&a, std::slice::from_ref(&liar));
    let (registry, asked) = serving(manifest, vec![(liar.digest, vec![0; 1 << 20])]);
    let dir = tempfile::tempdir().unwrap();
    let r: Reference = format!("{}/lying/size:1", registry.addr).parse().unwrap();
    let every = PullOptions {
        all_layers: true,
        ..PullOptions::default()
    };
    let err = Client::new(options())
        .unwrap()
        .pull_with(&r, &Layout::at(dir.path().join("l")), None, every)
        .unwrap_err();
    assert!(matches!(err, RegistryError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "failed to download `{r}`: blob `{}` is 10995116277760 bytes, more than the limit of 1 GiB",
            liar.digest
        )
    );
    assert_eq!(*asked.lock().unwrap(), Vec::<String>::new());
    assert!(!dir.path().join("l").exists());

    // A limit of the caller's choosing holds for the wasm layer too.
    let (registry, _) = serving(a.manifest.clone(), Vec::new());
    let r: Reference = format!("{}/small/limit:1", registry.addr).parse().unwrap();
    let err = Client::new(ClientOptions {
        max_blob_size: 16,
        ..options()
    })
    .unwrap()
    .pull(&r, &Layout::at(dir.path().join("m")), None)
    .unwrap_err();
    assert!(
        err.to_string().ends_with("more than the limit of 16 bytes"),
        "{err}"
    );
}

#[test]
fn layers_that_are_not_wasm_stay_at_the_registry_unless_a_copy_asks() {
    let a = artifact();
    let tar = b"not wasm, a tar perhaps".to_vec();
    let extra = Descriptor::for_bytes("application/vnd.oci.image.layer.v1.tar", &tar);
    let manifest = with_layers(&a, std::slice::from_ref(&extra));
    let blobs = vec![
        (a.config_digest.parse().unwrap(), a.config.clone()),
        (a.layer_digest.parse().unwrap(), a.layer.clone()),
        (extra.digest, tar),
    ];
    let (registry, asked) = serving(manifest, blobs);
    let r: Reference = format!("{}/extra/layer:1", registry.addr).parse().unwrap();
    let client = Client::new(options()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path());
    let report = client.pull(&r, &layout, Some("t")).unwrap();
    assert_eq!(report.downloaded.len(), 2);
    assert_eq!(report.skipped, vec![(extra.digest, extra.size)]);
    assert!(!layout.blob_path(&extra.digest).exists());
    let fetched = asked.lock().unwrap().clone();
    assert!(
        !fetched
            .iter()
            .any(|p| p.ends_with(&extra.digest.to_string())),
        "{fetched:?}"
    );

    let every = PullOptions {
        all_layers: true,
        ..PullOptions::default()
    };
    let report = client.pull_with(&r, &layout, Some("t"), every).unwrap();
    assert_eq!(report.downloaded, vec![(extra.digest, extra.size)]);
    assert!(report.skipped.is_empty());
    assert!(layout.blob_path(&extra.digest).is_file());
}

/// A registry on 127.0.0.1 that wants a Bearer token from the realm `realm` makes of
/// the token service's address; the token service's requests, logged.
fn bearer(
    realm: impl Fn(&str) -> String,
) -> (FakeRegistry, FakeRegistry, Arc<Mutex<Vec<FakeRequest>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let tokens = FakeRegistry::start(move |req| {
        log.lock().unwrap().push(req.clone());
        FakeResponse::new(200, r#"{"token":"t0k3n"}"#)
    });
    let realm = realm(&tokens.addr);
    let registry = FakeRegistry::start(move |req| {
        if req.header("authorization") != Some("Bearer t0k3n") {
            return FakeResponse::new(401, Vec::new()).header(
                "www-authenticate",
                &format!(r#"Bearer realm="{realm}",service="reg&service=evil""#),
            );
        }
        FakeResponse::new(404, Vec::new())
    });
    (registry, tokens, asked)
}

#[test]
fn basic_credentials_go_to_a_token_service_only_where_no_one_reads_them() {
    let basic = "Basic c29tZW9uZTpzZWNyZXQ="; // someone:secret
    let client = Client::new(ClientOptions {
        credential: Some(("someone".into(), Secret::new("secret"))),
        ..options()
    })
    .unwrap();
    // `0.0.0.0` reaches this machine but is not loopback by name: it stands for plain
    // HTTP to another host. 127.0.0.1 is this machine: nothing crosses a network.
    let another_host = |addr: &str| {
        let port = addr.rsplit_once(':').unwrap().1;
        format!("http://0.0.0.0:{port}/token?x=1")
    };
    let this_machine = |addr: &str| format!("http://{addr}/token?x=1");
    type Realm<'a> = &'a dyn Fn(&str) -> String;
    let cases: [(Realm<'_>, _); 2] = [(&another_host, None), (&this_machine, Some(basic))];
    for (realm, sent) in cases {
        let (registry, _tokens, asked) = bearer(realm);
        let r: Reference = format!("{}/private/app:1", registry.addr).parse().unwrap();
        let err = client.manifest(&r).unwrap_err();
        // The token worked: the registry then said the manifest is not there.
        assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
        let asked = asked.lock().unwrap();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(asked[0].header("authorization"), sent, "{asked:?}");
        // Every parameter encoded: the registry's `service` cannot add parameters.
        assert_eq!(
            asked[0].path,
            "/token?x=1&scope=repository%3Aprivate%2Fapp%3Apull&service=reg%26service%3Devil"
        );
    }
}

#[test]
fn a_token_service_that_is_not_http_is_refused() {
    let (registry, _tokens, asked) = bearer(|_| "file:///etc/passwd".into());
    let r: Reference = format!("{}/private/app:1", registry.addr).parse().unwrap();
    let err = Client::new(options()).unwrap().manifest(&r).unwrap_err();
    assert!(matches!(err, RegistryError::UnsafeRealm { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "failed to get a token for `{r}`: the registry names the token service `file:///etc/passwd`, and it is not an `https` URL"
        )
    );
    assert!(asked.lock().unwrap().is_empty());
}
