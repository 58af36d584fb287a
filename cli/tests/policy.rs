//! `node policy check` and `node install --policy` against a real registry: the rules the
//! shim enforces, evaluated from a workstation (the shim's own are in `shim/tests/policy.rs`).

use std::path::Path;

use wasmoci_testdata::registry::TestRegistry;

use crate::support::{build_hello, ok, wasmoci};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn node_policy_check_and_install() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry/src/cosign/testdata");
    build_hello(&home);
    let app = format!("{}/team-a/hello:1.0.0", registry.addr);
    ok(wasmoci(&home).args(["push", "-q", "hello:1.0.0", &app]));
    ok(wasmoci(&home)
        .env("COSIGN_PASSWORD", "")
        .args(["sign", "-q", &app, "--key"])
        .arg(keys.join("cosign-empty.key")));
    let policy = tmp.path().join("policy.toml");
    let write = |allow: &str, key: &str| {
        std::fs::write(
            &policy,
            format!(
                "[images]\nallow = [\"{}/{allow}/*\"]\n[signatures]\nkeys = [\"{}\"]\n[components]\ndeny-imports = [\"wasi:sockets/*\"]\nmax-size = \"64MiB\"\n",
                registry.addr,
                keys.join(key).display()
            ),
        )
        .unwrap()
    };
    let check = || {
        wasmoci(&home)
            .args(["node", "policy", "check", &app, "--json", "--policy"])
            .arg(&policy)
            .output()
            .unwrap()
    };

    write("team-a", "cosign-empty.pub");
    let out = check();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let verdicts: Vec<(String, String)> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().into(),
                r["verdict"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("images.allow", "pass"),
            ("images.require-digest", "not-set"),
            ("components.max-size", "pass"),
            ("signatures.keys", "pass"),
            ("components.deny-imports", "pass"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );

    // Another repository and another key: refused, exit 1, each rule named.
    write("team-b", "cosign-password.pub");
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["allowed"], false);
    let refused: Vec<&str> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["verdict"] == "refused")
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(refused, ["images.allow", "signatures.keys"]);
    // Without --json, each refusal is an error line.
    let out = wasmoci(&home)
        .args(["node", "policy", "check", &app, "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("[images.allow]") && text.contains("[signatures.keys]"),
        "{text}"
    );

    // A broken policy: exit 2, the file and the line.
    std::fs::write(&policy, "[images]\nallow = \"not a list\"\n").unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&policy.display().to_string()) && stderr(&out).contains("line 2"),
        "{}",
        stderr(&out)
    );

    // `node install --policy`: a policy that does not parse, or names a key that cannot
    // be read, is not installed; a good one is, once.
    let node = tmp.path().join("node");
    std::fs::create_dir_all(&node).unwrap();
    let shim = node.join("shim-binary");
    std::fs::write(&shim, b"#!/bin/true\n").unwrap();
    let installed = node.join("etc/wasmoci/policy.toml");
    let install = || {
        wasmoci(&home)
            .args(["node", "install", "--policy"])
            .arg(&policy)
            .arg("--policy-path")
            .arg(&installed)
            .arg("--shim")
            .arg(&shim)
            .arg("--shim-dir")
            .arg(&node)
            .arg("--containerd-config")
            .arg(node.join("config.toml"))
            .output()
            .unwrap()
    };
    let out = install();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!installed.exists());
    std::fs::write(
        &policy,
        "[signatures]\nkeys = [\"/nonexistent/team.pub\"]\n",
    )
    .unwrap();
    let out = install();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/nonexistent/team.pub"),
        "{}",
        stderr(&out)
    );
    assert!(!installed.exists());
    write("team-a", "cosign-empty.pub");
    let out = install();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&policy).unwrap()
    );
}
