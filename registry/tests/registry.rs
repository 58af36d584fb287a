//! The client against a fake registry for the faults a real one will not produce, and
//! against the real one (docker-registry) for chunked uploads, concurrent pulls and
//! credentials that cannot be read.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmoci_registry::auth::Secret;
use wasmoci_registry::client::{Client, ClientOptions, RegistryError};
use wasmoci_registry::{Layout, LayoutRef, Reference, StoredArtifact};
use wasmoci_spec::{ArtifactInput, Blob, Timestamp, build_artifact};
use wasmoci_testdata::fake::{FakeRegistry, FakeResponse};
use wasmoci_testdata::registry::TestRegistry;

mod guard;
mod hostile;
mod local_blobs;
mod mount;
mod referrers;
mod resume;

struct Artifact {
    manifest: Vec<u8>,
    manifest_digest: String,
    config: Vec<u8>,
    config_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
}

fn artifact() -> Artifact {
    let layer = wat::parse_str(r#"(module (memory 1) (data (i32.const 0) "a layer with some bytes in it") (func (export "_start")))"#).unwrap();
    let built = build_artifact(ArtifactInput::new(
        &layer,
        Timestamp::from_unix_seconds(0).unwrap(),
    ))
    .unwrap();
    Artifact {
        manifest_digest: built.manifest_digest.to_string(),
        config_digest: built.manifest.config.digest.to_string(),
        layer_digest: built.layer().digest.to_string(),
        manifest: built.manifest_bytes,
        config: built.config_bytes,
        layer,
    }
}

fn client(stall: Duration) -> Client {
    Client::new(ClientOptions {
        stall_timeout: stall,
        retry_budget: Duration::from_secs(2),
        ..ClientOptions::default()
    })
    .unwrap()
}

/// `a` in a new layout, tagged `a`.
fn stored(a: &Artifact) -> (tempfile::TempDir, Layout, StoredArtifact) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path());
    let blobs = [Blob::hash(&a.config), Blob::hash(&a.layer)];
    layout.store(&a.manifest, &blobs, Some("a")).unwrap();
    let stored = layout.resolve(&LayoutRef::Tag("a".into())).unwrap();
    (dir, layout, stored)
}

/// Every file under `dir` (none must be half-written, none must be a blob).
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Serves `a` faithfully except where `fault` says otherwise (by request path).
fn fake(
    a: Arc<Artifact>,
    fault: impl Fn(&str, usize) -> Option<FakeResponse> + Send + Sync + 'static,
) -> FakeRegistry {
    let count = AtomicUsize::new(0);
    FakeRegistry::start(move |req| {
        let n = count.fetch_add(1, Ordering::Relaxed);
        if let Some(response) = fault(&req.path, n) {
            return response;
        }
        let path = req.path.as_str();
        if path.contains("/manifests/") {
            FakeResponse::new(200, a.manifest.clone())
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .header("docker-content-digest", &a.manifest_digest)
        } else if path.ends_with(&a.config_digest) {
            FakeResponse::new(200, a.config.clone())
        } else if path.ends_with(&a.layer_digest) {
            FakeResponse::new(200, a.layer.clone())
        } else {
            FakeResponse::new(
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"no such thing"}]}"#,
            )
        }
    })
}

fn pull(
    addr: &str,
    target: &str,
    stall: Duration,
) -> (tempfile::TempDir, Result<(), RegistryError>) {
    let dir = tempfile::tempdir().unwrap();
    let reference: Reference = format!("{addr}/fault/test{target}").parse().unwrap();
    let result = client(stall)
        .pull(
            &reference,
            &Layout::at(dir.path().join("layout")),
            Some("t"),
        )
        .map(drop);
    (dir, result)
}

/// Nothing half-written: no temporary file, every blob is whole (its content hashes to
/// its name; whole blobs a failed pull verified stay, so a retry need not fetch them
/// again, and concurrent pulls can share them), and no manifest is tagged.
fn nothing_kept(dir: &Path) {
    let layout_dir = dir.join("layout");
    for file in files(&layout_dir) {
        let name = Path::new(&file)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            !name.starts_with(".tmp"),
            "a temporary file was left: {file}"
        );
        if let Some(hex) = file.strip_prefix("blobs/sha256/") {
            let bytes = std::fs::read(layout_dir.join(&file)).unwrap();
            assert_eq!(
                wasmoci_spec::Digest::of(&bytes).hex(),
                hex,
                "a bad blob was kept"
            );
        }
    }
    if let Ok(layout) = Layout::open(&layout_dir) {
        assert_eq!(
            layout.tags().unwrap(),
            Vec::<String>::new(),
            "a failed pull tagged something"
        );
    }
}

