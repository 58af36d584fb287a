//! `SIGKILL` in the middle of a build, a pull or a `dependency build`, at a different moment each time, in a
//! bounded loop, and a disk that fills up: the store stays sound (`store verify`: no
//! damage; garbage allowed) and the same command then succeeds.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use wasmoci_testdata::registry::TestRegistry;

use crate::support::{ok, wasmoci};

/// How many kills each loop makes.
const KILLS: u64 = 50;

/// A core module carrying `size` bytes in a custom section: a blob big enough for a
/// kill to land in the middle of its write or download.
fn big_module(size: usize) -> Vec<u8> {
    let name = b"payload";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend((0..size).map(|i| (i * 7 % 251) as u8));
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    out.push(0);
    let mut len = body.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend(body);
    out
}

/// A delay in 0..`max_ms` that differs from one iteration to the next (deterministic).
fn delay(i: u64, max_ms: u64) -> Duration {
    let mixed = i
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    Duration::from_millis((mixed >> 33) % max_ms)
}

/// Whether the store of `home` has `tag` (its `index.json` names it).
fn tagged(home: &Path, tag: &str) -> bool {
    std::fs::read_to_string(home.join("store/index.json")).is_ok_and(|index| {
        index.contains(&format!("\"{tag}\"")) || index.contains(&format!("\"{tag}@"))
    })
}

