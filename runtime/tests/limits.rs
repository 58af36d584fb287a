//! Limits against every kind of memory: all memories of an instance together, tables,
//! the number of memories, host resources.

use std::sync::OnceLock;

use wasmoci_runtime::cache::compile;
use wasmoci_runtime::engine::{EngineSettings, WasmEngine, build_engine};
use wasmoci_runtime::exit::{Exit, StopHandle};
use wasmoci_runtime::host::Stdio;
use wasmoci_runtime::limits::{Limits, MemoryBudget};
use wasmoci_runtime::run::Guest;
use wasmoci_runtime::sandbox::Sandbox;
use wasmoci_runtime::serve::ServeOptions;
use wasmoci_spec::WasmKind;

use super::{fixtures, get, start_server};

/// An engine without the pool (as `wasmoci run` has), whose instances may have several
/// memories and tables.
fn on_demand() -> &'static WasmEngine {
    static ENGINE: OnceLock<WasmEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        build_engine(&EngineSettings {
            pooling: Some(false),
            ..EngineSettings::default()
        })
        .expect("an engine")
    })
}

async fn run_on_demand(name: &str, limits: Limits) -> wasmoci_runtime::Result<Exit> {
    let wasm = std::fs::read(fixtures().join(name)).unwrap();
    let program = compile(on_demand(), name, WasmKind::detect(&wasm).unwrap(), &wasm).unwrap();
    let sandbox = Sandbox::default();
    let guest = Guest {
        engine: on_demand(),
        program: &program,
        name,
        sandbox: &sandbox,
        limits: &limits,
    };
    guest.run(Stdio::default(), &StopHandle::default()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn all_memories_of_an_instance_count_against_its_limit() {
    // 16 memories of 32 MiB each: the second one passes a 32 MiB limit.
    let limits = Limits {
        memory: Some(32 << 20),
        ..Limits::default()
    };
    let exit = run_on_demand("multimem.wasm", limits).await.unwrap();
    let Exit::MemoryLimit(e) = &exit else {
        panic!("expected the memory limit, got {:?}", exit);
    };
    assert_eq!(
        (e.limit, e.requested, e.shared),
        (32 << 20, 64 << 20, false)
    );

    let budget = MemoryBudget::new(32 << 20);
    let limits = Limits {
        total_memory: Some(budget.clone()),
        ..Limits::default()
    };
    let exit = run_on_demand("multimem.wasm", limits).await.unwrap();
    assert!(
        matches!(&exit, Exit::MemoryLimit(e) if e.shared),
        "{:?}",
        exit
    );
    assert_eq!(budget.used(), 0, "the budget was not given back");
}

#[tokio::test(flavor = "multi_thread")]
async fn table_elements_count_against_the_memory_limit() {
    let limits = Limits {
        memory: Some(1 << 20),
        ..Limits::default()
    };
    let exit = run_on_demand("tables.wasm", limits).await.unwrap();
    let Exit::MemoryLimit(e) = &exit else {
        panic!("expected the memory limit, got {:?}", exit);
    };
    // The first table asks for 10,000,000 elements of 8 bytes.
    assert_eq!((e.limit, e.requested), (1 << 20, 80_000_000));

    let budget = MemoryBudget::new(100 << 20);
    let limits = Limits {
        total_memory: Some(budget.clone()),
        ..Limits::default()
    };
    let exit = run_on_demand("tables.wasm", limits).await.unwrap();
    assert!(
        matches!(&exit, Exit::MemoryLimit(e) if e.shared && e.requested == 160_000_000),
        "{:?}",
        exit
    );
    assert_eq!(budget.used(), 0, "the budget was not given back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_may_create_only_so_many_memories() {
    // A component instantiating a core module with one memory 101 times.
    let err = run_on_demand("many-memories.wasm", Limits::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("failed to instantiate `many-memories.wasm`"),
        "{err}"
    );
    assert!(err.contains("memory count"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_resources_of_a_request_are_bounded() {
    // The guest makes pollables without end: the host refuses the 1025th, the request
    // fails and the next one is served the same.
    let (addr, stop, server) = start_server("http-handles.wasm", ServeOptions::default()).await;
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let response = get(addr).await;
        assert!(response.starts_with("HTTP/1.1 500"), "{response}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the guest made pollables for {:?}",
            started.elapsed()
        );
    }
    stop.send(()).unwrap();
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.requests, report.failures), (0, 2));
}