#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused() {
    let a = Arc::new(artifact());
    let wrong = wasmoci_spec::Digest::of(b"something else").to_string();
    let registry = fake(a.clone(), |_, _| None);
    let (dir, result) = pull(&registry.addr, &format!("@{wrong}"), Duration::from_secs(5));
    assert!(
        matches!(result, Err(RegistryError::DigestMismatch { .. })),
        "{result:?}"
    );
    nothing_kept(dir.path());
    // By tag, a `Docker-Content-Digest` that lies is caught too.
    let lying = fake(a, move |path, _| {
        path.contains("/manifests/")
            .then(|| FakeResponse::new(200, b"{}".to_vec()).header("docker-content-digest", &wrong))
    });
    let (dir, result) = pull(&lying.addr, ":1", Duration::from_secs(5));
    assert!(
        matches!(result, Err(RegistryError::DigestMismatch { .. })),
        "{result:?}"
    );
    nothing_kept(dir.path());
}

#[test]
fn a_blob_with_the_wrong_content_is_not_kept() {
    let a = Arc::new(artifact());
    let digest = a.layer_digest.clone();
    let registry = fake(a, move |path, _| {
        path.ends_with(&digest)
            .then(|| FakeResponse::new(200, b"\0asm\x01\0\0\0 but not quite".to_vec()))
    });
    let (dir, result) = pull(&registry.addr, ":1", Duration::from_secs(5));
    assert!(
        matches!(result, Err(RegistryError::DigestMismatch { .. })),
        "{result:?}"
    );
    nothing_kept(dir.path());
}

#[test]
fn a_truncated_blob_is_not_kept() {
    let a = Arc::new(artifact());
    let (digest, layer) = (a.layer_digest.clone(), a.layer.clone());
    let registry = fake(a, move |path, _| {
        path.ends_with(&digest).then(|| FakeResponse {
            truncate_to: Some(layer.len() / 2),
            ..FakeResponse::new(200, layer.clone())
        })
    });
    let (dir, result) = pull(&registry.addr, ":1", Duration::from_secs(5));
    assert!(
        matches!(
            result,
            Err(RegistryError::Unreachable { .. } | RegistryError::DigestMismatch { .. })
        ),
        "{result:?}"
    );
    nothing_kept(dir.path());
}

#[test]
fn a_missing_docker_content_digest_is_fine_by_tag() {
    let a = Arc::new(artifact());
    let manifest = a.manifest.clone();
    let registry = fake(a.clone(), move |path, _| {
        path.contains("/manifests/").then(|| {
            FakeResponse::new(200, manifest.clone())
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        })
    });
    let (dir, result) = pull(&registry.addr, ":1", Duration::from_secs(5));
    result.unwrap();
    let layout = Layout::open(dir.path().join("layout")).unwrap();
    let stored = layout.resolve(&LayoutRef::Tag("t".into())).unwrap();
    assert_eq!(stored.descriptor.digest.to_string(), a.manifest_digest);
}

#[test]
fn rate_limits_and_server_errors_are_retried() {
    let a = Arc::new(artifact());
    // The first request gets a 429, the second a 500; then all is well.
    let registry = fake(a, |_, n| match n {
        0 => Some(FakeResponse::new(429, b"{}".to_vec()).header("retry-after", "0")),
        1 => Some(FakeResponse::new(500, b"oops".to_vec())),
        _ => None,
    });
    let (dir, result) = pull(&registry.addr, ":1", Duration::from_secs(5));
    result.unwrap();
    assert_eq!(files(&dir.path().join("layout")).len(), 5);
}

#[test]
fn a_registry_that_keeps_refusing_is_reported_as_such() {
    let a = Arc::new(artifact());
    let registry = fake(a, |_, _| {
        Some(FakeResponse::new(429, b"{}".to_vec()).header("retry-after", "1"))
    });
    let (dir, result) = pull(&registry.addr, ":1", Duration::from_secs(5));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::RateLimited {
                retry_after: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("rate-limiting"), "{err}");
    nothing_kept(dir.path());
}

#[test]
fn a_stalled_registry_is_given_up_on() {
    let a = Arc::new(artifact());
    let (digest, layer) = (a.layer_digest.clone(), a.layer.clone());
    // The right bytes, but only after 5 s of silence.
    let registry = fake(a, move |path, _| {
        path.ends_with(&digest).then(|| FakeResponse {
            stall: Some(Duration::from_secs(5)),
            ..FakeResponse::new(200, layer.clone())
        })
    });
    let started = std::time::Instant::now();
    let (dir, result) = pull(&registry.addr, ":1", Duration::from_millis(300));
    assert!(
        matches!(result, Err(RegistryError::Unreachable { .. })),
        "{result:?}"
    );
    // Given up on long before the registry would have answered (generous for a busy CI).
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    nothing_kept(dir.path());
}

