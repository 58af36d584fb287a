//! `wasmoci serve` under load and under slowloris, as a process on loopback: every
//! request answered (200) or refused (503), memory held to `--total-memory`, and idle
//! connections that never send a request cannot keep new clients out. The figures are
//! `benches/serve_load.py`'s; these tests assert the behaviour, not the timings.

use std::process::Child;
use std::time::{Duration, Instant};

use wasmoci_testdata::load::{load, memory};

use crate::serve::{get, serve_fixture};

/// `serve http-hello.wasm` on an ephemeral port with `args`: the process and its address.
fn serve(home: &std::path::Path, args: &[&str]) -> (Child, String) {
    serve_fixture(home, "http-hello.wasm", args)
}

/// How many connections and requests each: 10,000 requests at 1,000 at once.
const CONNECTIONS: usize = 1000;
const REQUESTS_EACH: usize = 10;
const TOTAL_MEMORY: u64 = 64 << 20;

#[test]
fn serve_answers_or_refuses_ten_thousand_requests_at_a_thousand_connections() {
    let home = tempfile::tempdir().unwrap();
    // Eight guests at once and 64 waiting: most of a thousand clients at once are refused.
    let (mut server, addr) = serve(
        home.path(),
        &[
            "--total-memory",
            "64MiB",
            "--timeout",
            "30s",
            "--max-concurrent",
            "8",
            "--max-queued",
            "64",
        ],
    );
    let pid = server.id();
    assert!(get(&addr).starts_with("HTTP/1.1 200 OK"));
    let (idle, _) = memory(pid);
    let statuses = load(&addr, CONNECTIONS, REQUESTS_EACH, Duration::from_secs(120));
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count();
    let (ok, busy) = (count(200), count(503));
    assert_eq!(
        ok + busy,
        CONNECTIONS * REQUESTS_EACH,
        "every request is answered 200 or 503: {ok} answered, {busy} refused, {} otherwise \
         ({:?}…)",
        statuses.len() - ok - busy,
        statuses
            .iter()
            .filter(|&&s| s != 200 && s != 503)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(ok > 0 && busy > 0, "{ok} answered and {busy} refused");
    assert!(server.try_wait().unwrap().is_none(), "the server died");
    // The guests' linear memory is held to --total-memory: the peak over the idle
    // server is that and the connections' buffers, not a guest per connection.
    let (_, peak) = memory(pid);
    assert!(
        peak <= idle + TOTAL_MEMORY + (64 << 20),
        "peak RSS {} MiB over an idle {} MiB with --total-memory 64MiB",
        peak >> 20,
        idle >> 20
    );
    // Still serving afterwards.
    assert!(get(&addr).starts_with("HTTP/1.1 200 OK"));
    let _ = server.kill();
    let _ = server.wait();
}

/// Opens `n` connections to `addr` that never send anything.
fn idle_connections(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect()
}

/// A GET on a fresh connection, bounded: how long it took to be answered.
fn answered_within(addr: &str, limit: Duration) -> Option<Duration> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(limit)).ok()?;
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .starts_with("HTTP/1.1 200 OK")
        .then(|| started.elapsed())
}

#[test]
fn five_hundred_idle_connections_do_not_keep_new_clients_out() {
    let home = tempfile::tempdir().unwrap();
    // Under the connection cap (1024 by default): new clients are served beside them.
    let (mut server, addr) = serve(home.path(), &[]);
    let idle = idle_connections(&addr, 500);
    let took = answered_within(&addr, Duration::from_secs(5));
    assert!(
        took.is_some(),
        "a new client was not served beside 500 idle connections"
    );
    drop(idle);
    let _ = server.kill();
    let _ = server.wait();

    // Over the cap: the header timeout closes the idle connections that hold it, and the
    // new client is served once it has.
    let (mut server, addr) = serve(
        home.path(),
        &["--max-connections", "100", "--header-timeout", "1s"],
    );
    let mut idle = idle_connections(&addr, 500);
    let took = answered_within(&addr, Duration::from_secs(15))
        .expect("a new client was not served past 500 idle connections and a cap of 100");
    assert!(
        took >= Duration::from_millis(500),
        "served in {took:?}: the cap of 100 did not hold"
    );
    // The idle connections were closed by the server (EOF), not left open.
    let closed = idle
        .iter_mut()
        .take(100)
        .filter_map(|s| {
            use std::io::Read;
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            match s.read_to_end(&mut Vec::new()) {
                // EOF (after a 408, or nothing).
                Ok(_) => Some(()),
                Err(e) => (e.kind() == std::io::ErrorKind::ConnectionReset).then_some(()),
            }
        })
        .count();
    assert_eq!(
        closed, 100,
        "idle connections were left open past the header timeout"
    );
    let _ = server.kill();
    let _ = server.wait();
}
