//! `serve` never leaks a guest, and takes only so many connections and requests.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmoci_runtime::limits::{Limits, MemoryBudget};
use wasmoci_runtime::serve::{Admission, ServeOptions};

use super::{get, start_server};

/// Sends a request and reads until the response head (and what came with it).
async fn head(addr: std::net::SocketAddr) -> (tokio::net::TcpStream, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the head");
        seen.extend_from_slice(&buf[..n]);
    }
    (stream, String::from_utf8_lossy(&seen).into_owned())
}

/// Waits up to 2 s for `budget` to be all given back.
async fn released(budget: &MemoryBudget) -> bool {
    let started = Instant::now();
    while budget.used() != 0 && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    budget.used() == 0
}

fn budgeted(budget: &std::sync::Arc<MemoryBudget>, timeout: Option<Duration>) -> ServeOptions {
    ServeOptions {
        limits: Limits {
            total_memory: Some(budget.clone()),
            timeout,
            ..Limits::default()
        },
        ..ServeOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_is_stopped_when_its_client_hangs_up_after_the_head() {
    // The guest sends its head, then waits an hour: four of them used to hold the whole
    // budget for good.
    let budget = MemoryBudget::new(256 << 10);
    let options = budgeted(&budget, Some(Duration::from_secs(30)));
    let (addr, stop, server) = start_server("http-stall.wasm", options).await;
    for _ in 0..6 {
        let (stream, head) = head(addr).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        drop(stream);
        assert!(released(&budget).await, "the guest still holds memory");
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_time_limit_holds_after_the_head_was_sent() {
    let budget = MemoryBudget::new(256 << 10);
    let options = budgeted(&budget, Some(Duration::from_millis(300)));
    let (addr, stop, server) = start_server("http-stall.wasm", options).await;
    let started = Instant::now();
    let (mut stream, head) = head(addr).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let mut rest = Vec::new();
    // The connection ends without the body's last chunk.
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the guest still runs after its time limit");
    assert!(started.elapsed() < Duration::from_secs(5));
    let body = head + &String::from_utf8_lossy(&rest);
    assert!(body.contains("the head, then..."), "{body}");
    assert!(
        !body.ends_with("0\r\n\r\n"),
        "the body looks complete: {body}"
    );
    assert!(released(&budget).await, "the guest still holds memory");
    // (The failure is counted once the guest's task has ended.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.requests, report.failures), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_never_answers_is_stopped_when_its_client_hangs_up() {
    let budget = MemoryBudget::new(256 << 10);
    let options = budgeted(&budget, None);
    let (addr, stop, server) = start_server("http-never.wasm", options).await;
    for _ in 0..6 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_ne!(budget.used(), 0, "the guest is not running");
        drop(stream);
        assert!(released(&budget).await, "the guest still holds memory");
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_past_the_queue_are_refused_with_503() {
    let options = ServeOptions {
        admission: Admission {
            max_concurrent: 1,
            max_queued: 1,
            ..Admission::default()
        },
        ..ServeOptions::default()
    };
    // The guest takes 300 ms: one runs, one waits, the third is refused at once.
    let (addr, stop, server) = start_server("http-slow.wasm", options).await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..3 {
        requests.spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut statuses = Vec::new();
    while let Some(response) = requests.join_next().await {
        let response = response.unwrap();
        if response.starts_with("HTTP/1.1 503") {
            assert!(response.contains("retry-after: 1\r\n"), "{response}");
        }
        statuses.push(response[9..12].to_owned());
    }
    statuses.sort();
    assert_eq!(statuses, ["200", "200", "503"]);
    stop.send(()).unwrap();
    let report = server.await.unwrap().unwrap();
    assert_eq!(
        (report.requests, report.failures, report.refused),
        (2, 0, 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_shared_budget_answers_503() {
    // Not even one page fits: the server is full, the guest is not broken.
    let budget = MemoryBudget::new(1024);
    let (addr, stop, server) = start_server("http-hello.wasm", budgeted(&budget, None)).await;
    let response = get(addr).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("retry-after: 1\r\n"), "{response}");
    stop.send(()).unwrap();
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.failures, report.refused), (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_slow_to_send_its_headers_is_cut_off() {
    let options = ServeOptions {
        admission: Admission {
            header_timeout: Duration::from_millis(200),
            ..Admission::default()
        },
        ..ServeOptions::default()
    };
    let (addr, stop, server) = start_server("http-hello.wasm", options).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: loc")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection is still open");
    assert!(started.elapsed() < Duration::from_secs(2));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_instance_pool_answers_503() {
    use wasmoci_runtime::engine::{EngineSettings, build_engine};
    use wasmoci_runtime::program::Program;
    use wasmoci_runtime::serve::{prepare, serve};
    // A pool of four core instances (one request takes more than two: the module and
    // the shims wit-component adds), and two requests at once.
    let engine = build_engine(&EngineSettings {
        pooling: Some(true),
        pool_instances: 4,
        max_memory: 1 << 20,
        ..EngineSettings::default()
    })
    .unwrap();
    let wasm = std::fs::read(super::fixtures().join("http-slow.wasm")).unwrap();
    let Program::Component(component) = wasmoci_runtime::cache::compile(
        &engine,
        "http-slow.wasm",
        wasmoci_spec::WasmKind::Component,
        &wasm,
    )
    .unwrap() else {
        panic!("a component");
    };
    let handler = prepare(&engine, &component, "http-slow.wasm").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        handler,
        "slow",
        listener,
        ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let first = tokio::spawn(get(addr));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = get(addr).await;
    assert!(second.starts_with("HTTP/1.1 503"), "{second}");
    assert!(second.contains("retry-after: 1\r\n"), "{second}");
    let first = first.await.unwrap();
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
    stop.send(()).unwrap();
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.requests, report.refused), (1, 1));
}
