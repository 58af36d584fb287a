//! `wasmoci build`: reproducible, atomic, and readable by other tools.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{fixtures, ok, require_tool, skopeo, wasmoci};

fn build_json(home: &Path, args: &[&str]) -> serde_json::Value {
    let out = ok(wasmoci(home).arg("build").args(args).arg("--json"));
    serde_json::from_slice(&out.stdout).expect("`build --json` prints JSON")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

/// Every file under `root` with its bytes (and every directory), sorted.
fn snapshot(root: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.push((path.clone(), None));
                stack.push(path);
            } else {
                out.push((path.clone(), Some(fs::read(&path).unwrap())));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_same_input_gives_the_same_digest_twice_and_from_two_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let example = wasmoci_testdata::root().join("example");
    let a = tmp.path().join("a/project");
    let b = tmp.path().join("elsewhere/deeper/project");
    copy_dir(&example, &a);
    copy_dir(&example, &b);
    let first = build_json(&tmp.path().join("home1"), &[a.to_str().unwrap()]);
    let again = build_json(&tmp.path().join("home1"), &[a.to_str().unwrap()]);
    let moved = build_json(&tmp.path().join("home2"), &[b.to_str().unwrap()]);
    for key in ["digest", "config_digest", "layer_digest"] {
        assert_eq!(first[key], again[key], "{key} differs between two builds");
        assert_eq!(
            first[key], moved[key],
            "{key} differs between two directories"
        );
    }
    // And the build time is what makes them: another epoch, another digest.
    let later = ok(wasmoci(&tmp.path().join("home3"))
        .env("SOURCE_DATE_EPOCH", "86400")
        .args(["build", a.to_str().unwrap(), "--json"]));
    let later: serde_json::Value = serde_json::from_slice(&later.stdout).unwrap();
    assert_ne!(first["digest"], later["digest"]);
    assert_eq!(first["layer_digest"], later["layer_digest"]);
}

#[test]
fn a_build_that_fails_while_storing_leaves_the_layout_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let hello = fixtures().join("hello.wasm");
    let layout = tmp.path().join("layout");
    // A layout that already holds something.
    ok(wasmoci(&home)
        .args(["build", hello.to_str().unwrap(), "--tag", "first:1.0.0"])
        .arg("--layout")
        .arg(&layout));
    // Learn the manifest digest the next build will have (builds are reproducible)…
    let planned = build_json(
        &home,
        &[
            fixtures().join("http-hello.wasm").to_str().unwrap(),
            "--tag",
            "second:1.0.0",
        ],
    );
    let digest = planned["digest"].as_str().unwrap();
    // …and put a directory where its manifest blob must go: the layer and config blobs
    // are written, then the manifest fails.
    let blocker = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    fs::create_dir_all(blocker.join("in-the-way")).unwrap();
    let before = snapshot(&layout);
    let out = wasmoci(&home)
        .args([
            "build",
            fixtures().join("http-hello.wasm").to_str().unwrap(),
            "--tag",
            "second:1.0.0",
        ])
        .arg("--layout")
        .arg(&layout)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed to store `second:1.0.0`"),
        "{stderr}"
    );
    assert_eq!(
        snapshot(&layout),
        before,
        "the failed build changed the layout"
    );

    // `-o` into a directory that does not exist fails before anything is stored.
    let before = snapshot(&layout);
    let out = wasmoci(&home)
        .args([
            "build",
            hello.to_str().unwrap(),
            "--tag",
            "third:1.0.0",
            "-o",
            "/nonexistent/dir/x.wasm",
        ])
        .arg("--layout")
        .arg(&layout)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(snapshot(&layout), before);
}

#[test]
fn a_build_killed_midway_leaves_the_layout_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let layout = tmp.path().join("layout");
    ok(wasmoci(&home)
        .args([
            "build",
            fixtures().join("hello.wasm").to_str().unwrap(),
            "--tag",
            "kept:1.0.0",
        ])
        .arg("--layout")
        .arg(&layout));
    let project = tmp.path().join("slow");
    fs::create_dir_all(&project).unwrap();
    fs::copy(fixtures().join("hello.wasm"), project.join("hello.wasm")).unwrap();
    fs::write(
        project.join("wasmoci.toml"),
        "[package]\nname = \"slow\"\nversion = \"1.0.0\"\n[build]\ncommand = \"echo compiling; sleep 30\"\nwasm = \"hello.wasm\"\n",
    )
    .unwrap();
    let before = snapshot(&layout);
    let mut child = wasmoci(&home)
        .arg("build")
        .arg(&project)
        .arg("--layout")
        .arg(&layout)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    // Wait until the build command is running (bounded: the first lines of stderr).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    for _ in 0..10 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains("compiling") {
            break;
        }
    }
    assert!(
        seen.contains("compiling"),
        "the build command did not start: {seen}"
    );
    let group = format!("-{}", child.id());
    let killed = Command::new("kill")
        .args(["-KILL", "--", &group])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(
        snapshot(&layout),
        before,
        "the killed build changed the layout"
    );
}

#[test]
fn skopeo_reads_what_we_write_and_we_read_what_skopeo_copies() {
    if !require_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let layout = tmp.path().join("layout");
    let built = build_json(
        &home,
        &[
            fixtures().join("http-hello.wasm").to_str().unwrap(),
            "--tag",
            "http-hello:1.0.0",
            "--layout",
            layout.to_str().unwrap(),
        ],
    );
    let blob = |d: &serde_json::Value| {
        let d = d.as_str().unwrap();
        fs::read(layout.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap()
    };
    let source = format!("oci:{}:http-hello:1.0.0", layout.display());
    assert_eq!(
        skopeo(&["inspect", "--raw", &source]),
        blob(&built["digest"])
    );
    assert_eq!(
        skopeo(&["inspect", "--config", "--raw", &source]),
        blob(&built["config_digest"])
    );

    // skopeo copies it into another layout; we read that one, byte for byte the same.
    let copy = tmp.path().join("copy");
    let dest = format!("oci:{}:copied", copy.display());
    skopeo(&["copy", "--quiet", &source, &dest]);
    let out = ok(wasmoci(&home).args(["inspect", &dest, "--json"]));
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["digest", "config_digest", "layer_digest"] {
        assert_eq!(
            inspected[key], built[key],
            "{key} changed through skopeo copy"
        );
    }
    assert_eq!(
        inspected["exports"],
        serde_json::json!(["wasi:http/incoming-handler@0.2.12"])
    );
    ok(wasmoci(&home).args(["validate", &dest]));
}