#[test]
fn credentials_go_to_the_registry_and_never_to_where_it_sends_an_upload() {
    let a = artifact();
    let (_source, layout, stored) = stored(&a);
    // Where the registry sends the uploads: another origin (another port).
    let seen_elsewhere = Arc::new(Mutex::new(Vec::new()));
    let log = seen_elsewhere.clone();
    let elsewhere = FakeRegistry::start(move |req| {
        log.lock().unwrap().push(req.clone());
        FakeResponse::new(201, Vec::new())
    });
    let upload_at = format!("http://{}/uploads/1", elsewhere.addr);
    let basic = "Basic c29tZW9uZTpzZWNyZXQ="; // someone:secret
    let seen_here = Arc::new(Mutex::new(Vec::new()));
    let log = seen_here.clone();
    let registry = FakeRegistry::start(move |req| {
        log.lock().unwrap().push(req.clone());
        if req.header("authorization") != Some(basic) {
            return FakeResponse::new(401, Vec::new())
                .header("www-authenticate", r#"Basic realm="fake""#);
        }
        match req.method.as_str() {
            "HEAD" => FakeResponse::new(404, Vec::new()),
            "POST" => FakeResponse::new(202, Vec::new()).header("location", &upload_at),
            _ => FakeResponse::new(201, Vec::new()),
        }
    });
    let client = Client::new(ClientOptions {
        credential: Some(("someone".into(), Secret::new("secret"))),
        ..ClientOptions::default()
    })
    .unwrap();
    let dest: Reference = format!("{}/auth/a:1", registry.addr).parse().unwrap();
    let report = client.push(&layout, &stored, &dest).unwrap();
    assert_eq!(report.uploaded.len(), 2);
    // Both blobs went to the other origin, without the credentials.
    let elsewhere = seen_elsewhere.lock().unwrap();
    assert_eq!(elsewhere.len(), 2, "{elsewhere:?}");
    for req in elsewhere.iter() {
        assert_eq!(req.method, "PUT");
        assert_eq!(req.header("authorization"), None, "{req:?}");
    }
    // The registry got them after its challenge, on every kind of request.
    let here = seen_here.lock().unwrap();
    for method in ["HEAD", "POST", "PUT"] {
        assert!(
            here.iter()
                .any(|r| r.method == method && r.header("authorization") == Some(basic)),
            "{method}: {here:?}"
        );
    }
}

#[test]
fn chunked_uploads_and_concurrent_pulls_on_a_real_registry() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let a = artifact();
    let (_source, layout, stored) = stored(&a);
    let layer =
        wasmoci_spec::Descriptor::for_bytes(wasmoci_spec::media_types::WASM_LAYER, &a.layer);
    let dest: Reference = format!("{}/chunked/a:1", registry.addr).parse().unwrap();
    let chunky = Client::new(ClientOptions {
        chunk_size: 16,
        ..ClientOptions::default()
    })
    .unwrap();
    let report = chunky.push(&layout, &stored, &dest).unwrap();
    assert_eq!(report.uploaded.len(), 2);

    // Eight pulls of the same digest into one layout at once: one correct file each.
    let target = tempfile::tempdir().unwrap();
    let into = Layout::at(target.path());
    into.create().unwrap();
    let pinned = dest.with_digest(stored.descriptor.digest);
    std::thread::scope(|scope| {
        for i in 0..8 {
            let (into, pinned) = (&into, &pinned);
            scope.spawn(move || {
                client(Duration::from_secs(10))
                    .pull(pinned, into, Some(&format!("copy-{i}")))
                    .unwrap();
            });
        }
    });
    let blobs = files(&target.path().join("blobs"));
    assert_eq!(blobs.len(), 3, "{blobs:?}");
    assert_eq!(into.read_blob(&layer.digest).unwrap(), a.layer);
    assert_eq!(into.tags().unwrap().len(), 8);
}

/// The child process reads its reference and where to write what it saw from these.
const CHILD_TARGET: &str = "WASMOCI_TEST_CHILD_TARGET";
const CHILD_REPORT: &str = "WASMOCI_TEST_CHILD_REPORT";

/// Pulls `target` with the credentials this process's environment gives, and writes the
/// notes and the error to `report`, one per line (the child's side of [`pull_in_child`]).
fn pull_and_report(target: &str, report: &str) {
    let notes = Arc::new(Mutex::new(Vec::new()));
    let sink = notes.clone();
    let client = client(Duration::from_secs(10))
        .with_notes(move |note| sink.lock().unwrap().push(note.to_owned()));
    let dir = tempfile::tempdir().unwrap();
    let result = client.pull(
        &target.parse().unwrap(),
        &Layout::at(dir.path().join("layout")),
        None,
    );
    let mut lines: Vec<String> = notes
        .lock()
        .unwrap()
        .iter()
        .map(|n| format!("note: {n}"))
        .collect();
    lines.push(match result {
        Ok(_) => "pulled".into(),
        Err(e) => format!("error: {e}"),
    });
    std::fs::write(report, lines.join("\n")).unwrap();
}

