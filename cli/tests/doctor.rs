//! `wasmoci doctor` against the harness's registries (distribution 2.8: open, htpasswd,
//! token, TLS) and a fake one that lacks what wasmoci needs.

use std::process::Output;

use wasmoci_testdata::fake::{FakeRegistry, FakeResponse};
use wasmoci_testdata::registry::TestRegistry;

use crate::support::wasmoci;

fn results(out: &Output) -> Vec<(String, String)> {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn result<'a>(results: &'a [(String, String)], name: &str) -> &'a str {
    &results.iter().find(|(n, _)| n == name).unwrap().1
}

/// What distribution 2.8 can do, whatever its auth: everything wasmoci needs, the
/// referrers through the tag schema, no tag pagination; nothing left behind.
fn distribution(out: &Output, auth: &str) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = results(out);
    for needed in [
        "api",
        "auth",
        "monolithic-upload",
        "chunked-upload",
        "cross-repo-mount",
        "wasm-config",
        "artifact-type-and-subject",
        "referrers",
        "manifest-delete",
    ] {
        assert_eq!(
            result(&found, needed),
            "yes",
            "{needed}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(result(&found, "tag-pagination"), "no");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["left"], serde_json::json!([]));
    let detail = |name: &str| {
        report["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(detail("auth").starts_with(auth), "{}", detail("auth"));
    assert!(
        detail("referrers").contains("tag schema"),
        "{}",
        detail("referrers")
    );
}

#[test]
fn doctor_on_distribution_open_htpasswd_token_and_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let none = tmp.path().join("no-docker-config");
    if let Some(open) = TestRegistry::start(None) {
        let out = wasmoci(&home)
            .args(["doctor", &open.addr, "--json"])
            .output()
            .unwrap();
        distribution(&out, "anonymous");
    }
    if let Some(basic) = TestRegistry::start(Some(("doc", "pw"))) {
        let out = wasmoci(&home)
            .env("DOCKER_CONFIG", &none)
            .env("WASMOCI_REGISTRY_USERNAME", "doc")
            .env("WASMOCI_REGISTRY_PASSWORD", "pw")
            .args(["doctor", &format!("{}/team", basic.addr), "--json"])
            .output()
            .unwrap();
        distribution(&out, "Basic");
        // Without credentials: the auth probe fails, and says so (exit 1).
        let out = wasmoci(&home)
            .env("DOCKER_CONFIG", &none)
            .args(["doctor", &basic.addr, "--json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(result(&results(&out), "auth"), "no");
    }
    if let Some(token) = TestRegistry::start_token("doc", "t0ken") {
        let out = wasmoci(&home)
            .env("DOCKER_CONFIG", &none)
            .env("WASMOCI_REGISTRY_USERNAME", "doc")
            .env("WASMOCI_REGISTRY_PASSWORD", "t0ken")
            .args(["doctor", &token.addr, "--json"])
            .output()
            .unwrap();
        distribution(&out, "Bearer");
    }
    if let Some(tls) = TestRegistry::start_tls() {
        let out = wasmoci(&home)
            .args(["doctor", &tls.addr, "--json", "--ca-file"])
            .arg(tls.certificate.clone().unwrap())
            .output()
            .unwrap();
        distribution(&out, "anonymous");
    }
}

#[test]
fn doctor_lists_what_a_registry_cannot_do() {
    // Uploads work; chunks, mounts and Wasm configs are refused; no referrers API; the
    // tag schema's index is refused too; nothing can be deleted.
    let registry = FakeRegistry::start(|req| {
        let path = req.path.as_str();
        match req.method.as_str() {
            "GET" if path == "/v2/" => FakeResponse::new(200, "{}"),
            "POST" if path.contains("mount=") => {
                FakeResponse::new(202, Vec::new()).header("location", "/v2/x/blobs/uploads/1")
            }
            "POST" => {
                FakeResponse::new(202, Vec::new()).header("location", "/v2/x/blobs/uploads/1")
            }
            "PATCH" => FakeResponse::new(
                405,
                r#"{"errors":[{"code":"UNSUPPORTED","message":"no chunks here"}]}"#,
            ),
            "PUT" if path.contains("/blobs/") => FakeResponse::new(201, Vec::new()),
            "PUT" if String::from_utf8_lossy(&req.body).contains("vnd.wasm.config") => {
                FakeResponse::new(
                    400,
                    r#"{"errors":[{"code":"MANIFEST_INVALID","message":"unknown config media type"}]}"#,
                )
            }
            "PUT" => FakeResponse::new(201, Vec::new()),
            "DELETE" => FakeResponse::new(405, Vec::new()),
            _ => FakeResponse::new(404, Vec::new()),
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = wasmoci(&tmp.path().join("home"))
        .args(["doctor", &registry.addr, "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = results(&out);
    assert_eq!(result(&found, "monolithic-upload"), "yes");
    assert_eq!(result(&found, "chunked-upload"), "no");
    assert_eq!(result(&found, "cross-repo-mount"), "no");
    assert_eq!(result(&found, "wasm-config"), "no");
    // Without --json, each missing capability is an error line.
    let out = wasmoci(&tmp.path().join("home"))
        .args(["doctor", &registry.addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot do everything wasmoci needs")
            && stderr.contains("[wasm-config]")
            && stderr.contains("unknown config media type"),
        "{stderr}"
    );
    let out = wasmoci(&tmp.path().join("home"))
        .args(["doctor", &registry.addr, "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["left"].as_array().unwrap().is_empty(), "{report}");
}
