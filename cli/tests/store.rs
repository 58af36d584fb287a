//! `wasmoci ls`, `rm` and `gc` where a `.case` file cannot go: what gc keeps (shown to
//! matter), a pull in flight, skopeo reading the store afterwards, shell completions.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use wasmoci_registry::{Layout, LayoutRef};
use wasmoci_spec::ImageManifest;

use crate::support::{fixtures, ok, require_tool, skopeo, wasmoci};

fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    let out = ok(wasmoci(home).args(args).arg("--json"));
    serde_json::from_slice(&out.stdout).expect("`--json` prints JSON")
}

#[test]
fn gc_keeps_every_blob_a_stored_artifact_reaches() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let hello = fixtures().join("hello.wasm");
    let hello = hello.to_str().unwrap();
    // Two artifacts sharing their layer and config: only the annotation differs.
    let one = json(
        &home,
        &["build", hello, "-t", "hello:1", "-a", "org.example.n=1"],
    );
    let two = json(
        &home,
        &["build", hello, "-t", "hello:2", "-a", "org.example.n=2"],
    );
    assert_ne!(one["digest"], two["digest"]);
    assert_eq!(one["layer_digest"], two["layer_digest"]);
    ok(wasmoci(&home).args(["compile", "hello:2"]));

    let removed = json(&home, &["rm", "hello:1"]);
    assert_eq!(removed["deleted"], serde_json::json!([one["digest"]]));
    let report = json(&home, &["gc"]);
    let freed: Vec<&str> = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    assert_eq!(freed, [one["digest"].as_str().unwrap()], "{report:#}");
    assert_eq!(report["compiled"], serde_json::json!([]), "{report:#}");

    let run = ok(wasmoci(&home).args(["run", "hello:2"]));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello from wasi:cli/run\n"
    );
    let store = home.join("store");
    if require_tool("skopeo") {
        let source = format!("oci:{}:hello:2", store.display());
        let raw = skopeo(&["inspect", "--raw", &source]);
        assert_eq!(
            wasmoci_spec::Digest::of(&raw).to_string(),
            two["digest"].as_str().unwrap()
        );
        let copy = format!("oci:{}:hello:2", tmp.path().join("copy").display());
        skopeo(&["copy", "--quiet", &source, &copy]);
    }

    // The control: had gc taken the shared layer, a run that reads it would have failed
    // (`--no-cache`: a warm run maps the compiled code and reads no layer).
    let layer: wasmoci_spec::Digest = two["layer_digest"].as_str().unwrap().parse().unwrap();
    std::fs::remove_file(Layout::at(&store).blob_path(&layer)).unwrap();
    let out = wasmoci(&home)
        .args(["run", "hello:2", "--no-cache"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is missing from the layout"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A warm run (compile cache hit) reads nothing of the wasm layer: the store checked it
/// when it was written, as containerd trusts its content store. `validate` checks every
/// digest again, and a run that has to compile reads the layer and checks it.
#[test]
fn a_warm_run_trusts_the_store_and_validate_catches_a_tampered_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let hello = fixtures().join("hello.wasm");
    let built = json(&home, &["build", hello.to_str().unwrap(), "-t", "hello:1"]);
    let run = || wasmoci(&home).args(["run", "hello:1"]).output().unwrap();
    assert_eq!(run().stdout, b"hello from wasi:cli/run\n");

    let layer: wasmoci_spec::Digest = built["layer_digest"].as_str().unwrap().parse().unwrap();
    let blob = Layout::at(home.join("store")).blob_path(&layer);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();

    let warm = run();
    assert_eq!(warm.status.code(), Some(0), "{warm:?}");
    assert_eq!(warm.stdout, b"hello from wasi:cli/run\n");

    let validate = wasmoci(&home)
        .args(["validate", "hello:1"])
        .output()
        .unwrap();
    assert_ne!(validate.status.code(), Some(0));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    assert!(report.contains("blob-digest"), "{report}");

    let cold = wasmoci(&home)
        .args(["run", "hello:1", "--no-cache"])
        .output()
        .unwrap();
    assert_eq!(cold.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&cold.stderr);
    assert!(stderr.contains("is corrupt"), "{stderr}");
}

/// A pull writes its blobs before the manifest that reaches them: gc waits for it, and
/// then keeps them. Played here with the store's own API, as the registry client does.
#[test]
fn gc_waits_for_a_pull_in_flight_and_keeps_its_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let hello = fixtures().join("hello.wasm");
    let scratch = tmp.path().join("scratch");
    ok(wasmoci(&home).args([
        "build",
        hello.to_str().unwrap(),
        "--layout",
        scratch.to_str().unwrap(),
        "-t",
        "x",
    ]));
    let scratch = Layout::open(&scratch).unwrap();
    let artifact = scratch.resolve(&LayoutRef::Only).unwrap();
    let manifest: ImageManifest = artifact.manifest().unwrap();
    let store = Layout::at(home.join("store"));
    store.create().unwrap();
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let bytes = scratch.read_blob(&blob.digest).unwrap();
        store.put_blob_from(bytes.as_slice(), Some(blob)).unwrap();
    }
    let mut gc = wasmoci(&home)
        .args(["gc", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        assert!(
            gc.try_wait().unwrap().is_none(),
            "gc did not wait for the pull in flight"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stored as a pull by digest stores it: under its name at that digest.
    let name = format!("hello@{}", artifact.descriptor.digest);
    let stored = store
        .store(&artifact.manifest_bytes, &[], Some(&name))
        .unwrap();
    let out = gc.wait_with_output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["blobs"], serde_json::json!([]), "{report:#}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "waiting for a pull into the store to finish\n"
    );

    let run = ok(wasmoci(&home).args(["run", &format!("hello@{}", stored.digest)]));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello from wasi:cli/run\n"
    );
    let ls = ok(wasmoci(&home).arg("ls"));
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.lines().nth(1).unwrap().starts_with(&name), "{ls}");
}