/// [`pull_and_report`] in a child process (this test binary again, running this one test)
/// with `docker_config` as `$DOCKER_CONFIG` and `bin` first on `PATH` (the environment
/// belongs to the whole process, and other tests run beside this one): its notes and its
/// last line.
fn pull_in_child(target: &str, docker_config: &Path, bin: &Path) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args([CREDENTIALS_TEST, "--exact", "--quiet"])
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("DOCKER_CONFIG", docker_config)
        .env(CHILD_TARGET, target)
        .env(CHILD_REPORT, &report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report).expect("the child test ran");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let last = lines.pop().unwrap();
    (lines, last)
}

const CREDENTIALS_TEST: &str = "unreadable_credentials_are_noted_and_named_in_the_error";

#[test]
fn unreadable_credentials_are_noted_and_named_in_the_error() {
    // The same test, run again by `pull_in_child` as the child that pulls.
    if let (Ok(target), Ok(report)) = (std::env::var(CHILD_TARGET), std::env::var(CHILD_REPORT)) {
        return pull_and_report(&target, &report);
    }
    let Some(registry) = TestRegistry::start(Some(("someone", "secret"))) else {
        return;
    };
    let addr = &registry.addr;
    let target = format!("{addr}/private/app:1");
    let tmp = tempfile::tempdir().unwrap();
    let at = |name: &str| tmp.path().join(name);
    let bin = at("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = |name: &str, script: &str| {
        use std::os::unix::fs::PermissionsExt;
        let file = bin.join(format!("docker-credential-{name}"));
        std::fs::write(&file, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let config = |name: &str, text: &str| {
        std::fs::create_dir(at(name)).unwrap();
        std::fs::write(at(name).join("config.json"), text).unwrap();
        at(name)
    };

    // A `config.json` that does not parse.
    let broken = config("broken", r#"{"auths": {"#);
    // A `$DOCKER_CONFIG` that is a file, not a directory.
    let not_a_dir = at("not-a-directory");
    std::fs::write(&not_a_dir, "").unwrap();
    // A credential helper that fails.
    helper(
        "wasmoci-test-locked",
        "cat >/dev/null; echo 'the keychain is locked' >&2; exit 1",
    );
    let locked = config(
        "locked",
        &format!(r#"{{"credHelpers": {{"{addr}": "wasmoci-test-locked"}}}}"#),
    );
    let cases = [
        (
            &broken,
            format!(
                "`{}`: EOF while parsing an object",
                broken.join("config.json").display()
            ),
        ),
        (
            &not_a_dir,
            format!(
                "`{}`: Not a directory (os error 20)",
                not_a_dir.join("config.json").display()
            ),
        ),
        (
            &locked,
            format!(
                "`docker-credential-wasmoci-test-locked` (named in `{}`) exited with an error: the keychain is locked",
                locked.join("config.json").display()
            ),
        ),
    ];
    // Every case is tried before the verdict, so a failure shows all that are wrong.
    let mut wrong = Vec::new();
    for (docker_config, why) in &cases {
        let (notes, error) = pull_in_child(&target, docker_config, &bin);
        let read = format!("credentials for `{addr}` could not be read: {why}");
        let noted = notes.len() == 1
            && notes[0].starts_with(&format!("note: {read}"))
            && notes[0].ends_with("; trying anonymously");
        let said = error.starts_with(&format!(
            "error: unauthorized for `{target}` with no credentials (anonymous): the registry asks for a user name and password ({read}"
        )) && error.ends_with("; tried anonymously)");
        if !noted || !said {
            wrong.push(format!(
                "`{}`: expected a note and an error naming {why}; got {notes:?} and `{error}`",
                docker_config.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // A helper that holds nothing for the registry answers as docker's do: that is no
    // failure, so no note, and the error is the anonymous one it always was.
    helper(
        "wasmoci-test-empty",
        "cat >/dev/null; echo 'credentials not found in native keychain'; exit 1",
    );
    let empty = config(
        "empty",
        &format!(r#"{{"credHelpers": {{"{addr}": "wasmoci-test-empty"}}}}"#),
    );
    let (notes, error) = pull_in_child(&target, &empty, &bin);
    assert_eq!(notes, Vec::<String>::new());
    assert_eq!(
        error,
        format!(
            "error: unauthorized for `{target}` with no credentials (anonymous): the registry asks for a user name and password"
        )
    );
}
