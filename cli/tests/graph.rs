//! Dependencies against a real registry (docker-registry) holding a generated graph: 30
//! packages × 20 versions, each version's requirements in its `dev.wasmoci.dependencies`
//! annotation, with a pre-release, a `+build` version (tagged with `_`), and tags that
//! are not versions (`base`, `latest`, a `sha256-….sig` signature tag). Also: a
//! dependency behind htpasswd auth, found through docker's credentials; a namespace
//! discovered over HTTPS from a server with the harness's own CA.

use std::collections::BTreeMap;
use std::path::Path;

use wasmoci_registry::Reference;
use wasmoci_registry::client::{Client, ClientOptions};
use wasmoci_testdata::registry::TestRegistry;

use super::support::{fixtures, ok, wasmoci};

const PACKAGES: usize = 30;

/// The 20 versions of every package, with their tags: 1.0.0–1.9.0, 2.0.0–2.7.0,
/// 2.7.1+build.5 (tag `2.7.1_build.5`, Helm's rule) and 2.8.0-rc.1.
fn versions() -> Vec<(semver::Version, String)> {
    let mut out: Vec<String> = (0..10).map(|m| format!("1.{m}.0")).collect();
    out.extend((0..8).map(|m| format!("2.{m}.0")));
    out.push("2.7.1+build.5".into());
    out.push("2.8.0-rc.1".into());
    out.into_iter()
        .map(|v| (v.parse().unwrap(), v.replace('+', "_")))
        .collect()
}

fn package(i: usize) -> String {
    format!("graph:p{i:02}")
}

/// What version `v` of package `i` requires: the next package (`^1` from a 1.x, `^2`
/// from a 2.x, `>=2.6.0, <3` from 2.6 on) and the one after (`>=1.5.0`). So a project
/// holding p10 at `~2.3` forces p00–p09 down to 2.5.0: backtracking through ten levels.
fn requirements(addr: &str, i: usize, v: &semver::Version) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let next = match (v.major, v.minor) {
        (1, _) => "^1",
        (_, minor) if minor >= 6 => ">=2.6.0, <3",
        _ => "^2",
    };
    for (j, requirement) in [(i + 1, next), (i + 2, ">=1.5.0")] {
        if j < PACKAGES {
            out.insert(
                package(j),
                serde_json::json!({ "version": requirement, "oci": format!("{addr}/graph/p{j:02}") }),
            );
        }
    }
    out
}

/// Publishes the graph: the artifact once per repository (`base`), then every version as
/// that manifest with its annotations, put straight to the registry.
fn publish_graph(registry: &TestRegistry, home: &Path) {
    let addr = &registry.addr;
    for i in 0..PACKAGES {
        ok(wasmoci(home)
            .arg("publish")
            .arg(fixtures().join("hello.wasm"))
            .arg(format!("{addr}/graph/p{i:02}:base")));
    }
    let client = Client::new(ClientOptions::default()).unwrap();
    std::thread::scope(|scope| {
        for i in 0..PACKAGES {
            let client = &client;
            scope.spawn(move || {
                let base: Reference = format!("{addr}/graph/p{i:02}:base").parse().unwrap();
                let (bytes, _, media_type) = client.manifest(&base).unwrap();
                let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                for (n, (version, tag)) in versions().into_iter().enumerate() {
                    let mut manifest = manifest.clone();
                    let annotations = manifest["annotations"].as_object_mut().unwrap();
                    let wanted = serde_json::to_string(&requirements(addr, i, &version)).unwrap();
                    annotations.insert("dev.wasmoci.dependencies".into(), wanted.into());
                    annotations.insert(
                        "org.opencontainers.image.version".into(),
                        version.to_string().into(),
                    );
                    let bytes = serde_json::to_vec(&manifest).unwrap();
                    let mut at = base.clone();
                    let mut put = |tag: String| {
                        at.tag = Some(tag);
                        client.put_manifest(&at, &bytes, &media_type).unwrap()
                    };
                    let digest = put(tag);
                    if i == 5 && n == 0 {
                        // A manifest whose requirements are not JSON (0.1.0: outside every range).
                        let mut broken = manifest.clone();
                        broken["annotations"]["dev.wasmoci.dependencies"] = "{not json".into();
                        let bytes = serde_json::to_vec(&broken).unwrap();
                        let mut at = base.clone();
                        at.tag = Some("0.1.0".into());
                        client.put_manifest(&at, &bytes, &media_type).unwrap();
                    }
                    if n == 0 {
                        // Tags that are no versions: skipped, silently.
                        put("latest".into());
                        put(format!("sha256-{}.sig", digest.hex()));
                    }
                }
            });
        }
    });
}

