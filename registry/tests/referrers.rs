//! Referrers against a fake registry: the referrers API (distribution 2.8, the real
//! registry here, has none), and the tag schema's read-modify-write under a concurrent
//! writer, a failed write and a tag that holds something else. The real registry and oras
//! are in `cli/tests/referrers.rs`.

use std::sync::{Arc, Mutex};

use wasmoci_registry::client::{
    Client, ClientOptions, ReferrersSource, RegistryError, fallback_tag,
};
use wasmoci_registry::{Layout, LayoutRef, Reference};
use wasmoci_spec::{Blob, Descriptor, Digest, ImageIndex, media_types};
use wasmoci_testdata::fake::{FakeRegistry, FakeResponse};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn client() -> Client {
    Client::new(ClientOptions::default()).unwrap()
}

fn referrer(n: u8, artifact_type: &str) -> serde_json::Value {
    serde_json::json!({
        "mediaType": media_types::OCI_MANIFEST,
        "digest": Digest::of(&[n]).to_string(),
        "size": 100 + u64::from(n),
        "artifactType": artifact_type,
    })
}

fn index(entries: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": entries,
    }))
    .unwrap()
}

fn digests(list: &[Descriptor]) -> Vec<Digest> {
    list.iter().map(|d| d.digest).collect()
}

#[test]
fn the_referrers_api_is_used_when_the_registry_has_it() {
    let subject = Digest::of(b"subject");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let registry = FakeRegistry::start(move |req| {
        log.lock()
            .unwrap()
            .push(format!("{} {}", req.method, req.path));
        let path = req.path.as_str();
        if path.starts_with(&format!("/v2/app/referrers/{subject}")) {
            // Two pages; the filter ignored (no `OCI-Filters-Applied`).
            return if path.contains("page=2") {
                FakeResponse::new(200, index(&[referrer(3, "application/spdx+json")]))
                    .header("content-type", INDEX)
            } else {
                FakeResponse::new(
                    200,
                    index(&[
                        referrer(1, "application/spdx+json"),
                        referrer(2, "application/vnd.dev.cosign.artifact.sig.v1+json"),
                    ]),
                )
                .header("content-type", INDEX)
                .header(
                    "link",
                    &format!("</v2/app/referrers/{subject}?page=2>; rel=\"next\""),
                )
            };
        }
        match req.method.as_str() {
            // Every blob is there already; the manifest is taken, its subject noted.
            "HEAD" => FakeResponse::new(200, Vec::new()),
            "PUT" => FakeResponse::new(201, Vec::new()).header("oci-subject", &subject.to_string()),
            _ => FakeResponse::new(404, Vec::new()),
        }
    });
    let at: Reference = format!("{}/app", registry.addr).parse().unwrap();
    let all = client().referrers(&at, &subject, None).unwrap();
    assert_eq!(all.source, ReferrersSource::Api);
    assert_eq!(all.descriptors.len(), 3);
    let sboms = client()
        .referrers(&at, &subject, Some("application/spdx+json"))
        .unwrap();
    assert_eq!(
        digests(&sboms.descriptors),
        [Digest::of(&[1]), Digest::of(&[3])]
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("artifactType=application%2Fspdx%2Bjson")),
        "the filter is asked for"
    );

    // A push of a manifest with a subject: the registry lists it, the tag schema is not
    // touched.
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path());
    let config = Blob::hash(b"{}");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_types::OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": Descriptor::for_blob(media_types::OCI_EMPTY, &config),
        "layers": [],
        "subject": {"mediaType": media_types::OCI_MANIFEST, "digest": subject.to_string(), "size": 7},
    }))
    .unwrap();
    let stored = layout.store(&manifest, &[config], None).unwrap();
    let stored = layout.resolve(&LayoutRef::Digest(stored.digest)).unwrap();
    let report = client().push(&layout, &stored, &at).unwrap();
    assert!(report.subject_accepted);
    let tag = fallback_tag(&subject);
    assert!(
        !seen.lock().unwrap().iter().any(|r| r.contains(&tag)),
        "{:?}",
        seen.lock().unwrap()
    );
}

/// A tag-schema registry keeping one index under an `ETag`, honouring `If-Match`.
struct Schema {
    index: Option<Vec<u8>>,
    version: u32,
    puts: usize,
}

