//! Dependencies against a registry that counts what it is asked: a fake, serving
//! artifacts built into a layout (the real-registry behaviour is in
//! `testdata/cli/dependencies.case`). Cold, `dependency update` lists each package's tags
//! once; warm, `dependency build` with a lock and a full store asks nothing at all.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmoci_testdata::fake::{FakeRegistry, FakeRequest, FakeResponse};

use crate::support::{fixtures, ok, wasmoci};

/// Serves `GET /v2/REPO/{tags/list,manifests/REF,blobs/DIGEST}` from the OCI layout at
/// `layout`, whose entries are tagged `REPO:TAG`.
fn serve(layout: &Path, request: &FakeRequest) -> FakeResponse {
    let not_found = || FakeResponse::new(404, r#"{"errors":[{"code":"NOT_FOUND"}]}"#);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            Some((
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()?
                    .to_owned(),
                m["digest"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let blob = |digest: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .ok()
    };
    let path = request.path.split('?').next().unwrap_or_default();
    // wkg's discovery: this host is the registry, with no namespace prefix (in the older
    // form of `registry.json`, which wkg still reads; the HTTPS test has the current one).
    if path == "/.well-known/wasm-pkg/registry.json" {
        let host = request.header("host").unwrap_or_default();
        return FakeResponse::new(
            200,
            serde_json::json!({"ociRegistry": host, "ociNamespacePrefix": ""}).to_string(),
        )
        .header("content-type", "application/json");
    }
    let Some(path) = path.strip_prefix("/v2/") else {
        return not_found();
    };
    if path.is_empty() {
        return FakeResponse::new(200, "{}");
    }
    if let Some(repo) = path.strip_suffix("/tags/list") {
        let tags: Vec<&str> = entries
            .iter()
            .filter_map(|(name, _)| name.strip_prefix(&format!("{repo}:")))
            .collect();
        return FakeResponse::new(
            200,
            serde_json::json!({"name": repo, "tags": tags}).to_string(),
        )
        .header("content-type", "application/json");
    }
    if let Some((repo, reference)) = path.split_once("/manifests/") {
        let digest = if reference.starts_with("sha256:") {
            Some(reference.to_owned())
        } else {
            entries
                .iter()
                .find(|(name, _)| *name == format!("{repo}:{reference}"))
                .map(|(_, d)| d.clone())
        };
        return match digest
            .as_deref()
            .and_then(|d| blob(d).map(|b| (d.to_owned(), b)))
        {
            Some((digest, bytes)) => FakeResponse::new(200, bytes)
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .header("docker-content-digest", &digest),
            None => not_found(),
        };
    }
    if let Some((_, digest)) = path.split_once("/blobs/") {
        return match blob(digest) {
            Some(bytes) => FakeResponse::new(200, bytes),
            None => not_found(),
        };
    }
    not_found()
}

/// What the fake registry was asked, `METHOD PATH` each.
type Asked = Arc<Mutex<Vec<String>>>;

/// A fake registry serving the layout `WORK/published` (empty until something is built
/// into it), recording what it is asked.
fn published(work: &Path) -> (PathBuf, Asked, FakeRegistry) {
    let layout = work.join("published");
    let asked: Asked = Arc::default();
    let registry = {
        let layout = layout.clone();
        let asked = asked.clone();
        FakeRegistry::start(move |request| {
            asked
                .lock()
                .unwrap()
                .push(format!("{} {}", request.method, request.path));
            serve(&layout, request)
        })
    };
    (layout, asked, registry)
}

#[test]
fn a_warm_build_asks_the_registry_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (layout, asked, registry) = published(work.path());
    let home = work.path().join("home");
    let hello = fixtures().join("hello.wasm");
    let log = format!(
        r#"dev.wasmoci.dependencies={{"acme:log":{{"oci":"{}/acme/log","version":"^0.3"}}}}"#,
        registry.addr
    );
    for (tag, annotation) in [
        ("acme/log:0.3.1", "org.example.n=1"),
        ("acme/log:0.4.0", "org.example.n=2"),
        ("acme/kv:1.0.0", "org.example.n=3"),
        ("acme/kv:1.1.0", log.as_str()),
    ] {
        ok(wasmoci(&home)
            .arg("build")
            .arg(&hello)
            .arg("--layout")
            .arg(&layout)
            .args(["--tag", tag, "-a", annotation]));
    }
    let project = work.path().join("app");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("wasmoci.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"1.0.0\"\n[build]\nwasm = \"app.wasm\"\n[dependencies]\n\"acme:kv\" = \"^1\"\n[registries]\nacme = \"{}/\"\n",
            registry.addr
        ),
    )
    .unwrap();
    let project_arg: PathBuf = project.clone();

    // Cold: one tag listing per package, one manifest per version looked at, and the
    // blobs of what was chosen.
    ok(wasmoci(&home)
        .args(["dependency", "update", "--project"])
        .arg(&project_arg));
    let cold = std::mem::take(&mut *asked.lock().unwrap());
    let count = |what: &str| cold.iter().filter(|r| r.contains(what)).count();
    assert_eq!(count("/tags/list"), 2, "{cold:#?}");
    // kv 1.1.0 and log 0.3.1: the manifest the solver read is the one stored.
    assert_eq!(count("/manifests/"), 2, "{cold:#?}");
    let lock = std::fs::read_to_string(project.join("wasmoci.lock")).unwrap();
    assert!(
        lock.contains("version = \"1.1.0\"") && lock.contains("version = \"0.3.1\""),
        "{lock}"
    );

    // Warm: a lock and a full store.
    ok(wasmoci(&home)
        .args(["dependency", "build", "--project"])
        .arg(&project_arg));
    let warm = std::mem::take(&mut *asked.lock().unwrap());
    assert!(warm.is_empty(), "a warm build asked {warm:#?}");

    // Without the store, it asks for what is missing, by digest only.
    std::fs::remove_dir_all(home.join("store")).unwrap();
    ok(wasmoci(&home)
        .args(["dependency", "build", "--project"])
        .arg(&project_arg));
    let refill = std::mem::take(&mut *asked.lock().unwrap());
    assert!(!refill.is_empty());
    assert!(
        refill
            .iter()
            .filter(|r| r.contains("/manifests/"))
            .all(|r| r.contains("/manifests/sha256:")),
        "{refill:#?}"
    );
    assert!(
        !refill.iter().any(|r| r.contains("/tags/list")),
        "{refill:#?}"
    );
}