#[test]
fn completions_for_every_shell_name_the_commands() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = ok(wasmoci(tmp.path()).args(["completions", shell]));
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["wasmoci", "build", "gc", "dry-run"] {
            assert!(script.contains(word), "{shell}: no `{word}`");
        }
    }
}

/// Pulled artifacts are listed under the reference they were pulled by (`NAME@DIGEST`
/// when pulled by digest only), `rm` takes that reference or the digest, and gc leaves a layout skopeo reads.
#[test]
fn pulled_artifacts_are_listed_removed_and_collected() {
    let Some(registry) = wasmoci_testdata::registry::TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (home, pusher) = (tmp.path().join("home"), tmp.path().join("pusher"));
    let hello = fixtures().join("hello.wasm");
    ok(wasmoci(&pusher).args(["build", hello.to_str().unwrap(), "-t", "hello:1.0.0"]));
    ok(wasmoci(&pusher).args(["build", hello.to_str().unwrap(), "-t", "other:1.0.0"]));
    let tagged = format!("{}/demo/hello:1.0.0", registry.addr);
    ok(wasmoci(&pusher).args(["push", "hello:1.0.0", &tagged, "-q"]));
    let other = format!("{}/demo/other:1.0.0", registry.addr);
    let pushed = json(&pusher, &["push", "other:1.0.0", &other, "-q"]);
    let other_digest = pushed["digest"].as_str().unwrap().to_owned();
    let by_digest = format!("{}/demo/other@{other_digest}", registry.addr);
    ok(wasmoci(&home).args(["pull", &tagged, "-q"]));
    ok(wasmoci(&home).args(["pull", &by_digest, "-q"]));

    let listed = json(&home, &["ls"]);
    let rows: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reference"].as_str().unwrap_or("<none>"),
                e["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 2, "{listed:#}");
    assert_eq!(rows[0].0, tagged);
    assert_eq!(rows[1], (by_digest.as_str(), other_digest.as_str()));

    // By digest, as `ls --quiet` prints it.
    let removed = json(&home, &["rm", &other_digest]);
    assert_eq!(removed["deleted"], serde_json::json!([other_digest]));
    let report = json(&home, &["gc"]);
    assert_eq!(report["blobs"].as_array().unwrap().len(), 3, "{report:#}");
    let run = ok(wasmoci(&home).args(["run", &tagged]));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello from wasi:cli/run\n"
    );
    if require_tool("skopeo") {
        let store = home.join("store");
        let raw = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{tagged}", store.display()),
        ]);
        assert_eq!(wasmoci_spec::Digest::of(&raw).to_string(), rows[0].1);
    }
    // By the reference it was pulled by: the last artifact goes, and gc empties the store.
    let removed = json(&home, &["rm", &tagged]);
    assert_eq!(removed["untagged"], serde_json::json!([tagged]));
    let report = json(&home, &["gc"]);
    assert_eq!(report["blobs"].as_array().unwrap().len(), 3, "{report:#}");
    assert_eq!(json(&home, &["ls"]), serde_json::json!([]));
}

#[test]
fn store_verify_reports_damage_apart_from_garbage_and_repairs_only_corrupt_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let hello = fixtures().join("hello.wasm");
    let built = json(&home, &["build", hello.to_str().unwrap(), "-t", "hello:1"]);
    let layer = built["layer_digest"].as_str().unwrap().to_owned();
    let verify = |extra: &[&str]| {
        wasmoci(&home)
            .args(["store", "verify", "--json"])
            .args(extra)
            .output()
            .unwrap()
    };
    let report = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let healthy = verify(&[]);
    assert!(healthy.status.success());
    let healthy = report(&healthy);
    assert_eq!(healthy["healthy"], true);
    assert_eq!(healthy["blobs_checked"], 3);
    assert_eq!(healthy["tags"], 1);

    // A killed write's temporary file, and a blob nothing reaches: garbage, not damage.
    let blobs = home.join("store/blobs/sha256");
    std::fs::write(blobs.join(".tmp-killed"), b"half a blob").unwrap();
    let stray = b"nothing names me";
    std::fs::write(blobs.join(&wasmoci_testdata::sha256(stray)[7..]), stray).unwrap();
    let out = verify(&[]);
    assert!(out.status.success(), "garbage is allowed");
    let kinds: Vec<String> = report(&out)["garbage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["temporary", "unreachable"]);

    // A layer flipped on disk: damage, exit 1, the digest named.
    let path = blobs.join(&layer[7..]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(1));
    let damage = report(&out)["damage"].clone();
    assert!(
        damage[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("blob `{layer}` is corrupt")),
        "{damage}"
    );
    let text = wasmoci(&home).args(["store", "fsck"]).output().unwrap();
    assert_eq!(text.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&text.stderr).contains("is damaged: 1 problem(s)"),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );

    // --repair removes the corrupt blob and nothing else: the tag now misses its layer.
    let repaired = verify(&["--repair"]);
    assert_eq!(report(&repaired)["removed"], serde_json::json!([layer]));
    assert!(!path.exists());
    assert!(blobs.join(&wasmoci_testdata::sha256(stray)[7..]).exists());
    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        report(&out)["damage"][0],
        format!("the wasm layer `{layer}` of `hello:1` is missing").as_str()
    );
    // Building it again mends it.
    json(&home, &["build", hello.to_str().unwrap(), "-t", "hello:1"]);
    assert!(verify(&[]).status.success());
}