/// A project `dir` with `dependencies` (TOML lines), its namespace `graph` mapped.
fn project(dir: &Path, addr: &str, dependencies: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(fixtures().join("hello.wasm"), dir.join("app.wasm")).unwrap();
    std::fs::write(
        dir.join("wasmoci.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"1.0.0\"\n[build]\nwasm = \"app.wasm\"\n[dependencies]\n{dependencies}\n[registries]\ngraph = \"{addr}/\"\n"
        ),
    )
    .unwrap();
}

/// The lock's packages: name → version.
fn locked(dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("wasmoci.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&text).unwrap();
    lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn update(home: &Path, dir: &Path) -> std::process::Output {
    wasmoci(home)
        .args(["dependency", "update", "--project"])
        .arg(dir)
        .output()
        .unwrap()
}

/// The artifact digest of `wasmoci build DIR` (with `extra` flags).
fn build_digest(home: &Path, dir: &Path, out: &Path, extra: &[&str]) -> String {
    let built = ok(wasmoci(home)
        .arg("build")
        .arg(dir)
        .arg("--layout")
        .arg(out)
        .arg("--json")
        .args(extra));
    let report: serde_json::Value = serde_json::from_slice(&built.stdout).unwrap();
    report["digest"].as_str().unwrap().to_owned()
}

#[test]
fn a_generated_graph_resolves_locks_and_rebuilds_offline() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    publish_graph(&registry, &home);
    let addr = registry.addr.clone();

    // The graph: p10 at `~2.3` holds p00–p09 at 2.5.0; the rest take the newest release,
    // the `+build` one (not the pre-release, which no requirement names).
    let app = work.path().join("app");
    project(
        &app,
        &addr,
        "\"graph:p00\" = \"^2\"\n\"graph:p10\" = \"~2.3\"",
    );
    let out = update(&home, &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: BTreeMap<String, String> = (0..PACKAGES)
        .map(|i| {
            let version = match i {
                0..10 => "2.5.0",
                10 => "2.3.0",
                _ => "2.7.1+build.5",
            };
            (package(i), version.to_owned())
        })
        .collect();
    assert_eq!(locked(&app), expected);

    // A requirement naming a pre-release may take it; one that does not, never.
    let pre = work.path().join("pre");
    project(&pre, &addr, "\"graph:p29\" = \">=2.8.0-rc.1\"");
    let out = update(&home, &pre);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(locked(&pre)["graph:p29"], "2.8.0-rc.1");

    // A pinned artifact's own requirements are resolved too: p28 1.9.0 needs p29 `^1`.
    let client = Client::new(ClientOptions::default()).unwrap();
    let at: Reference = format!("{addr}/graph/p28:1.9.0").parse().unwrap();
    let (_, digest, _) = client.manifest(&at).unwrap();
    let pin = work.path().join("pin");
    project(
        &pin,
        &addr,
        &format!("\"graph:p28\" = {{ oci = \"{addr}/graph/p28@{digest}\" }}"),
    );
    let out = update(&home, &pin);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: BTreeMap<String, String> = [("graph:p28", "1.9.0"), ("graph:p29", "1.9.0")]
        .map(|(p, v)| (p.to_owned(), v.to_owned()))
        .into();
    assert_eq!(locked(&pin), expected);
    let lock = std::fs::read_to_string(pin.join("wasmoci.lock")).unwrap();
    assert!(lock.contains("\"graph:p29@1.9.0\""), "{lock}");

    // A conflict ten levels down is explained, naming the project's lines.
    let conflict = work.path().join("conflict");
    project(
        &conflict,
        &addr,
        "\"graph:p09\" = \">=2.6\"\n\"graph:p10\" = \"~2.3\"",
    );
    let out = update(&home, &conflict);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("failed to resolve the dependencies")
            && stderr.contains("graph:p10")
            && stderr.contains("wasmoci.toml line 7: \"graph:p09\" = \">=2.6\""),
        "{stderr}"
    );

    // An artifact whose requirements are not JSON: an error naming it.
    let broken = work.path().join("broken");
    project(&broken, &addr, "\"graph:p05\" = \"0.1\"");
    let out = update(&home, &broken);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains(&format!("{addr}/graph/p05:0.1.0"))
            && stderr.contains("`dev.wasmoci.dependencies` is not a JSON object"),
        "{stderr}"
    );

    // The artifact the project builds, online.
    let online = build_digest(&home, &app, &work.path().join("out1"), &[]);

    // A locked tag deleted from the registry still builds: the lock pins the digest.
    registry.delete_tag("graph/p00", "2.5.0");
    std::fs::remove_dir_all(home.join("store")).unwrap();
    ok(wasmoci(&home)
        .args(["dependency", "build", "--project"])
        .arg(&app));
    // `list` says so.
    let listed = ok(wasmoci(&home)
        .args(["dependency", "list", "--json", "--project"])
        .arg(&app));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let status = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["name"] == name)
            .map(|row| row["status"].clone())
    };
    assert_eq!(status("graph:p00"), Some("tag deleted".into()), "{listed}");
    assert_eq!(status("graph:p10"), Some("ok".into()), "{listed}");

    // Vendored, then with the registry gone and an empty store: the same artifact.
    ok(wasmoci(&home)
        .args(["dependency", "vendor", "--project"])
        .arg(&app));
    drop(registry);
    std::fs::remove_dir_all(home.join("store")).unwrap();
    ok(wasmoci(&home)
        .args(["dependency", "build", "--offline", "--project"])
        .arg(&app));
    let offline = build_digest(&home, &app, &work.path().join("out2"), &["--offline"]);
    assert_eq!(online, offline);
}