fn schema_registry(
    state: Arc<Mutex<Schema>>,
    on_put: impl Fn(&mut Schema) -> Option<FakeResponse> + Send + Sync + 'static,
) -> FakeRegistry {
    FakeRegistry::start(move |req| {
        let mut state = state.lock().unwrap();
        if req.path.contains("/referrers/") {
            return FakeResponse::new(404, Vec::new());
        }
        if !req.path.contains("/manifests/sha256-") {
            return FakeResponse::new(404, Vec::new());
        }
        let etag = format!("\"v{}\"", state.version);
        match req.method.as_str() {
            "GET" => match &state.index {
                Some(bytes) => FakeResponse::new(200, bytes.clone())
                    .header("content-type", INDEX)
                    .header("etag", &etag),
                None => FakeResponse::new(404, Vec::new()),
            },
            "PUT" => {
                state.puts += 1;
                if let Some(response) = on_put(&mut state) {
                    return response;
                }
                let etag = format!("\"v{}\"", state.version);
                if req.header("if-match").is_some_and(|m| m != etag) {
                    return FakeResponse::new(412, Vec::new());
                }
                state.index = Some(req.body.clone());
                state.version += 1;
                FakeResponse::new(201, Vec::new())
            }
            _ => FakeResponse::new(405, Vec::new()),
        }
    })
}

fn entries(state: &Mutex<Schema>) -> Vec<Digest> {
    let state = state.lock().unwrap();
    let index = ImageIndex::from_json(state.index.as_ref().unwrap()).unwrap();
    digests(&index.manifests)
}

fn ours() -> Descriptor {
    serde_json::from_value(referrer(9, "application/spdx+json")).unwrap()
}

#[test]
fn the_tag_schema_keeps_every_entry_when_another_writer_gets_in_between() {
    let subject = Digest::of(b"subject");
    let state = Arc::new(Mutex::new(Schema {
        index: Some(index(&[referrer(1, "application/vnd.other.tool")])),
        version: 1,
        puts: 0,
    }));
    // Between our read and our write, another tool adds its own entry.
    let registry = schema_registry(state.clone(), |state| {
        if state.puts == 1 {
            state.index = Some(index(&[
                referrer(1, "application/vnd.other.tool"),
                referrer(2, "application/vnd.other.tool"),
            ]));
            state.version += 1;
        }
        None
    });
    let at: Reference = format!("{}/app", registry.addr).parse().unwrap();
    client().add_to_tag_schema(&at, &subject, &ours()).unwrap();
    assert_eq!(
        entries(&state),
        [Digest::of(&[1]), Digest::of(&[2]), Digest::of(&[9])]
    );
    assert_eq!(
        state.lock().unwrap().puts,
        2,
        "refused once (412), then written"
    );
    // Already listed: nothing written.
    client().add_to_tag_schema(&at, &subject, &ours()).unwrap();
    assert_eq!(state.lock().unwrap().puts, 2);
    let listed = client().referrers(&at, &subject, None).unwrap();
    assert_eq!(listed.source, ReferrersSource::TagSchema);
    assert_eq!(listed.descriptors.len(), 3);
}

#[test]
fn a_failed_or_refused_update_leaves_the_index_as_it_was() {
    let subject = Digest::of(b"subject");
    let before = index(&[referrer(1, "application/vnd.other.tool")]);
    let state = Arc::new(Mutex::new(Schema {
        index: Some(before.clone()),
        version: 1,
        puts: 0,
    }));
    // The write breaks off: the registry answers 500.
    let registry = schema_registry(state.clone(), |_| {
        Some(FakeResponse::new(
            500,
            r#"{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}"#,
        ))
    });
    let at: Reference = format!("{}/app", registry.addr).parse().unwrap();
    let err = client()
        .add_to_tag_schema(&at, &subject, &ours())
        .unwrap_err();
    let tag = fallback_tag(&subject);
    assert!(
        err.to_string().contains(&tag) && err.to_string().contains("disk on fire"),
        "{err}"
    );
    assert_eq!(state.lock().unwrap().index.as_ref().unwrap(), &before);

    // A tag-schema tag holding something else is not ours to replace.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    state.lock().unwrap().index = Some(manifest.to_vec());
    state.lock().unwrap().puts = 0;
    let err = client()
        .add_to_tag_schema(&at, &subject, &ours())
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains(&tag), "{err}");
    assert_eq!(state.lock().unwrap().puts, 0);
    let err = client().referrers(&at, &subject, None).unwrap_err();
    assert!(err.to_string().contains("not an image index"), "{err}");

    // Not JSON at all.
    state.lock().unwrap().index = Some(b"<html>".to_vec());
    let err = client().referrers(&at, &subject, None).unwrap_err();
    assert!(err.to_string().contains(&tag), "{err}");
}
