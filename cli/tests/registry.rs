//! Push and pull against a real registry (Debian's docker-registry, CNCF distribution 2.8)
//! on loopback, cross-checked with skopeo.

use std::io::Write;
use std::process::{Command, Stdio};

use wasmoci_testdata::registry::TestRegistry;

use crate::support::{build_hello, fixtures, ok, require_tool, wasmoci};

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

#[test]
fn push_pull_and_run_through_a_real_registry_byte_for_byte() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (home, other) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(wasmoci(&home)
        .arg("build")
        .arg(fixtures().join("hello-p1.wat"))
        .args(["--tag", "hello:1.0.0"]));
    let dest = format!("{}/wasm/hello:1.0.0", registry.addr);
    let pushed = json(&ok(wasmoci(&home).args([
        "push",
        "hello:1.0.0",
        &dest,
        "--json",
    ])));
    assert_eq!(pushed["skipped"], serde_json::json!([]));
    assert!(pushed["uploaded_bytes"].as_u64().unwrap() > 17_000);
    let digest = pushed["digest"].as_str().unwrap().to_owned();

    // A second push of the same content uploads nothing.
    let again = json(&ok(wasmoci(&home).args([
        "push",
        "hello:1.0.0",
        &dest,
        "--json",
    ])));
    assert_eq!(again["uploaded_bytes"], 0);
    assert_eq!(again["digest"], digest.as_str());

    // skopeo reads what we pushed, byte for byte.
    if require_tool("skopeo") {
        let manifest = Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{dest}"),
            ])
            .output()
            .unwrap();
        assert!(
            manifest.status.success(),
            "{}",
            String::from_utf8_lossy(&manifest.stderr)
        );
        let local = home
            .join("store/blobs/sha256")
            .join(&digest["sha256:".len()..]);
        assert_eq!(manifest.stdout, std::fs::read(local).unwrap());
    }

    // Pulled elsewhere: same digest, same layer bytes, and it runs by its reference.
    let out = tmp.path().join("pulled.wasm");
    let pulled = json(&ok(wasmoci(&other)
        .args(["pull", &dest, "--json", "-o"])
        .arg(&out)));
    assert_eq!(pulled["digest"], digest.as_str());
    let inspected = json(&ok(wasmoci(&home).args([
        "inspect",
        "hello:1.0.0",
        "--json",
    ])));
    let layer = inspected["layer_digest"].as_str().unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(
            home.join("store/blobs/sha256")
                .join(&layer["sha256:".len()..])
        )
        .unwrap()
    );
    let ran = ok(wasmoci(&other).args(["run", &dest]));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from wasip1\n");
    ok(wasmoci(&other).args([
        "validate",
        &format!("{}/wasm/hello@{digest}", registry.addr),
    ]));

    // A tag that is not there is a clear "not found".
    let missing = wasmoci(&other)
        .args(["pull", &format!("{}/wasm/hello:9.9.9", registry.addr)])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("not found: manifest unknown"), "{stderr}");
}

#[test]
fn we_pull_what_skopeo_copies_into_the_registry() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    if !require_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let layout = tmp.path().join("layout");
    let built = json(&ok(wasmoci(&home)
        .arg("build")
        .arg(fixtures().join("http-hello.wasm"))
        .args(["--tag", "http:1.0.0", "--json", "--layout"])
        .arg(&layout)));
    let dest = format!("{}/copied/http:1.0.0", registry.addr);
    let copy = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:http:1.0.0", layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let pulled = json(&ok(
        wasmoci(&tmp.path().join("other")).args(["pull", &dest, "--json"])
    ));
    assert_eq!(pulled["digest"], built["digest"]);
}