/// A dependency behind htpasswd Basic auth resolves with the credentials docker keeps
/// (`config.json`'s `auths`); without them the error names the registry.
#[test]
fn a_dependency_behind_basic_auth_resolves_with_docker_credentials() {
    let Some(registry) = TestRegistry::start(Some(("bob", "hunter2"))) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let addr = registry.addr.clone();
    ok(wasmoci(&home)
        .env("WASMOCI_REGISTRY_USERNAME", "bob")
        .env("WASMOCI_REGISTRY_PASSWORD", "hunter2")
        .arg("publish")
        .arg(fixtures().join("hello.wasm"))
        .arg(format!("{addr}/graph/p00:1.0.0")));
    let app = work.path().join("app");
    project(&app, &addr, "\"graph:p00\" = \"1\"");
    let docker = work.path().join("docker");
    let out = wasmoci(&home)
        .env("DOCKER_CONFIG", &docker)
        .args(["dependency", "update", "--project"])
        .arg(&app)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(&addr),
        "without credentials: {stderr}"
    );
    std::fs::create_dir_all(&docker).unwrap();
    // base64("bob:hunter2")
    std::fs::write(
        docker.join("config.json"),
        format!("{{\"auths\":{{\"{addr}\":{{\"auth\":\"Ym9iOmh1bnRlcjI=\"}}}}}}"),
    )
    .unwrap();
    ok(wasmoci(&home)
        .env("DOCKER_CONFIG", &docker)
        .args(["dependency", "update", "--project"])
        .arg(&app));
    assert_eq!(locked(&app)["graph:p00"], "1.0.0");
}

