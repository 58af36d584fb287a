//! `wasmoci serve` as a process: answers on the address it prints, stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::support::{fixtures, wasmoci};

fn get(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_answers_on_the_printed_address_and_stops_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let mut server = wasmoci(home.path())
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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut url = String::new();
    stdout.read_line(&mut url).unwrap();
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
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = server.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("stopped: 3 requests answered, 0 failed"),
        "{stderr}"
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