#[test]
fn basic_auth_takes_credentials_from_stdin_or_the_environment() {
    let Some(registry) = TestRegistry::start(Some(("alice", "s3cret"))) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    build_hello(&home);
    let dest = format!("{}/private/hello:1.0.0", registry.addr);

    let anonymous = wasmoci(&home)
        .env("DOCKER_CONFIG", tmp.path().join("no-docker"))
        .args(["push", "hello:1.0.0", &dest])
        .output()
        .unwrap();
    assert_eq!(anonymous.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        stderr.contains("unauthorized") && stderr.contains("anonymous"),
        "{stderr}"
    );

    let wrong = wasmoci(&home)
        .env("WASMOCI_REGISTRY_USERNAME", "alice")
        .env("WASMOCI_REGISTRY_PASSWORD", "wrong")
        .args(["push", "hello:1.0.0", &dest])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("WASMOCI_REGISTRY_USERNAME"), "{stderr}");
    assert!(!stderr.contains("wrong"), "the password leaked: {stderr}");

    ok(wasmoci(&home)
        .env("WASMOCI_REGISTRY_USERNAME", "alice")
        .env("WASMOCI_REGISTRY_PASSWORD", "s3cret")
        .args(["push", "hello:1.0.0", &dest]));

    let mut pull = wasmoci(&tmp.path().join("other"))
        .args(["pull", &dest, "--username", "alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    pull.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = pull.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tags_lists_every_page_and_tag_adds_tags() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    build_hello(&home);
    let repo = format!("{}/many/hello", registry.addr);
    let pushed = json(&ok(wasmoci(&home).args([
        "push",
        "hello:1.0.0",
        &format!("{repo}:1.0.0"),
        "--json",
    ])));
    // 260 more tags (bounded), more than two pages of 100.
    let mut new_tags: Vec<String> = (0..257).map(|i| format!("build-{i:03}")).collect();
    new_tags.extend(["0.9.0".into(), "v2.0.0".into(), "1.10.0".into()]);
    ok(wasmoci(&home)
        .arg("tag")
        .arg(format!("{repo}:1.0.0"))
        .args(&new_tags));
    let all = json(&ok(wasmoci(&home).args(["tags", &repo, "--json"])));
    assert_eq!(all.as_array().unwrap().len(), 261);
    let semver = json(&ok(
        wasmoci(&home).args(["tags", &repo, "--semver", "--json"])
    ));
    assert_eq!(
        semver,
        serde_json::json!(["0.9.0", "1.0.0", "1.10.0", "v2.0.0"])
    );

    // Every tag names the same manifest; `manifest --config` prints the config blob.
    let manifest = ok(wasmoci(&home).args(["manifest", &format!("{repo}:build-256")]));
    let digest = pushed["digest"].as_str().unwrap();
    let local = |d: &str| {
        std::fs::read(home.join("store/blobs/sha256").join(&d["sha256:".len()..])).unwrap()
    };
    assert_eq!(manifest.stdout.trim_ascii_end(), local(digest).as_slice());
    let config = ok(wasmoci(&home).args(["manifest", &format!("{repo}:0.9.0"), "--config"]));
    let parsed: serde_json::Value = serde_json::from_slice(&local(digest)).unwrap();
    assert_eq!(
        config.stdout.trim_ascii_end(),
        local(parsed["config"]["digest"].as_str().unwrap()).as_slice()
    );
}

#[test]
fn login_saves_to_docker_config_and_logout_removes_it() {
    let Some(registry) = TestRegistry::start(Some(("bob", "hunter2"))) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let docker = tmp.path().join("docker");
    build_hello(&home);
    let dest = format!("{}/team/hello:1.0.0", registry.addr);
    let login = |password: &str| {
        let mut child = wasmoci(&home)
            .env("DOCKER_CONFIG", &docker)
            .args(["login", &registry.addr, "-u", "bob", "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let bad = login("nope\n");
    assert_eq!(bad.status.code(), Some(4));
    assert!(
        !docker.join("config.json").exists(),
        "a failed login saved credentials"
    );
    let good = login("hunter2\n");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docker.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["auths"][&registry.addr]["auth"], "Ym9iOmh1bnRlcjI=");

    // docker's config.json is where the push finds its credentials now.
    ok(wasmoci(&home)
        .env("DOCKER_CONFIG", &docker)
        .args(["push", "hello:1.0.0", &dest]));
    ok(wasmoci(&home)
        .env("DOCKER_CONFIG", &docker)
        .args(["logout", &registry.addr]));
    let after = wasmoci(&home)
        .env("DOCKER_CONFIG", &docker)
        .args(["push", "hello:1.0.0", &dest])
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(4));
}

#[test]
fn publish_builds_validates_pushes_and_writes_a_receipt() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let example = wasmoci_testdata::root().join("example");
    let dest = format!("{}/published/hello:0.1.0", registry.addr);
    let receipt = tmp.path().join("receipt.json");
    let out = ok(wasmoci(&home)
        .arg("publish")
        .arg(&example)
        .arg(&dest)
        .arg("--receipt")
        .arg(&receipt));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(stdout.trim(), receipt["reference"].as_str().unwrap());
    assert_eq!(receipt["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        receipt["annotations"]["org.opencontainers.image.version"],
        "0.1.0"
    );
    assert!(receipt["timings_ms"]["total"].is_u64());
    // What was published runs after a pull, and the store was not touched by publish.
    assert!(!home.join("store").exists(), "publish wrote into the store");
    ok(wasmoci(&home).args(["pull", &dest]));
    let ran = ok(wasmoci(&home).args(["run", &dest]));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from wasip1\n");

    // Exit codes by failure class: policy 1, build 3, registry refusal 4, unreachable 5.
    let code = |args: &[&str]| {
        wasmoci(&home)
            .arg("publish")
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    let example = example.to_str().unwrap();
    assert_eq!(
        code(&[example, &dest, "--deny-import", "wasi:filesystem/*"]),
        Some(1)
    );
    let bad = fixtures().join("invalid-body.wasm");
    assert_eq!(code(&[bad.to_str().unwrap(), &dest]), Some(3));
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(code(&[example, &format!("{dead}/x/y:1")]), Some(5));
    let Some(locked) = TestRegistry::start(Some(("u", "p"))) else {
        return;
    };
    let refused = wasmoci(&home)
        .env("DOCKER_CONFIG", tmp.path().join("none"))
        .args(["publish", example, &format!("{}/x/y:1", locked.addr)])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn copy_keeps_the_digest_between_registries_and_layouts() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let built = json(&ok(wasmoci(&home)
        .arg("build")
        .arg(fixtures().join("http-hello.wasm"))
        .args(["--tag", "http:1.0.0", "--json"])));
    let digest = built["digest"].as_str().unwrap();
    let first = format!("{}/team-a/http:1.0.0", registry.addr);
    let second = format!("{}/team-b/http:1.0.0", registry.addr);
    let layout = format!("oci:{}:http:1.0.0", tmp.path().join("vendor").display());
    // store → registry → another repository (mounted) → layout → the store of another home.
    // (uploaded, skipped, mounted) blobs: for a layout, "uploaded" is written into it.
    for (src, dst, counts) in [
        ("http:1.0.0", first.as_str(), [2, 0, 0]),
        // Two repositories of one registry: both blobs are mounted, not uploaded.
        (first.as_str(), second.as_str(), [0, 0, 2]),
        (second.as_str(), layout.as_str(), [2, 0, 0]),
        (second.as_str(), layout.as_str(), [0, 2, 0]),
    ] {
        let out = json(&ok(wasmoci(&home).args(["copy", src, dst, "--json"])));
        assert_eq!(out["reference"], format!("{dst}@{digest}"));
        let count = |key: &str| out[key].as_array().map_or(usize::MAX, Vec::len);
        assert_eq!(
            [count("uploaded"), count("skipped"), count("mounted")],
            counts,
            "{src} -> {dst}: {out}"
        );
    }
    let out = ok(wasmoci(&tmp.path().join("other")).args(["copy", &layout, "copied:1.0.0"]));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(&format!("@{digest}\n")));
    ok(wasmoci(&tmp.path().join("other")).args(["validate", "copied:1.0.0"]));
}

#[test]
fn credential_helpers_and_per_host_variables_are_used() {
    let Some(registry) = TestRegistry::start(Some(("carol", "from-helper"))) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    build_hello(&home);
    let dest = format!("{}/helped/hello:1.0.0", registry.addr);

    // A real `docker-credential-<name>` helper on PATH, named by `credHelpers`.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-wasmocitest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"carol\",\"Secret\":\"from-helper\"}' \"$server\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for config in [
        serde_json::json!({ "credHelpers": { &registry.addr: "wasmocitest" } }),
        serde_json::json!({ "credsStore": "wasmocitest" }),
    ] {
        let docker = tempfile::tempdir().unwrap();
        std::fs::write(docker.path().join("config.json"), config.to_string()).unwrap();
        ok(wasmoci(&home)
            .env("PATH", &path)
            .env("DOCKER_CONFIG", docker.path())
            .args(["push", "hello:1.0.0", &dest]));
    }

    // `WASMOCI_REGISTRY_<HOST>_*` wins over the general variables.
    let host: String = registry
        .addr
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    ok(wasmoci(&home)
        .env("DOCKER_CONFIG", tmp.path().join("none"))
        .env(format!("WASMOCI_REGISTRY_{host}_USERNAME"), "carol")
        .env(format!("WASMOCI_REGISTRY_{host}_PASSWORD"), "from-helper")
        .env("WASMOCI_REGISTRY_USERNAME", "someone")
        .env("WASMOCI_REGISTRY_PASSWORD", "else")
        .args(["push", "hello:1.0.0", &dest]));
}

#[test]
fn tls_registries_take_a_ca_file_or_insecure() {
    let Some(registry) = TestRegistry::start_tls() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    build_hello(&home);
    let dest = format!("{}/secure/hello:1.0.0", registry.addr);
    let cert = registry.certificate.clone().unwrap();
    ok(wasmoci(&home)
        .args(["push", "hello:1.0.0", &dest, "--ca-file"])
        .arg(&cert));
    ok(wasmoci(&tmp.path().join("other")).args(["pull", &dest, "--insecure"]));

    // Another CA: a TLS failure, said as such.
    let other = tempfile::tempdir().unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(other.path().join("k.pem"))
        .arg("-out")
        .arg(other.path().join("c.pem"))
        .output()
        .unwrap();
    assert!(status.status.success());
    let out = wasmoci(&home)
        .args(["push", "hello:1.0.0", &dest, "--ca-file"])
        .arg(other.path().join("c.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TLS"), "{stderr}");
}

#[test]
fn bearer_tokens_from_a_token_service() {
    let Some(registry) = TestRegistry::start_token("dave", "t0ken") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    build_hello(&home);
    let dest = format!("{}/tokens/hello:1.0.0", registry.addr);
    let with_creds = |cmd: &mut Command| {
        cmd.env("DOCKER_CONFIG", tmp.path().join("none"))
            .env("WASMOCI_REGISTRY_USERNAME", "dave")
            .env("WASMOCI_REGISTRY_PASSWORD", "t0ken");
    };
    let mut push = wasmoci(&home);
    with_creds(&mut push);
    let pushed = json(&ok(push.args(["push", "hello:1.0.0", &dest, "--json"])));
    // The generic variables go only to where a command writes: a pull names the host.
    let mut pull = wasmoci(&tmp.path().join("other"));
    with_creds(&mut pull);
    let refused = pull.args(["pull", &dest]).output().unwrap();
    assert_eq!(refused.status.code(), Some(4));
    let host: String = registry
        .addr
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let pulled = json(&ok(wasmoci(&tmp.path().join("other"))
        .env("DOCKER_CONFIG", tmp.path().join("none"))
        .env(format!("WASMOCI_REGISTRY_{host}_USERNAME"), "dave")
        .env(format!("WASMOCI_REGISTRY_{host}_PASSWORD"), "t0ken")
        .args(["pull", &dest, "--json"])));
    assert_eq!(pulled["digest"], pushed["digest"]);

    let anonymous = wasmoci(&tmp.path().join("third"))
        .env("DOCKER_CONFIG", tmp.path().join("none"))
        .args(["pull", &dest])
        .output()
        .unwrap();
    assert_eq!(anonymous.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(stderr.contains("token service"), "{stderr}");
}
