//! The engine on the testdata components, with real wasmtime: no containerd, no CLI.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmoci_runtime::cache::{CacheOutcome, CompileCache, compile};
use wasmoci_runtime::engine::{EngineSettings, WasmEngine, build_engine};
use wasmoci_runtime::exit::{Exit, StopHandle};
use wasmoci_runtime::host::{Output, Stdio};
use wasmoci_runtime::limits::{Limits, MemoryBudget};
use wasmoci_runtime::program::{EntryPoint, Program};
use wasmoci_runtime::run::Guest;
use wasmoci_runtime::sandbox::{NetworkGrant, Sandbox};
use wasmoci_runtime::serve::{ServeOptions, prepare, serve};
use wasmoci_spec::{Digest, WasmKind};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

mod cache;
mod features;
mod limits;
mod serving;
mod special;

pub(crate) fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        wasmoci_testdata::build_fixtures(&dir).to_owned()
    })
}

fn engine() -> &'static WasmEngine {
    static ENGINE: OnceLock<WasmEngine> = OnceLock::new();
    ENGINE.get_or_init(|| build_engine(&EngineSettings::default()).expect("an engine"))
}

fn program(name: &str) -> Program {
    let wasm = std::fs::read(fixtures().join(name)).unwrap();
    compile(engine(), name, WasmKind::detect(&wasm).unwrap(), &wasm).unwrap()
}

/// `program` as a command on the tests' engine.
fn guest<'a>(
    program: &'a Program,
    name: &'a str,
    sandbox: &'a Sandbox,
    limits: &'a Limits,
) -> Guest<'a> {
    Guest {
        engine: engine(),
        program,
        name,
        sandbox,
        limits,
    }
}

struct Ran {
    exit: Exit,
    stdout: String,
}

async fn run(name: &str, sandbox: Sandbox, limits: Limits) -> Ran {
    let stdout = MemoryOutputPipe::new(1 << 20);
    let stdio = Stdio {
        stdout: Output::Memory(stdout.clone()),
        ..Stdio::default()
    };
    let exit = guest(&program(name), name, &sandbox, &limits)
        .run(stdio, &StopHandle::default())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    Ran {
        exit,
        stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
    }
}