fn assert_sound(home: &Path, what: &str) {
    let out = wasmoci(home)
        .args(["store", "verify", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        out.status.success() && report["healthy"] == true,
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn builds_and_pulls_killed_midway_leave_a_sound_store() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let module = tmp.path().join("big.wasm");
    std::fs::write(&module, big_module(24 << 20)).unwrap();
    let build = |tag: &str| {
        let mut cmd = wasmoci(&home);
        cmd.args(["build", "--module", "--no-metadata", "-t", tag])
            .arg(&module)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    // A tag per try, so that a try that finished before its kill can be told apart.
    let mut interrupted = 0;
    for i in 0..KILLS {
        let tag = format!("big:{i}");
        killed_after(build(&tag).spawn().unwrap(), delay(i, 250));
        assert_sound(&home, &format!("build killed, iteration {i}"));
        if !tagged(&home, &tag) {
            interrupted += 1;
        }
    }
    assert!(interrupted > 0, "no kill landed before a build finished");
    ok(&mut build("big:1"));
    assert_sound(&home, "after the builds");

    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let remote = format!("{}/kills/big:1", registry.addr);
    ok(wasmoci(&home).args(["push", "-q", "big:1", &remote]));
    let other = tmp.path().join("other");
    let pull = || {
        let mut cmd = wasmoci(&other);
        cmd.args(["pull", &remote])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mut interrupted = 0;
    for i in 0..KILLS {
        killed_after(pull().spawn().unwrap(), delay(i + KILLS, 200));
        if other.join("store").exists() {
            assert_sound(&other, &format!("pull killed, iteration {i}"));
        }
        if tagged(&other, &remote) {
            // It finished: start empty again, so the next one downloads.
            std::fs::remove_dir_all(&other).unwrap();
        } else {
            interrupted += 1;
        }
    }
    assert!(interrupted > 0, "no kill landed before a pull finished");
    ok(&mut pull());
    assert_sound(&other, "after the pulls");
}

/// A tmpfs of `size` mounted at a new directory, unmounted on drop (needs root: CI has it).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "failed to mount a tmpfs, and CI=true: the disk-full test needs root"
            );
            return None;
        }
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_fails_builds_and_pulls_cleanly() {
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = disk.0.path().join("home");
    let small = crate::support::fixtures().join("hello.wasm");
    ok(wasmoci(&home)
        .args(["build", "-q", "-t", "small:1"])
        .arg(&small));
    let big = tmp.path().join("big.wasm");
    std::fs::write(&big, big_module(24 << 20)).unwrap();
    let out = wasmoci(&home)
        .args(["build", "--module", "--no-metadata", "-t", "big:1"])
        .arg(&big)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no space left on device") && stderr.contains(&home.display().to_string()),
        "{stderr}"
    );
    assert_sound(&home, "after a build that ran out of space");
    assert!(tagged(&home, "small:1"));
    assert!(!tagged(&home, "big:1"));

    // The same artifact pulled: refused the same way.
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let elsewhere = tmp.path().join("elsewhere");
    ok(wasmoci(&elsewhere)
        .args(["build", "-q", "--module", "--no-metadata", "-t", "big:1"])
        .arg(&big));
    let remote = format!("{}/full/big:1", registry.addr);
    ok(wasmoci(&elsewhere).args(["push", "-q", "big:1", &remote]));
    let out = wasmoci(&home).args(["pull", &remote]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert_sound(&home, "after a pull that ran out of space");
    assert!(tagged(&home, "small:1"));
}

#[test]
fn eight_builds_and_eight_pulls_at_once_into_one_store() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (home, source) = (tmp.path().join("home"), tmp.path().join("source"));
    let hello = crate::support::fixtures().join("hello.wasm");
    // Three artifacts at the registry (their annotations differ).
    let mut remotes = Vec::new();
    for n in 0..3 {
        ok(wasmoci(&source)
            .args(["build", "-q", "-t", &format!("r:{n}"), "-a"])
            .arg(format!("org.example.n={n}"))
            .arg(&hello));
        let remote = format!("{}/many/r:{n}", registry.addr);
        ok(wasmoci(&source).args(["push", "-q", &format!("r:{n}"), &remote]));
        remotes.push(remote);
    }
    let mut children = Vec::new();
    for n in 0..8 {
        children.push(
            wasmoci(&home)
                .args(["build", "-q", "-t", &format!("b:{n}"), "-a"])
                .arg(format!("org.example.build={n}"))
                .arg(&hello)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        // The same refs pulled more than once at the same time.
        children.push(
            wasmoci(&home)
                .args(["pull", "-q", &remotes[n % 3]])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_sound(&home, "after 16 writers at once");
    for n in 0..8 {
        assert!(tagged(&home, &format!("b:{n}")), "b:{n}");
    }
    for remote in &remotes {
        assert!(tagged(&home, remote), "{remote}");
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("store/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 11);
    if crate::support::require_tool("skopeo") {
        for n in 0..8 {
            crate::support::skopeo(&[
                "inspect",
                "--raw",
                &format!("oci:{}:b:{n}", home.join("store").display()),
            ]);
        }
    }
}

#[test]
fn a_registry_killed_mid_push_and_restarted_takes_the_push_again() {
    let Some(mut registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let remote = format!("{}/crash/big:1", registry.addr);
    let skopeo = crate::support::require_tool("skopeo");
    let manifest_of = |reference: &str| {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        out.status.success().then_some(out.stdout)
    };
    // Killed while a 64 MiB layer goes up (each try a new layer; bounded tries).
    let mut landed = false;
    for i in 0..5u8 {
        let mut module = big_module(64 << 20);
        *module.last_mut().unwrap() = i;
        let file = tmp.path().join(format!("big-{i}.wasm"));
        std::fs::write(&file, module).unwrap();
        ok(wasmoci(&home)
            .args(["build", "-q", "--module", "--no-metadata", "-t", "big:1"])
            .arg(&file));
        let push = wasmoci(&home)
            .args(["push", "-q", "big:1", &remote])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay(u64::from(i), 150) + Duration::from_millis(30));
        registry.kill();
        let out = push.wait_with_output().unwrap();
        registry.restart();
        if !out.status.success() {
            // The tag never names a manifest whose blobs are missing: it is not there
            // (the first try), or it is an earlier push, whole (skopeo copies it).
            if skopeo {
                if i == 0 {
                    assert!(manifest_of(&remote).is_none(), "a tag after a failed push");
                } else {
                    crate::support::skopeo(&[
                        "copy",
                        "--quiet",
                        "--src-tls-verify=false",
                        &format!("docker://{remote}"),
                        &format!("oci:{}:before", tmp.path().join("before").display()),
                    ]);
                }
            }
            landed = true;
            break;
        }
    }
    assert!(landed, "no kill landed during a push");
    // The push again, on the restarted registry: it completes, and the tag is whole.
    let pushed = ok(wasmoci(&home).args(["push", "big:1", &remote, "--json"]));
    let pushed: serde_json::Value = serde_json::from_slice(&pushed.stdout).unwrap();
    if skopeo {
        let manifest = manifest_of(&remote).expect("the tag after the push");
        assert_eq!(
            wasmoci_testdata::sha256(&manifest),
            pushed["digest"].as_str().unwrap()
        );
        let copied = tmp.path().join("copied");
        crate::support::skopeo(&[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{remote}"),
            &format!("oci:{}:x", copied.display()),
        ]);
    }
}

/// The files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_full_disk_never_leaves_a_partial_compile_cache_entry() {
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let home = disk.0.path().join("home");
    let hello = crate::support::fixtures().join("hello.wasm");
    let run = || wasmoci(&home).arg("run").arg(&hello).output().unwrap();
    let filler = disk.0.path().join("filler");
    // Space for nothing, for the entry but not its tag, and a little more: whatever the
    // disk takes, the run goes on and the cache holds a whole entry or none.
    for free in [8u64 << 10, 20 << 10, 24 << 10, 28 << 10, 32 << 10] {
        let cache = home.join("cache/compiled");
        let _ = std::fs::remove_dir_all(&cache);
        let _ = std::fs::remove_file(&filler);
        std::fs::create_dir_all(&cache).unwrap();
        let stat = nix::sys::statvfs::statvfs(disk.0.path()).unwrap();
        let avail = stat.blocks_available() as u64 * stat.fragment_size() as u64;
        let fill = std::process::Command::new("fallocate")
            .args(["-l", &avail.saturating_sub(free).to_string()])
            .arg(&filler)
            .status()
            .unwrap();
        assert!(fill.success());
        let out = run();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{free} bytes free: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from wasi:cli/run\n"
        );
        let files = files_under(&cache);
        let entries: Vec<_> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        assert!(
            files.iter().all(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.ends_with(".cwasm") || name.ends_with(".cwasm.sha256")
            }),
            "{free} bytes free: a temporary file is left: {files:?}"
        );
        if entries.is_empty() {
            assert!(
                stderr.contains("without caching its compiled form")
                    && stderr.contains("no space left on device"),
                "{free} bytes free: {stderr}"
            );
        }
        for entry in entries {
            let tag = std::path::PathBuf::from(format!("{}.sha256", entry.display()));
            assert!(tag.exists(), "{free} bytes free: an entry without its tag");
        }
    }
    // With room again: compiled, stored whole, then found.
    std::fs::remove_file(&filler).unwrap();
    assert!(run().status.success());
    let out = wasmoci(&home)
        .args(["compile", "--json"])
        .arg(&hello)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "already-compiled", "{report}");
}

/// Kills `child` after `after`: whether it was still running then.
fn killed_after(mut child: Child, after: Duration) -> bool {
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

#[test]
fn dependency_builds_killed_midway_leave_a_sound_store_and_lock() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let publisher = tmp.path().join("publisher");
    let module = tmp.path().join("big.wasm");
    std::fs::write(&module, big_module(24 << 20)).unwrap();
    let remote = format!("{}/acme/big:1.0.0", registry.addr);
    ok(wasmoci(&publisher)
        .args([
            "build",
            "-q",
            "--module",
            "--no-metadata",
            "-t",
            "big:1.0.0",
        ])
        .arg(&module));
    ok(wasmoci(&publisher).args(["push", "-q", "big:1.0.0", &remote]));
    let project = tmp.path().join("app");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("wasmoci.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"1.0.0\"\n[build]\nwasm = \"app.wasm\"\n[dependencies]\n\"acme:big\" = \"^1\"\n[registries]\nacme = \"{}/\"\n",
            registry.addr
        ),
    )
    .unwrap();
    let home = tmp.path().join("home");
    ok(wasmoci(&home)
        .args(["dependency", "update", "-q", "--project"])
        .arg(&project));
    let lock = std::fs::read(project.join("wasmoci.lock")).unwrap();
    let build = || {
        let mut cmd = wasmoci(&home);
        cmd.args(["dependency", "build", "--project"])
            .arg(&project)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mut interrupted = 0;
    for i in 0..KILLS {
        // From an empty store each time, so that every build downloads.
        let _ = std::fs::remove_dir_all(home.join("store"));
        if killed_after(build().spawn().unwrap(), delay(i + 2 * KILLS, 300)) {
            interrupted += 1;
        }
        if home.join("store").exists() {
            assert_sound(&home, &format!("dependency build killed, iteration {i}"));
        }
        assert_eq!(
            std::fs::read(project.join("wasmoci.lock")).unwrap(),
            lock,
            "the lock changed (iteration {i})"
        );
        // The next build, from what the killed one left, succeeds.
        ok(&mut build());
        assert_sound(
            &home,
            &format!("dependency build after a kill, iteration {i}"),
        );
    }
    assert!(
        interrupted > 0,
        "no kill landed before a dependency build finished"
    );
}
