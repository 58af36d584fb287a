//! Pulling on demand (`run|serve|inspect|validate|compile HOST/REPO:TAG`, `--pull`), and
//! what a failed pull leaves behind, against a real registry.

use std::path::Path;
use std::process::Output;

use wasmoci_testdata::registry::TestRegistry;

use crate::support::{build_hello, fixtures, ok, wasmoci};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds `hello-p1.wat` in `home` and pushes it to `dest`.
fn push_hello(home: &Path, dest: &str) {
    ok(wasmoci(home)
        .arg("build")
        .arg(fixtures().join("hello-p1.wat"))
        .args(["--tag", "hello:1.0.0"]));
    ok(wasmoci(home).args(["push", "hello:1.0.0", dest]));
}

#[test]
fn registry_artifacts_are_pulled_on_demand_once() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (home, other) = (tmp.path().join("a"), tmp.path().join("b"));
    let dest = format!("{}/demand/hello:1.0.0", registry.addr);
    push_hello(&home, &dest);

    // Not pulled yet: `--pull never` refuses and says how to pull it, in every command
    // that pulls on demand.
    for command in ["run", "serve", "inspect", "validate", "compile"] {
        let never = wasmoci(&other)
            .args([command, &dest, "--pull", "never"])
            .output()
            .unwrap();
        assert_eq!(
            never.status.code(),
            Some(2),
            "{command}: {}",
            stderr(&never)
        );
        assert_eq!(
            stderr(&never),
            format!("error: `{dest}` is not in the store: run `wasmoci pull {dest}` first\n"),
            "{command}"
        );
    }

    // The first run pulls (and says so on stderr), then runs.
    let first = ok(wasmoci(&other).args(["run", &dest]));
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "hello from wasip1\n"
    );
    assert!(
        stderr(&first).contains(&format!("pulled `{dest}`: 2 blob(s) downloaded")),
        "{}",
        stderr(&first)
    );
    // `--pull always` fetches again (the blobs are already here).
    let always = ok(wasmoci(&other).args(["inspect", &dest, "--pull", "always"]));
    assert!(
        stderr(&always).contains("0 blob(s) downloaded (0 bytes), 2 already here"),
        "{}",
        stderr(&always)
    );

    // With the registry gone, what is stored still runs, validates, inspects and
    // compiles: no request is made. `--pull always` needs the registry.
    drop(registry);
    let second = ok(wasmoci(&other).args(["run", &dest]));
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "hello from wasip1\n"
    );
    assert_eq!(stderr(&second), "", "a stored artifact was fetched again");
    for command in ["validate", "inspect", "compile"] {
        let out = ok(wasmoci(&other).args([command, &dest]));
        assert!(!stderr(&out).contains("pulled"), "{}", stderr(&out));
    }
    let gone = wasmoci(&other)
        .args(["run", &dest, "--pull", "always"])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(5), "{}", stderr(&gone));
    assert!(
        stderr(&gone).contains(&format!("failed to pull `{dest}`")),
        "{}",
        stderr(&gone)
    );
}

#[test]
fn validate_and_compile_pull_a_registry_reference_without_a_separate_pull() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("{}/demand/check:1.0.0", registry.addr);
    push_hello(&tmp.path().join("a"), &dest);
    let validated = ok(wasmoci(&tmp.path().join("b")).args(["validate", &dest, "--quiet"]));
    assert_eq!(stderr(&validated), "", "--quiet still printed");
    let compiled = ok(wasmoci(&tmp.path().join("c")).args(["compile", &dest]));
    assert!(
        stderr(&compiled).contains("pulled"),
        "{}",
        stderr(&compiled)
    );
    assert!(String::from_utf8_lossy(&compiled.stdout).ends_with(".cwasm\n"));
}

#[test]
fn a_failed_pull_into_a_new_layout_leaves_no_directory() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    build_hello(&home);
    // An ordinary container image (no wasm layer): refused after the manifest is read.
    let image = format!("{}/image/hello:1.0.0", registry.addr);
    ok(wasmoci(&home).args(["push", "hello:1.0.0", &image, "--as-image"]));
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Not wasm (2), not there (4: refused), unreachable (5: transfer).
    for (n, (source, code)) in [
        (image.clone(), 2),
        (format!("{}/image/hello:9.9.9", registry.addr), 4),
        (format!("{dead}/nothing/here:1"), 5),
    ]
    .iter()
    .enumerate()
    {
        let layout = tmp.path().join(format!("new-{n}"));
        let out = wasmoci(&home)
            .args(["pull", source, "--layout"])
            .arg(&layout)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(*code), "{}", stderr(&out));
        assert!(
            !layout.exists(),
            "`pull {source}` left `{}`",
            layout.display()
        );
    }
    // A layout that was there before stays.
    let existing = tmp.path().join("existing");
    ok(wasmoci(&home)
        .args(["copy", "hello:1.0.0"])
        .arg(format!("oci:{}:hello:1.0.0", existing.display())));
    let out = wasmoci(&home)
        .args(["pull", &image, "--layout"])
        .arg(&existing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(existing.join("index.json").is_file());
}

/// What a hostile registry says reaches people escaped: its error text cannot drive the
/// terminal or fake a line of ours; `--json` keeps it exact.
#[test]
fn registry_text_is_shown_escaped() {
    let registry = wasmoci_testdata::fake::FakeRegistry::start(|_| {
        wasmoci_testdata::fake::FakeResponse::new(
            404,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"\u001b]0;pwned\u0007\u001b[2J\nvalidated OK"}]}"#,
        )
        .header("content-type", "application/json")
    });
    let home = tempfile::tempdir().unwrap();
    let reference = format!("{}/demo/hello:1.0.0", registry.addr);
    let out = wasmoci(home.path())
        .args(["pull", &reference])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("validated OK")),
        "{text}"
    );
    let json = wasmoci(home.path())
        .args(["pull", &reference, "--json"])
        .output()
        .unwrap();
    let error: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let causes = error["error"]["causes"].to_string();
    assert!(causes.contains("\\u001b]0;pwned"), "{causes}");
}

/// A hostile registry's tags are listed one line each, escaped; `--json` is exact.
#[test]
fn hostile_tags_are_listed_escaped() {
    let registry = wasmoci_testdata::fake::FakeRegistry::start(|_| {
        wasmoci_testdata::fake::FakeResponse::new(
            200,
            r#"{"name":"demo/hello","tags":["1.0.0\u001b[2J\nvalidated OK","2.0.0"]}"#,
        )
        .header("content-type", "application/json")
    });
    let home = tempfile::tempdir().unwrap();
    let repository = format!("{}/demo/hello", registry.addr);
    let out = ok(wasmoci(home.path()).args(["tags", &repository]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1.0.0\\u{1b}[2J\\u{a}validated OK\n2.0.0\n"
    );
    let json = ok(wasmoci(home.path()).args(["tags", &repository, "--json"]));
    let tags: Vec<String> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(tags[0], "1.0.0\u{1b}[2J\nvalidated OK");
}