/// A namespace that neither `oci` nor `[registries]` maps is found as wkg finds it:
/// wkg's config names its registry domain, whose `.well-known/wasm-pkg/registry.json`
/// names the OCI registry. Without a config, the error says what was tried.
#[test]
fn a_namespace_is_discovered_through_wkg_config() {
    let work = tempfile::tempdir().unwrap();
    let (layout, asked, registry) = published(work.path());
    let home = work.path().join("home");
    ok(wasmoci(&home)
        .arg("build")
        .arg(fixtures().join("hello.wasm"))
        .arg("--layout")
        .arg(&layout)
        .args(["--tag", "acme/log:0.3.1"]));
    let project = work.path().join("app");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("wasmoci.toml"),
        "[package]\nname = \"app\"\nversion = \"1.0.0\"\n[build]\nwasm = \"app.wasm\"\n[dependencies]\n\"acme:log\" = \"0.3\"\n",
    )
    .unwrap();
    let config = work.path().join("config");
    let update = || {
        wasmoci(&home)
            .env("XDG_CONFIG_HOME", &config)
            .args(["dependency", "update", "--project"])
            .arg(&project)
            .output()
            .unwrap()
    };
    let out = update();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no repository for `acme:log` (line 7 of `wasmoci.toml`)")
            && stderr.contains("wasm-pkg/config.toml` (not there)"),
        "{stderr}"
    );
    std::fs::create_dir_all(config.join("wasm-pkg")).unwrap();
    std::fs::write(
        config.join("wasm-pkg/config.toml"),
        format!("[namespace_registries]\nacme = \"{}\"\n", registry.addr),
    )
    .unwrap();
    let out = update();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lock = std::fs::read_to_string(project.join("wasmoci.lock")).unwrap();
    assert!(
        lock.contains(&format!("source = \"oci://{}/acme/log\"", registry.addr)),
        "{lock}"
    );
    let well_known = || {
        asked
            .lock()
            .unwrap()
            .iter()
            .filter(|r| *r == "GET /.well-known/wasm-pkg/registry.json")
            .count()
    };
    assert_eq!(well_known(), 1, "{asked:?}");

    // A package override with the registry's metadata inline, as wkg's config allows:
    // it wins over the namespace's entry, and no `registry.json` is fetched.
    std::fs::write(
        config.join("wasm-pkg/config.toml"),
        format!(
            "[namespace_registries]\nacme = \"example.invalid\"\n[package_registry_overrides]\n\"acme:log\" = {{ registry = \"example.invalid\", metadata = {{ preferredProtocol = \"oci\", oci = {{ registry = \"{}\", namespacePrefix = \"\" }} }} }}\n",
            registry.addr
        ),
    )
    .unwrap();
    let out = update();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(well_known(), 1, "{asked:?}");
}
