//! Referrers on a real registry (distribution 2.8: no referrers API, so the tag schema),
//! both ways with oras 1.2 (Debian trixie's, unpacked by `.ci/install`).

use std::path::Path;
use std::process::{Command, Output};

use wasmoci_testdata::registry::TestRegistry;

use crate::support::{build_hello, ok, unpacked_tool, wasmoci};

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

fn oras(oras: &Path, dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(oras)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("failed to start oras");
    assert!(
        out.status.success(),
        "oras {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A registry, and a home with `hello:1.0.0` built, beside a work directory.
fn registry_and_home() -> Option<(
    TestRegistry,
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
)> {
    let registry = TestRegistry::start(None)?;
    let tmp = tempfile::tempdir().unwrap();
    let (home, work) = (tmp.path().join("home"), tmp.path().join("work"));
    std::fs::create_dir_all(&work).unwrap();
    build_hello(&home);
    Some((registry, tmp, home, work))
}

fn digests(discovered: &serde_json::Value) -> Vec<String> {
    discovered["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn attach_discover_and_pull_interoperate_with_oras() {
    let Some(oras_bin) = unpacked_tool("oras-1.2/usr/bin/oras") else {
        return;
    };
    let Some((registry, _tmp, home, work)) = registry_and_home() else {
        return;
    };
    let tagged = format!("{}/wasm/hello:1.0.0", registry.addr);
    let repo = format!("{}/wasm/hello", registry.addr);
    ok(wasmoci(&home).args(["push", "-q", "hello:1.0.0", &tagged]));
    let sbom = work.join("sbom.spdx.json");
    std::fs::write(&sbom, br#"{"spdxVersion":"SPDX-2.3","name":"hello"}"#).unwrap();

    // Ours, seen by oras.
    let attached = json(&ok(wasmoci(&home)
        .args([
            "attach",
            &tagged,
            "--artifact-type",
            "application/spdx+json",
        ])
        .arg(format!("{}:application/spdx+json", sbom.display()))
        .args(["-a", "org.example.tool=wasmoci", "--json"])));
    assert_eq!(attached["listed_by"], "tag-schema");
    let subject = attached["subject"].as_str().unwrap().to_owned();
    assert_eq!(
        attached["index"].as_str().unwrap(),
        format!("{repo}:{}", subject.replace(':', "-"))
    );
    let ours = attached["digest"].as_str().unwrap().to_owned();
    assert_eq!(attached["reference"], format!("{repo}@{ours}").as_str());
    let seen = oras(
        &oras_bin,
        &work,
        &["discover", "--plain-http", "--format", "json", &tagged],
    );
    let seen: serde_json::Value = serde_json::from_slice(&seen.stdout).unwrap();
    let listed = seen["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{seen}");
    assert_eq!(listed[0]["digest"], ours.as_str());
    assert_eq!(listed[0]["artifactType"], "application/spdx+json");
    let pulled_by_oras = work.join("by-oras");
    std::fs::create_dir_all(&pulled_by_oras).unwrap();
    oras(
        &oras_bin,
        &pulled_by_oras,
        &["pull", "--plain-http", &format!("{repo}@{ours}")],
    );
    assert_eq!(
        std::fs::read(pulled_by_oras.join("sbom.spdx.json")).unwrap(),
        std::fs::read(&sbom).unwrap()
    );

    // Theirs, beside ours: the index keeps both whoever writes last.
    std::fs::write(work.join("review.txt"), b"looks good\n").unwrap();
    let theirs = oras(
        &oras_bin,
        &work,
        &[
            "attach",
            "--plain-http",
            "--artifact-type",
            "application/vnd.example.review",
            "--format",
            "json",
            &tagged,
            "review.txt",
        ],
    );
    let theirs: serde_json::Value = serde_json::from_slice(&theirs.stdout).unwrap();
    let theirs = theirs["digest"].as_str().unwrap().to_owned();
    let discovered = json(&ok(wasmoci(&home).args(["discover", &tagged, "--json"])));
    assert_eq!(discovered["listed_by"], "tag-schema");
    assert_eq!(discovered["digest"], subject.as_str());
    let mut both = vec![ours.clone(), theirs.clone()];
    both.sort();
    let mut found = digests(&discovered);
    found.sort();
    assert_eq!(found, both);
    let only_reviews = json(&ok(wasmoci(&home).args([
        "discover",
        &tagged,
        "--artifact-type",
        "application/vnd.example.review",
        "--json",
    ])));
    assert_eq!(digests(&only_reviews), std::slice::from_ref(&theirs));

    // A referrer of a referrer, followed with --depth; and the tree as people read it.
    std::fs::write(work.join("sig.txt"), b"signed\n").unwrap();
    let nested = json(&ok(wasmoci(&home)
        .args(["attach", &format!("{repo}@{ours}")])
        .args(["--artifact-type", "application/vnd.example.sig"])
        .arg(work.join("sig.txt"))
        .arg("--json")));
    let nested = nested["digest"].as_str().unwrap().to_owned();
    let shallow = json(&ok(wasmoci(&home).args(["discover", &tagged, "--json"])));
    assert!(shallow.to_string().find(&nested).is_none());
    let tree = ok(wasmoci(&home).args(["discover", &tagged, "--depth", "2", "--format", "tree"]));
    let tree = String::from_utf8(tree.stdout).unwrap();
    assert!(tree.starts_with(&format!("{repo}@{subject}\n")), "{tree}");
    for line in [
        "application/spdx+json",
        "application/vnd.example.review",
        "application/vnd.example.sig",
    ] {
        assert!(tree.contains(line), "{tree}");
    }
    assert!(tree.contains(&format!("        └── {nested}")), "{tree}");

    // Theirs, pulled by us: its files into -o DIR.
    let out = work.join("by-wasmoci");
    let pulled = json(&ok(wasmoci(&home)
        .args(["pull", &format!("{repo}@{theirs}"), "-o"])
        .arg(&out)
        .arg("--json")));
    assert_eq!(
        pulled["files"][0]["path"],
        out.join("review.txt").to_str().unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("review.txt")).unwrap(),
        b"looks good\n"
    );

    // Referrer tags are no versions.
    let versions = ok(wasmoci(&home).args(["tags", &repo, "--semver"]));
    assert_eq!(String::from_utf8(versions.stdout).unwrap(), "1.0.0\n");
    let all = ok(wasmoci(&home).args(["tags", &repo]));
    assert!(String::from_utf8(all.stdout).unwrap().contains("sha256-"));
}

#[test]
fn copy_carries_referrers_and_signatures_to_a_mirror_and_an_air_gapped_layout() {
    let Some(cosign) = unpacked_tool("cosign-2.5/usr/bin/cosign") else {
        return;
    };
    let Some((registry, _tmp, home, work)) = registry_and_home() else {
        return;
    };
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry/src/cosign/testdata");
    let origin = format!("{}/origin/hello:1.0.0", registry.addr);
    ok(wasmoci(&home).args(["push", "-q", "hello:1.0.0", &origin]));
    std::fs::write(work.join("sbom.json"), b"{}").unwrap();
    let sbom = json(&ok(wasmoci(&home)
        .args([
            "attach",
            &origin,
            "--artifact-type",
            "application/spdx+json",
        ])
        .arg(work.join("sbom.json"))
        .arg("--json")));
    let sbom = sbom["digest"].as_str().unwrap().to_owned();
    std::fs::write(work.join("provenance.json"), b"{}").unwrap();
    let sbom_ref = format!("{}/origin/hello@{sbom}", registry.addr);
    let nested = json(&ok(wasmoci(&home)
        .args([
            "attach",
            &sbom_ref,
            "--artifact-type",
            "application/vnd.example.provenance",
        ])
        .arg(work.join("provenance.json"))
        .arg("--json")));
    let nested = nested["digest"].as_str().unwrap().to_owned();
    ok(wasmoci(&home)
        .env("COSIGN_PASSWORD", "")
        .args(["sign", "-q", &origin, "--key"])
        .arg(keys.join("cosign-empty.key")));

    // Registry → registry, registry → layout → registry: everything arrives.
    let mirror = format!("{}/mirror/hello:1.0.0", registry.addr);
    let copied = json(&ok(wasmoci(&home).args([
        "copy",
        &origin,
        &mirror,
        "--referrers",
        "--json",
    ])));
    let kinds: Vec<&str> = copied["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "signatures",
            "application/spdx+json",
            "application/vnd.example.provenance"
        ]
    );
    let airgap = work.join("airgap");
    ok(wasmoci(&home)
        .args(["copy", "-q", &mirror])
        .arg(format!("oci:{}:hello:1.0.0", airgap.display()))
        .arg("--referrers"));
    let back = format!("{}/back/hello:1.0.0", registry.addr);
    ok(wasmoci(&home)
        .arg("copy")
        .arg(format!("oci:{}:hello:1.0.0", airgap.display()))
        .args([&back, "--referrers", "-q"]));
    for at in [&mirror, &back] {
        let found = json(&ok(
            wasmoci(&home).args(["discover", at, "--depth", "2", "--json"])
        ));
        assert_eq!(found["referrers"][0]["digest"], sbom.as_str(), "{found}");
        assert_eq!(
            found["referrers"][0]["referrers"][0]["digest"],
            nested.as_str(),
            "{found}"
        );
        let cosign_home = work.join("cosign");
        std::fs::create_dir_all(&cosign_home).unwrap();
        let verified = Command::new(&cosign)
            .args(["verify", "--key"])
            .arg(keys.join("cosign-empty.pub"))
            .args(["--insecure-ignore-tlog=true", "--allow-http-registry", at])
            .env("HOME", &cosign_home)
            .output()
            .unwrap();
        assert!(
            verified.status.success(),
            "cosign verify {at}: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }
    // Without --referrers, only the artifact.
    let plain = format!("{}/plain/hello:1.0.0", registry.addr);
    ok(wasmoci(&home).args(["copy", "-q", &origin, &plain]));
    let none = json(&ok(wasmoci(&home).args(["discover", &plain, "--json"])));
    assert_eq!(none["referrers"], serde_json::json!([]));
}