fn args(list: &[&str]) -> Sandbox {
    Sandbox {
        args: list.iter().map(|s| s.to_string()).collect(),
        ..Sandbox::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_print_and_exit_zero() {
    for (name, expected) in [
        ("hello.wasm", "hello from wasi:cli/run\n"),
        ("hello-p1.wasm", "hello from wasip1\n"),
        ("hello-p1.component.wasm", "hello from wasip1\n"),
    ] {
        let ran = run(name, args(&[name]), Limits::default()).await;
        assert_eq!(
            (ran.exit, ran.stdout.as_str()),
            (Exit::Code(0), expected),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chosen_exit_code_propagates() {
    let ran = run("exit3.wasm", Sandbox::default(), Limits::default()).await;
    assert_eq!(ran.exit, Exit::Code(3));
    assert_eq!(ran.exit.status(), 3);
    // Adapted, `proc_exit(3)` becomes `wasi:cli/exit.exit(err)`: WASI 0.2 carries only
    // success or failure, so the component exits 1.
    let ran = run(
        "exit3.component.wasm",
        Sandbox::default(),
        Limits::default(),
    )
    .await;
    assert_eq!(ran.exit, Exit::Code(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_is_reported_with_its_backtrace() {
    let ran = run("trap.wasm", Sandbox::default(), Limits::default()).await;
    let Exit::Trap { message, backtrace } = &ran.exit else {
        panic!("expected a trap, got {:?}", ran.exit);
    };
    assert!(message.contains("unreachable"), "{message}");
    let backtrace = backtrace.as_deref().expect("a backtrace");
    assert!(
        backtrace.contains("explode") && backtrace.contains("middle"),
        "{backtrace}"
    );
    assert_eq!(ran.exit.status(), 134);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_loop_is_stopped_by_the_deadline() {
    let limits = Limits {
        timeout: Some(Duration::from_millis(200)),
        ..Limits::default()
    };
    let ran = run("loop.wasm", Sandbox::default(), limits).await;
    assert_eq!(ran.exit, Exit::Timeout(Duration::from_millis(200)));
    assert_eq!(ran.exit.status(), 124);
}

/// A CPU limit below one core: the guest's wasm runs in a duty cycle. This asserts only
/// the upper bound (a busy machine can only lower the CPU the guest gets).
#[test]
fn a_cpu_limit_throttles_a_busy_guest() {
    use nix::time::{ClockId, clock_gettime};
    let thread_cpu = || {
        let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
        Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wall = Duration::from_secs(1);
    let limits = Limits {
        timeout: Some(wall),
        cpu: Some(0.1),
        ..Limits::default()
    };
    // Compiled first, so that only the guest's run is measured.
    let looping = program("loop.wasm");
    let before = thread_cpu();
    let exit = runtime
        .block_on(
            guest(&looping, "loop.wasm", &Sandbox::default(), &limits)
                .run(Stdio::default(), &StopHandle::default()),
        )
        .unwrap();
    let used = thread_cpu() - before;
    assert_eq!(exit, Exit::Timeout(wall));
    assert!(
        used < Duration::from_millis(450),
        "a guest limited to 0.1 core used {used:?} of CPU in {wall:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_is_stopped_by_the_limit() {
    let limits = Limits {
        memory: Some(16 << 20),
        ..Limits::default()
    };
    let ran = run("membomb.wasm", Sandbox::default(), limits).await;
    let Exit::MemoryLimit(e) = &ran.exit else {
        panic!("expected the memory limit, got {:?}", ran.exit);
    };
    assert_eq!(e.limit, 16 << 20);
    assert!(!e.shared);

    // The shared budget stops it too, and is given back when the store is gone.
    let budget = MemoryBudget::new(8 << 20);
    let limits = Limits {
        total_memory: Some(budget.clone()),
        ..Limits::default()
    };
    let ran = run("membomb.wasm", Sandbox::default(), limits).await;
    assert!(
        matches!(&ran.exit, Exit::MemoryLimit(e) if e.shared),
        "{:?}",
        ran.exit
    );
    assert_eq!(budget.used(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_file_is_readable_only_through_a_granted_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "secret from the host\n").unwrap();
    let denied = run("cat.wasm", Sandbox::default(), Limits::default()).await;
    assert_eq!((denied.exit, denied.stdout.as_str()), (Exit::Code(2), ""));
    let sandbox = Sandbox {
        dirs: vec![
            format!("{}::/data:ro", dir.path().display())
                .parse()
                .unwrap(),
        ],
        ..Sandbox::default()
    };
    let allowed = run("cat.wasm", sandbox, Limits::default()).await;
    assert_eq!(
        (allowed.exit, allowed.stdout.as_str()),
        (Exit::Code(0), "secret from the host\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outbound_connection_needs_a_grant() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let accept = tokio::spawn(async move {
        // Accept what comes (bounded by the test's own connections).
        for _ in 0..2 {
            let _ = listener.accept().await;
        }
    });
    let sandbox = |network| Sandbox {
        args: vec!["connect".into(), port.clone()],
        network,
        ..Sandbox::default()
    };
    let denied = run(
        "connect.wasm",
        sandbox(NetworkGrant::None),
        Limits::default(),
    )
    .await;
    assert_eq!(denied.exit, Exit::Code(1), "connected without a grant");
    let other = NetworkGrant::Allow(vec![("10.0.0.1".parse().unwrap(), None)]);
    let not_listed = run("connect.wasm", sandbox(other), Limits::default()).await;
    assert_eq!(
        not_listed.exit,
        Exit::Code(1),
        "connected to an address not allowed"
    );
    let listed = NetworkGrant::Allow(vec![("127.0.0.1".parse().unwrap(), None)]);
    let allowed = run("connect.wasm", sandbox(listed), Limits::default()).await;
    assert_eq!(allowed.exit, Exit::Code(0), "the allow-list did not allow");
    let all = run(
        "connect.wasm",
        sandbox(NetworkGrant::All),
        Limits::default(),
    )
    .await;
    assert_eq!(all.exit, Exit::Code(0), "`--allow-net` did not allow");
    accept.abort();
}

async fn get(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /hi HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_component_answers_200_concurrent_requests() {
    let Program::Component(component) = program("http-hello.wasm") else {
        panic!("a component");
    };
    assert_eq!(
        Program::Component(component.clone()).entry_points(engine().engine()),
        [EntryPoint::Http]
    );
    let handler = prepare(engine(), &component, "http-hello").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        handler,
        "http-hello",
        listener,
        ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let first = get(addr).await;
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
    assert!(
        first.contains("\r\n\r\n15\r\nhello from wasi:http\n"),
        "{first}"
    );

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..200 {
        requests.spawn(get(addr));
    }
    let mut answered = 0;
    while let Some(response) = requests.join_next().await {
        let response = response.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        answered += 1;
    }
    assert_eq!(answered, 200);
    stop.send(()).unwrap();
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.requests, report.failures), (201, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_is_not_an_http_handler() {
    let Program::Component(component) = program("hello.wasm") else {
        panic!("a component");
    };
    let err = prepare(engine(), &component, "hello")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not export `wasi:http/incoming-handler`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_cache_entry_is_recompiled_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("compiled"));
    let wasm = std::fs::read(fixtures().join("hello.wasm")).unwrap();
    let digest = Digest::of(&wasm);
    let load = || cache.load(engine(), "hello", &wasm, &digest).unwrap();
    assert_eq!(load().1, CacheOutcome::Miss);
    assert_eq!(load().1, CacheOutcome::Hit);

    let entry = cache.entry_path(engine(), &digest);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&entry).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o444, "an entry is read-only");
    // Written into in place (same inode, same size: the tag binds no hash of the bytes,
    // only the file's identity, which a write changes).
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let (program, outcome) = load();
    assert!(
        matches!(&outcome, CacheOutcome::Replaced(r) if r.contains("corrupt")),
        "{outcome:?}"
    );
    let stdout = MemoryOutputPipe::new(1 << 16);
    let stdio = Stdio {
        stdout: Output::Memory(stdout.clone()),
        ..Stdio::default()
    };
    let exit = guest(&program, "hello", &Sandbox::default(), &Limits::default())
        .run(stdio, &StopHandle::default())
        .await
        .unwrap();
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(stdout.contents(), "hello from wasi:cli/run\n".as_bytes());
    assert_eq!(load().1, CacheOutcome::Hit, "the entry was not replaced");

    // Truncated, and with a checksum that does not match: both recompiled.
    let bytes = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &bytes[..bytes.len() / 3]).unwrap();
    assert!(matches!(load().1, CacheOutcome::Replaced(_)));
    let sidecar = entry.with_file_name(format!(
        "{}.sha256",
        entry.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&sidecar, "0".repeat(64)).unwrap();
    assert!(matches!(load().1, CacheOutcome::Replaced(_)));
    assert_eq!(load().1, CacheOutcome::Hit);
}

async fn start_server(
    fixture: &str,
    options: ServeOptions,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<wasmoci_runtime::Result<wasmoci_runtime::serve::ServeReport>>,
) {
    let Program::Component(component) = program(fixture) else {
        panic!("a component");
    };
    let handler = prepare(engine(), &component, fixture).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(handler, "slow", listener, options, async move {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_requests_in_flight_finish() {
    let (addr, stop, server) = start_server("http-slow.wasm", ServeOptions::default()).await;
    let in_flight = tokio::spawn(get(addr));
    // The guest sleeps 300 ms; stop the server while it does.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let response = in_flight.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("hello after a nap"), "{response}");
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.requests, report.failures), (1, 0));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the server still accepts connections after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_request_hits_the_per_request_timeout() {
    let options = ServeOptions {
        limits: Limits {
            timeout: Some(Duration::from_millis(50)),
            ..Limits::default()
        },
        ..ServeOptions::default()
    };
    let (addr, stop, server) = start_server("http-slow.wasm", options).await;
    let response = get(addr).await;
    assert!(response.starts_with("HTTP/1.1 504"), "{response}");
    assert!(response.contains("the request timed out"), "{response}");
    stop.send(()).unwrap();
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.requests, report.failures), (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_time_limit_holds_while_the_guest_waits_in_a_host_call() {
    // The guest sleeps 10 s in `poll_oneoff`, where no epoch check runs.
    let limits = Limits {
        timeout: Some(Duration::from_millis(100)),
        ..Limits::default()
    };
    let ran = run("sleep.wasm", Sandbox::default(), limits).await;
    assert_eq!(ran.exit, Exit::Timeout(Duration::from_millis(100)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_is_stopped_from_outside() {
    let stop = StopHandle::default();
    let killer = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        killer.stop(15);
    });
    // A loop in wasm code and a sleep in a host call: both stop.
    for name in ["loop.wasm", "sleep.wasm"] {
        let exit = guest(
            &program(name),
            name,
            &Sandbox::default(),
            &Limits::default(),
        )
        .run(Stdio::default(), &stop)
        .await
        .unwrap();
        assert_eq!(exit, Exit::Killed(15), "{name}");
        assert_eq!(exit.status(), 143);
    }
}

/// The engine's modules read bottom-up: `run` and `serve` on `host`, on `limits`, on `exit`.
/// A module naming another through `crate::…` is an arrow; no arrow may lead back.
#[test]
fn the_engine_modules_form_no_cycle() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let stem = path.file_stem()?.to_str()?.to_owned();
            (path.extension()? == "rs" && stem != "lib").then_some(stem)
        })
        .collect();
    let mut graph: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for module in &modules {
        let text: String = std::fs::read_to_string(src.join(format!("{module}.rs")))
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let arrows = graph.entry(module).or_default();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                // `crate::{a::{X, Y}, b}`: the first name of each top-level item.
                Some(list) => {
                    let (mut depth, mut start, mut names) = (0, 0, Vec::new());
                    for (i, c) in list.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => {
                                names.push(&list[start..i]);
                                break;
                            }
                            '}' => depth -= 1,
                            ',' if depth == 0 => {
                                names.push(&list[start..i]);
                                start = i + 1;
                            }
                            _ => {}
                        }
                    }
                    names
                        .into_iter()
                        .map(|n| n.trim().split("::").next().unwrap_or_default())
                        .collect()
                }
                None => vec![
                    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or_default(),
                ],
            };
            arrows.extend(
                names
                    .into_iter()
                    .filter(|n| modules.contains(*n) && n != module)
                    .map(str::to_owned),
            );
        }
    }
    assert!(
        graph["run"].contains("host") && graph["host"].contains("limits"),
        "the scan found no arrows: {graph:?}"
    );
    // Depth-first, with the path so far: an arrow into the path is a cycle.
    fn visit<'a>(
        graph: &'a BTreeMap<&str, BTreeSet<String>>,
        module: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!("import cycle: {} → {module}", path[at..].join(" → "));
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for next in &graph[module] {
            visit(graph, next, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(&graph, module, &mut Vec::new(), &mut done);
    }
}