/// wkg's discovery over HTTPS: wkg's config names the namespace's domain, a TLS server
/// with the harness's own CA serves its `.well-known/wasm-pkg/registry.json`, which names
/// the (TLS) registry; `--ca-file` trusts both.
#[test]
fn a_namespace_is_discovered_over_https() {
    let Some(registry) = TestRegistry::start_tls() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let addr = registry.addr.clone();
    let ca = registry.certificate.clone().unwrap();
    ok(wasmoci(&home)
        .arg("publish")
        .arg(fixtures().join("hello.wasm"))
        .arg(format!("{addr}/wasm/acme/log:0.3.1"))
        .arg("--ca-file")
        .arg(&ca));
    let site = work.path().join("site");
    std::fs::create_dir_all(site.join(".well-known/wasm-pkg")).unwrap();
    std::fs::write(
        site.join(".well-known/wasm-pkg/registry.json"),
        format!("{{\"oci\":{{\"registry\":\"{addr}\",\"namespacePrefix\":\"wasm/\"}}}}"),
    )
    .unwrap();
    let server = registry.serve_files(&site);
    let config = work.path().join("config");
    std::fs::create_dir_all(config.join("wasm-pkg")).unwrap();
    std::fs::write(
        config.join("wasm-pkg/config.toml"),
        format!("[namespace_registries]\nacme = \"{}\"\n", server.addr),
    )
    .unwrap();
    let app = work.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("wasmoci.toml"),
        "[package]\nname = \"app\"\nversion = \"1.0.0\"\n[build]\nwasm = \"app.wasm\"\n[dependencies]\n\"acme:log\" = \"0.3\"\n",
    )
    .unwrap();
    let update = |ca_file: bool| {
        let mut cmd = wasmoci(&home);
        cmd.env("XDG_CONFIG_HOME", &config)
            .args(["dependency", "update", "--project"])
            .arg(&app);
        if ca_file {
            cmd.arg("--ca-file").arg(&ca);
        }
        cmd.output().unwrap()
    };
    // Without the CA, the server is not trusted: the error says what was tried.
    let out = update(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(".well-known/wasm-pkg/registry.json"),
        "{stderr}"
    );
    let out = update(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lock = std::fs::read_to_string(app.join("wasmoci.lock")).unwrap();
    assert!(
        lock.contains(&format!("source = \"oci://{addr}/wasm/acme/log\"")),
        "{lock}"
    );
}

/// A core module of `size` bytes: one memory and a data segment of zeros.
fn big_module(size: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let section = |id: u8, body: Vec<u8>, out: &mut Vec<u8>| {
        out.push(id);
        leb(body.len(), out);
        out.extend(body);
    };
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    let mut memory = vec![1, 0];
    leb(size.div_ceil(65536), &mut memory);
    section(5, memory, &mut module);
    let mut data = vec![1, 0, 0x41, 0, 0x0b];
    leb(size, &mut data);
    data.resize(data.len() + size, 0);
    section(11, data, &mut module);
    module
}

/// A dependency bigger than a manifest may be (4 MiB) is streamed into the store as a
/// pull does, under the pull's own limit.
#[test]
fn a_large_dependency_is_streamed_into_the_store() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let addr = registry.addr.clone();
    let wasm = work.path().join("big.wasm");
    std::fs::write(&wasm, big_module(6 << 20)).unwrap();
    ok(wasmoci(&home)
        .arg("publish")
        .arg(&wasm)
        .arg(format!("{addr}/graph/big:1.0.0"))
        .arg("--module"));
    let app = work.path().join("app");
    project(&app, &addr, "\"graph:big\" = \"1\"");
    let out = update(&home, &app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(locked(&app)["graph:big"], "1.0.0");
}
