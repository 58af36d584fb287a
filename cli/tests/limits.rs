//! `--memory` against every kind of memory, measured as the process's peak resident set:
//! a guest stays within its limit plus the overhead of running a trivial guest (the
//! engine, the compiled code, the runtime) and [`SLACK`].

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{fixtures, wasmoci};

/// What a guest may take beyond `--memory` and a trivial guest's peak: host resources
/// (at most 1024 of them, 32 KiB of headers each), stacks, allocator slack.
const SLACK: u64 = 24 << 20;

/// Runs `wasmoci ARGS` under `/usr/bin/time`: its exit code and peak RSS in bytes.
fn peak(home: &Path, args: &[&str]) -> (i32, u64, String) {
    let probe = wasmoci(home);
    let report = home.join("time.txt");
    let mut time = Command::new("/usr/bin/time");
    time.arg("-o").arg(&report).args(["-f", "%M"]);
    time.arg(probe.get_program()).args(args);
    for (key, value) in probe.get_envs() {
        match value {
            Some(value) => time.env(key, value),
            None => time.env_remove(key),
        };
    }
    let out = time.stdin(Stdio::null()).output().expect("/usr/bin/time");
    let text = std::fs::read_to_string(&report).unwrap();
    let kib: u64 = text.lines().last().unwrap().trim().parse().unwrap();
    (
        out.status.code().unwrap_or(-1),
        kib << 10,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn within(home: &Path, fixture: &str, memory: &str, limit: u64) {
    let hello = fixtures().join("hello-p1.wasm");
    let (code, baseline, _) = peak(home, &["run", hello.to_str().unwrap()]);
    assert_eq!(code, 0);
    let wasm = fixtures().join(fixture);
    let (code, rss, stderr) = peak(home, &["run", wasm.to_str().unwrap(), "--memory", memory]);
    assert_eq!(code, 137, "{stderr}");
    assert!(
        stderr.contains("the guest was stopped: memory limit exceeded"),
        "{stderr}"
    );
    assert!(
        rss <= baseline + limit + SLACK,
        "`{fixture}` under `--memory {memory}` peaked at {} MiB (a trivial guest: {} MiB)",
        rss >> 20,
        baseline >> 20
    );
}

#[test]
fn sixteen_memories_stay_within_one_memory_limit() {
    let home = tempfile::tempdir().unwrap();
    within(home.path(), "multimem.wasm", "32MiB", 32 << 20);
}

#[test]
fn tables_stay_within_the_memory_limit() {
    let home = tempfile::tempdir().unwrap();
    within(home.path(), "tables.wasm", "1MiB", 1 << 20);
}

fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

#[test]
fn host_resources_of_a_request_stay_bounded() {
    use std::io::{BufRead, BufReader, Read, Write};
    let home = tempfile::tempdir().unwrap();
    let mut server = wasmoci(home.path())
        .arg("serve")
        .arg(fixtures().join("http-handles.wasm"))
        .args(["--listen", "127.0.0.1:0", "--memory", "1MiB"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let addr = url.trim().strip_prefix("http://").unwrap().to_owned();
    let before = vm_hwm(server.id());
    for _ in 0..3 {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    }
    let after = vm_hwm(server.id());
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        after <= before + SLACK,
        "a guest making pollables took the server from {} to {} MiB",
        before >> 20,
        after >> 20
    );
}
