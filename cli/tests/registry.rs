//! Push and pull against a real registry (Debian's docker-registry, CNCF distribution 2.8)
//! on loopback, cross-checked with skopeo.

use std::io::Write;
use std::process::{Command, Stdio};

use wasmoci_testdata::registry::TestRegistry;

use crate::support::{fixtures, ok, require_tool, wasmoci};

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
    assert_eq!(missing.status.code(), Some(2));
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
    ok(wasmoci(&home)
        .arg("build")
        .arg(fixtures().join("hello.wasm"))
        .args(["--tag", "hello:1.0.0"]));
    let dest = format!("{}/private/hello:1.0.0", registry.addr);

    let anonymous = wasmoci(&home)
        .env("DOCKER_CONFIG", tmp.path().join("no-docker"))
        .args(["push", "hello:1.0.0", &dest])
        .output()
        .unwrap();
    assert_eq!(anonymous.status.code(), Some(2));
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
    assert_eq!(wrong.status.code(), Some(2), "{stderr}");
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
