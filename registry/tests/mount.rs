//! Mounting blobs from the repositories a layout remembers, and uploading when the
//! registry refuses the mount.

use std::sync::{Arc, Mutex};

use wasmoci_registry::Reference;
use wasmoci_registry::client::{Client, ClientOptions};
use wasmoci_testdata::fake::{FakeRegistry, FakeRequest, FakeResponse};

use super::{artifact, stored};

/// A registry that has no blob, answers a mount with `mount` and takes every upload; it
/// logs each request.
pub(super) fn upload_sink(mount: u16) -> (FakeRegistry, Arc<Mutex<Vec<FakeRequest>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let registry = FakeRegistry::start(move |req| {
        log.lock().unwrap().push(req.clone());
        match req.method.as_str() {
            "HEAD" => FakeResponse::new(404, Vec::new()),
            "POST" if req.path.contains("mount=") => FakeResponse::new(mount, Vec::new()),
            "POST" => FakeResponse::new(202, Vec::new()).header("location", "/v2/upload/1"),
            _ => FakeResponse::new(201, Vec::new()),
        }
    });
    (registry, seen)
}

/// The `from=` of every mount asked for.
fn mounts_from(seen: &Mutex<Vec<FakeRequest>>) -> Vec<String> {
    let mut from: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| Some(r.path.split_once("&from=")?.1.to_owned()))
        .collect();
    from.sort();
    from
}

#[test]
fn a_push_mounts_from_remembered_repositories_and_uploads_when_refused() {
    let a = artifact();
    for (answer, mounted, uploaded) in [(201, 2, 0), (403, 0, 2)] {
        let (_dir, layout, stored) = stored(&a);
        let layout = layout.remembering_sources();
        let (registry, seen) = upload_sink(answer);
        let manifest = stored.manifest().unwrap();
        let blobs = [manifest.config.digest, manifest.layers[0].digest];
        // Known in two repositories of this registry, and in one of another.
        layout.remember_sources(&blobs, "elsewhere.example/team/app");
        layout.remember_sources(&blobs, &format!("{}/team/app", registry.addr));
        layout.remember_sources(&blobs, &format!("{}/other/app", registry.addr));
        let client = Client::new(ClientOptions::default()).unwrap();
        let dest: Reference = format!("{}/new/app:1", registry.addr).parse().unwrap();
        let report = client.push(&layout, &stored, &dest).unwrap();
        assert_eq!(
            (report.mounted.len(), report.uploaded.len()),
            (mounted, uploaded),
            "mount answered {answer}"
        );
        let expected = if answer == 201 {
            // The most recent first: one mount per blob was enough.
            vec!["other/app", "other/app"]
        } else {
            vec!["other/app", "other/app", "team/app", "team/app"]
        };
        assert_eq!(mounts_from(&seen), expected, "mount answered {answer}");
        // The destination is remembered for the next push.
        assert_eq!(
            layout.blob_sources(&blobs[0])[0],
            format!("{}/new/app", registry.addr)
        );
    }
}
