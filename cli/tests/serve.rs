//! `wasmoci serve` as a process: answers on the address it prints, stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::support::{fixtures, wasmoci};

pub(crate) fn get(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `serve http-hello.wasm` on an ephemeral port: the process, its stdout after the first
/// line, and that line.
fn serve_http_hello(
    home: &std::path::Path,
    extra: &[&str],
) -> (Child, BufReader<ChildStdout>, String) {
    let mut server = wasmoci(home)
        .arg("serve")
        .arg(fixtures().join("http-hello.wasm"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--timeout",
            "5s",
            "--memory",
            "64MiB",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    (server, stdout, first)
}

/// Sends SIGTERM and waits: the output (stdout after the first line) and stderr.
pub(crate) fn stop(server: Child, mut stdout: BufReader<ChildStdout>) -> (String, String) {
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = server.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    (rest, stderr)
}

#[test]
fn serve_answers_on_the_printed_address_and_stops_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let (server, stdout, url) = serve_http_hello(home.path(), &[]);
    let addr = url
        .trim()
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("no URL on stdout: {url:?}"))
        .to_owned();
    for _ in 0..3 {
        let response = get(&addr);
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.contains("hello from wasi:http"), "{response}");
    }
    let (_, stderr) = stop(server, stdout);
    assert!(
        stderr.contains("stopped: 3 requests answered, 0 failed"),
        "{stderr}"
    );
}

#[test]
fn serve_json_prints_a_line_when_listening_and_one_when_stopped() {
    let home = tempfile::tempdir().unwrap();
    let (server, stdout, first) = serve_http_hello(home.path(), &["--json"]);
    let listening: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(listening["event"], "listening", "{first}");
    assert_eq!(listening["artifact"], "http-hello.wasm", "{first}");
    let url = listening["url"].as_str().unwrap();
    let response = get(url.strip_prefix("http://").unwrap());
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let (rest, _) = stop(server, stdout);
    let stopped: serde_json::Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(
        stopped,
        serde_json::json!({"event": "stopped", "requests": 1, "failures": 0, "refused": 0})
    );
}

#[test]
fn serve_refuses_what_is_not_an_http_handler_before_listening() {
    let home = tempfile::tempdir().unwrap();
    let output = wasmoci(home.path())
        .arg("serve")
        .arg(fixtures().join("hello.wasm"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "it printed an address");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`hello.wasm` is a command (`wasi:cli/run`): use `wasmoci run`"),
        "{stderr}"
    );
}

/// `serve FIXTURE ARGS` on an ephemeral port: the process and its address.
pub(crate) fn serve_fixture(
    home: &std::path::Path,
    fixture: &str,
    args: &[&str],
) -> (Child, String) {
    let mut server = wasmoci(home)
        .arg("serve")
        .arg(fixtures().join(fixture))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first.trim().strip_prefix("http://").unwrap().to_owned();
    (server, addr)
}

#[test]
fn guests_whose_clients_hung_up_after_the_head_do_not_keep_the_shared_memory() {
    // Each guest sends its head, then waits an hour; 256 KiB holds four of them.
    let home = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve_fixture(
        home.path(),
        "http-stall.wasm",
        &["--timeout", "1s", "--total-memory", "256KiB"],
    );
    for _ in 0..8 {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 15];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(String::from_utf8_lossy(&head), "HTTP/1.1 200 OK");
        drop(stream);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn serve_refuses_requests_past_its_queue_with_503() {
    let home = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve_fixture(
        home.path(),
        "http-slow.wasm",
        &["--max-concurrent", "1", "--max-queued", "0"],
    );
    let slow = {
        let addr = addr.clone();
        std::thread::spawn(move || get(&addr))
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let refused = get(&addr);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1\r\n"), "{refused}");
    let answered = slow.join().unwrap();
    assert!(answered.starts_with("HTTP/1.1 200 OK"), "{answered}");
    server.kill().unwrap();
    server.wait().unwrap();
}
