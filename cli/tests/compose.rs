//! Composition of components from a real third-party producer: componentize-py builds a
//! Python plug and a Python middle (a socket for the logger) from WIT; they compose with
//! the WAT fixtures, and the results run (each compiled once).

use wasmoci_testdata::python::python_components;

use crate::support::{fixtures, ok, wasmoci};

#[test]
fn python_components_compose_and_run() {
    let work = tempfile::tempdir().unwrap();
    let Some((plug, middle)) =
        python_components(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("python"))
    else {
        return;
    };
    let home = work.path().join("home");
    let socket = fixtures().join("greet-socket.wasm");
    // The Python plug into the WAT socket.
    let composed = work.path().join("py.wasm");
    ok(wasmoci(&home)
        .arg("compose")
        .arg(&socket)
        .arg("--plug")
        .arg(&plug)
        .arg("-o")
        .arg(&composed));
    let ran = ok(wasmoci(&home).arg("run").arg(&composed));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "greeting: 27\n");
    // A chain through the Python middle: socket → Python → WAT logger.
    let chain = work.path().join("chain.wasm");
    let graph = ok(wasmoci(&home)
        .arg("compose")
        .arg(&socket)
        .arg("--plug")
        .arg(&middle)
        .arg("--plug")
        .arg(fixtures().join("logger.wasm"))
        .arg("-o")
        .arg(&chain)
        .args(["--graph", "json"]));
    let wiring: serde_json::Value = serde_json::from_slice(&graph.stdout).unwrap();
    let wires: Vec<(&str, &str)> = wiring["wires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["import"].as_str().unwrap(), w["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        wires,
        [
            ("acme:greet/greeter@1.0.0", "i0"),
            ("acme:log/logger@1.0.0", "i1")
        ]
    );
    let ran = ok(wasmoci(&home).arg("run").arg(&chain));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "greeting: 1020\n");
}

/// `wasmoci serve` of a composed HTTP handler: `http-greet` (which imports the greeter)
/// with `greet-plug` plugged in answers with what the plug computed.
#[test]
fn a_composed_http_component_serves() {
    use std::io::{BufRead, BufReader};
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let composed = work.path().join("http.wasm");
    ok(wasmoci(&home)
        .arg("compose")
        .arg(fixtures().join("http-greet.wasm"))
        .arg("--plug")
        .arg(fixtures().join("greet-plug.wasm"))
        .arg("-o")
        .arg(&composed));
    let mut server = wasmoci(&home)
        .arg("serve")
        .arg(&composed)
        .args(["--listen", "127.0.0.1:0", "--timeout", "5s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut url = String::new();
    stdout.read_line(&mut url).unwrap();
    let addr = url.trim().trim_start_matches("http://").to_owned();
    let response = crate::serve::get(&addr);
    let (_, stderr) = crate::serve::stop(server, stdout);
    assert!(
        response.starts_with("HTTP/1.1 200 OK"),
        "{response}\n{stderr}"
    );
    assert!(
        response.contains("greeting: ") && response.contains("42\n"),
        "{response}"
    );
}
