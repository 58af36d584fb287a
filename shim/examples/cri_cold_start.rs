//! Cold start through CRI, as kubelet sees it: CreateContainer + StartContainer until
//! ContainerStatus says exited, for the hello `wasi:cli/run` component (a CNCF artifact),
//! on Debian trixie's containerd 1.7.24 with our shim and, when given, a peer's shim in
//! the same containerd (`--peer HANDLER=RUNTIME_TYPE=PATH`, e.g. runwasi's
//! `containerd-shim-wasmtime-v1`). Run by `benches/cold_start.sh`; needs root.
//!
//! - first start: a digest no start has compiled yet (each sample gets its own, by a custom
//!   section), so the shim compiles;
//! - warm start: the same digest again (the compile cache hits);
//! - idle RSS: the shim processes of one pod (and their children: wasmoci's worker) while
//!   its one container sleeps in a host call; and their PSS, which counts the pages two
//!   processes share (the binary's text) once.
//!
//! The pod sandbox is made before the clock starts; the pause image is a real static
//! binary (a peer may run it).

#![allow(clippy::print_stdout, reason = "a benchmark prints its results")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/support/cri.rs"]
#[allow(
    dead_code,
    reason = "shared with the tests; the benchmark uses part of it"
)]
mod cri;
#[path = "../tests/support/images.rs"]
mod images;

use cri::{ContainerSpec, Cri, CriContainerd, CriSetup, PodSpec, containerd_1_7};
use images::{push_artifact, push_native};
use wasmoci_testdata::registry::TestRegistry;

/// A static `pause` (what a runc-style shim may run for the sandbox), in a tar layer.
fn push_pause(registry: &TestRegistry, scratch: &Path) -> String {
    let source = scratch.join("pause.c");
    std::fs::write(
        &source,
        "#include <unistd.h>\n#include <signal.h>\nstatic void bye(int s){(void)s;_exit(0);}\nint main(void){signal(SIGTERM,bye);signal(SIGINT,bye);for(;;)pause();}\n",
    )
    .unwrap();
    let binary = scratch.join("pause");
    let status = Command::new("cc")
        .args(["-static", "-Os", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("cc (build-essential) builds the pause binary");
    assert!(status.success(), "failed to build a static pause binary");
    let bytes = std::fs::read(&binary).unwrap();
    push_native(registry, "bench/pause", "pause", &bytes, Some("/pause"))
}

/// `wasm` with a custom section naming `tag`: same behaviour, another digest.
fn variant(wasm: &[u8], tag: &str) -> Vec<u8> {
    let name = b"wasmoci-bench";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    assert!(payload.len() < 128, "one LEB128 byte");
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

struct Bench {
    cri: Cri,
    rt: tokio::runtime::Runtime,
    dir: PathBuf,
    pods: usize,
    /// Every start: (container id, wall-clock seconds at CreateContainer, at exited seen).
    starts: Vec<(String, f64, f64)>,
    /// containerd's log (shown when a pod cannot be removed).
    log: PathBuf,
}

/// Wall-clock seconds since the epoch.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Seconds since the epoch of containerd's `time="2026-11-30T03:40:12.123456789Z"` (UTC).
fn containerd_time(line: &str) -> Option<f64> {
    let rest = line.strip_prefix("time=\"")?;
    let stamp = &rest[..rest.find('"')?];
    let stamp = stamp
        .strip_suffix('Z')
        .or_else(|| stamp.strip_suffix("+00:00"))?;
    let (date, time) = stamp.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let mut hms = time.split(':');
    let (h, min, sec) = (hms.next()?, hms.next()?, hms.next()?);
    let secs = h.parse::<f64>().ok()? * 3600.0
        + min.parse::<f64>().ok()? * 60.0
        + sec.parse::<f64>().ok()?;
    Some(days as f64 * 86_400.0 + secs)
}

/// Where the time of `starts` went, from containerd's debug log: the shim's and the
/// worker's timing marks (`timing `ID` PHASE at=SECONDS`) and CRI's own lines, each as its
/// median time from CreateContainer, in the order they come.
fn breakdown(log: &str, starts: &[(String, f64, f64)]) {
    let mut phases: Vec<(String, Vec<f64>)> = Vec::new();
    let mut add = |phase: &str, at: f64| match phases.iter_mut().find(|(p, _)| p == phase) {
        Some((_, all)) => all.push(at),
        None => phases.push((phase.to_owned(), vec![at])),
    };
    for (id, began, ended) in starts {
        let mut seen = vec![("CreateContainer called".to_owned(), 0.0)];
        let quoted = format!("\\\"{id}\\\"");
        let mark = format!("timing `{id}` ");
        for line in log.lines() {
            if let Some(at) = line.find(&mark) {
                let rest = &line[at + mark.len()..];
                let Some((phase, at)) = rest.split_once(" at=") else {
                    continue;
                };
                let at: String = at
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                if let Ok(at) = at.parse::<f64>() {
                    seen.push((format!("shim: {phase}"), (at - began) * 1e3));
                }
            } else if line.contains(&quoted) {
                let cri = if line.contains("returns successfully") {
                    "containerd: StartContainer returns"
                } else if line.contains("msg=\"StartContainer for") {
                    "containerd: StartContainer called"
                } else if line.contains("TaskExit event") {
                    "containerd: TaskExit handled"
                } else {
                    continue;
                };
                if let Some(at) = containerd_time(line) {
                    seen.push((cri.to_owned(), (at - began) * 1e3));
                }
            }
        }
        seen.push((
            "ContainerStatus says exited".to_owned(),
            (ended - began) * 1e3,
        ));
        seen.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (phase, at) in seen {
            add(&phase, at);
        }
    }
    let mut rows: Vec<(String, f64, usize)> = phases
        .into_iter()
        .map(|(phase, mut all)| {
            all.sort_by(f64::total_cmp);
            (phase, all[all.len() / 2], all.len())
        })
        .collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut previous = 0.0;
    for (phase, at, samples) in rows {
        println!(
            "    {phase:<40} {at:>7.2} ms  (+{:>5.2})  n={samples}",
            at - previous
        );
        previous = at;
    }
}

/// One container running `image` with `command`.
fn container(name: &str, image: &str, command: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: image.into(),
        command: vec![command.into()],
        ..ContainerSpec::default()
    }
}

impl Bench {
    /// A new host-network pod on `handler`.
    fn pod_spec(&mut self, handler: &str) -> PodSpec {
        self.pods += 1;
        PodSpec {
            name: format!("bench-{}", self.pods),
            log_directory: self.dir.join(format!("logs/{}", self.pods)),
            host_network: true,
            handler: handler.to_owned(),
            ..PodSpec::default()
        }
    }

    /// One start: (time from CreateContainer to exited, exit code). Its container id and
    /// wall-clock start and end go to `self.starts`.
    fn start(&mut self, handler: &str, image: &str, command: &str) -> (Duration, i32) {
        let spec = self.pod_spec(handler);
        let mut cri = self.cri.clone();
        let log = self.log.clone();
        let (took, code, id, began) = self.rt.block_on(async {
            let pod = cri.run_pod(&spec).await.expect("RunPodSandbox");
            let container = container("hello", image, command);
            let began = unix_now();
            let started = Instant::now();
            let id = cri.create(&pod, &container).await.expect("CreateContainer");
            cri.start(&id).await.expect("StartContainer");
            let exit_code = loop {
                let status = cri.status(&id).await.expect("ContainerStatus");
                if status.state == k8s_cri::v1::ContainerState::ContainerExited as i32 {
                    break status.exit_code;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{handler}: `{image}` still runs after 60 s"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            let took = started.elapsed();
            if let Err(e) = cri.remove_pod(&pod).await {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(80).collect();
                panic!(
                    "RemovePodSandbox: {e}\ncontainerd's log, last lines:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            (took, exit_code, id, began)
        });
        self.starts.push((id, began, began + took.as_secs_f64()));
        (took, code)
    }

    /// RSS and PSS (KiB) of the shim processes serving `count` pods of `image` at once,
    /// and their children, while each pod's one container idles (sleeps, or serves
    /// nothing: an HTTP component gets a port of its own by `wasmoci.dev/listen`).
    #[allow(clippy::too_many_arguments, reason = "a benchmark's one call site")]
    fn idle_pods(
        &mut self,
        handler: &str,
        image: &str,
        command: &str,
        count: usize,
        http: bool,
        shim_name: &str,
        address: &str,
    ) -> (u64, u64) {
        let specs: Vec<PodSpec> = (0..count)
            .map(|_| {
                let mut spec = self.pod_spec(handler);
                if http {
                    let port = std::net::TcpListener::bind("127.0.0.1:0")
                        .and_then(|l| l.local_addr())
                        .unwrap()
                        .port();
                    spec.annotations
                        .insert("wasmoci.dev/listen".into(), format!("127.0.0.1:{port}"));
                }
                spec
            })
            .collect();
        let mut cri = self.cri.clone();
        self.rt.block_on(async {
            let mut pods = Vec::new();
            for spec in &specs {
                let pod = cri.run_pod(spec).await.expect("RunPodSandbox");
                let id = cri
                    .create(&pod, &container("idle", image, command))
                    .await
                    .expect("CreateContainer");
                cri.start(&id).await.expect("StartContainer");
                pods.push(pod);
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let measured = shim_tree_rss(shim_name, address);
            for pod in &pods {
                cri.remove_pod(pod).await.expect("RemovePodSandbox");
            }
            measured
        })
    }

    /// RSS (KiB) of the shim processes serving one pod, and their children, while its
    /// container sleeps.
    fn idle_rss(
        &mut self,
        handler: &str,
        image: &str,
        shim_name: &str,
        address: &str,
    ) -> (u64, u64) {
        let spec = self.pod_spec(handler);
        let mut cri = self.cri.clone();
        self.rt.block_on(async {
            let pod = cri.run_pod(&spec).await.expect("RunPodSandbox");
            let container = container("sleep", image, "sleep.wasm");
            let id = cri.create(&pod, &container).await.expect("CreateContainer");
            cri.start(&id).await.expect("StartContainer");
            tokio::time::sleep(Duration::from_secs(2)).await;
            let rss = shim_tree_rss(shim_name, address);
            cri.remove_pod(&pod).await.expect("RemovePodSandbox");
            rss
        })
    }
}

fn proc_field(pid: &str, file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
}

/// RSS and PSS (KiB) of the shim processes of `address` and their children.
fn shim_tree_rss(shim_name: &str, address: &str) -> (u64, u64) {
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let cmdline = |pid: &str| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    };
    let mut tree: Vec<String> = pids
        .iter()
        .filter(|p| {
            let c = cmdline(p);
            c.contains(shim_name) && c.contains(address)
        })
        .cloned()
        .collect();
    // Children (bounded: a process tree is finite; a pass adds only new pids).
    for _ in 0..8 {
        let more: Vec<String> = pids
            .iter()
            .filter(|p| !tree.contains(p))
            .filter(|p| proc_field(p, "status", "PPid:").is_some_and(|pp| tree.contains(&pp)))
            .cloned()
            .collect();
        if more.is_empty() {
            break;
        }
        tree.extend(more);
    }
    if std::env::var_os("WASMOCI_BENCH_VERBOSE").is_some() {
        for p in &tree {
            println!(
                "    pid {p}: {} RSS {}",
                cmdline(p).chars().take(60).collect::<String>(),
                proc_field(p, "status", "VmRSS:").unwrap_or_default()
            );
            for key in ["Pss:", "Pss_Anon:", "Pss_File:", "Anonymous:"] {
                println!(
                    "      {key} {}",
                    proc_field(p, "smaps_rollup", key).unwrap_or_default()
                );
            }
            println!(
                "      threads {}",
                proc_field(p, "status", "Threads:").unwrap_or_default()
            );
        }
    }
    let sum = |file: &str, key: &str| -> u64 {
        tree.iter()
            .filter_map(|p| proc_field(p, file, key))
            .filter_map(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .sum()
    };
    (sum("status", "VmRSS:"), sum("smaps_rollup", "Pss:"))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let mut iterations = 20;
    let mut python: Option<PathBuf> = None;
    let mut pods = 20;
    let mut peer: Option<(String, String, PathBuf)> = None;
    let mut debug = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => {
                iterations = args.next().and_then(|n| n.parse().ok()).expect("a number")
            }
            "--peer" => {
                let spec = args.next().expect("HANDLER=RUNTIME_TYPE=PATH");
                let mut parts = spec.splitn(3, '=');
                peer = Some((
                    parts.next().unwrap().to_owned(),
                    parts.next().expect("RUNTIME_TYPE").to_owned(),
                    PathBuf::from(parts.next().expect("PATH")),
                ));
            }
            "--python" => python = Some(PathBuf::from(args.next().expect("a directory"))),
            "--breakdown" => debug = true,
            "--pods" => pods = args.next().and_then(|n| n.parse().ok()).expect("a number"),
            other => panic!("unknown argument `{other}`"),
        }
    }
    let scratch = tempfile::tempdir().unwrap();
    let fixtures = wasmoci_testdata::build_fixtures(&scratch.path().join("fixtures")).to_owned();
    let hello = std::fs::read(fixtures.join("hello.wasm")).unwrap();
    let sleep = std::fs::read(fixtures.join("sleep.wasm")).unwrap();
    let registry = TestRegistry::start(None).expect("docker-registry");
    let sandbox_image = push_pause(&registry, scratch.path());
    let home = scratch.path().join("wasmoci-home");
    let shim = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(wasmoci_runtime::containerd::SHIM_BINARY);
    assert!(shim.exists(), "build the shim first: `{}`", shim.display());
    let containerd = CriContainerd::start(&CriSetup {
        containerd: containerd_1_7(),
        shim,
        registry: registry.addr.clone(),
        sandbox_image,
        wasmoci_home: home,
        other_runtimes: peer.iter().cloned().collect(),
        debug,
        env: Vec::new(),
        runtime_options: Vec::new(),
    })
    .expect("containerd 1.7 (run .ci/containerd-1.7)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cri = rt.block_on(Cri::connect(&containerd.address)).unwrap();
    let mut bench = Bench {
        cri,
        rt,
        dir: scratch.path().to_owned(),
        pods: 0,
        starts: Vec::new(),
        log: containerd.dir().join("containerd.log"),
    };
    let pull = |bench: &mut Bench, image: &str| {
        let mut cri = bench.cri.clone();
        bench
            .rt
            .block_on(cri.pull(image))
            .unwrap_or_else(|e| panic!("PullImage `{image}`: {e}"));
    };
    let address = containerd.address.display().to_string();
    let mut runtimes = vec![(
        wasmoci_runtime::containerd::RUNTIME_NAME.to_owned(),
        wasmoci_runtime::containerd::SHIM_BINARY.to_owned(),
    )];
    if let Some((handler, _, path)) = &peer {
        runtimes.push((
            handler.clone(),
            path.file_name().unwrap().to_string_lossy().into_owned(),
        ));
    }

    println!(
        "cold start through CRI (CreateContainer + StartContainer → exited), hello component, {iterations} samples, medians"
    );
    let mut results = Vec::new();
    for (handler, shim_name) in &runtimes {
        let sleeper = push_artifact(
            &registry,
            &format!("bench/{handler}/sleep"),
            &variant(&sleep, handler),
        );
        pull(&mut bench, &sleeper);
        let warm_image = push_artifact(
            &registry,
            &format!("bench/{handler}/hello"),
            &variant(&hello, &format!("{handler}-warm")),
        );
        pull(&mut bench, &warm_image);
        let mut first = Vec::new();
        for i in 0..iterations {
            let image = push_artifact(
                &registry,
                &format!("bench/{handler}/first-{i}"),
                &variant(&hello, &format!("{handler}-{i}")),
            );
            pull(&mut bench, &image);
            let (took, code) = bench.start(handler, &image, "hello.wasm");
            assert_eq!(code, 0, "{handler}: hello exited {code}");
            first.push(took);
        }
        let _ = bench.start(handler, &warm_image, "hello.wasm");
        let mut warm = Vec::new();
        let from = bench.starts.len();
        for _ in 0..iterations {
            let (took, code) = bench.start(handler, &warm_image, "hello.wasm");
            assert_eq!(code, 0, "{handler}: hello exited {code}");
            warm.push(took);
        }
        if debug {
            println!("{handler}: where a warm start of hello goes (medians from CreateContainer)");
            breakdown(&containerd.log(), &bench.starts[from..]);
        }
        // The first pod of a digest compiles it (the compiler's code is paged in); later
        // pods load it from the cache.
        let (rss_compiled, _) = bench.idle_rss(handler, &sleeper, shim_name, &address);
        let (rss, pss) = bench.idle_rss(handler, &sleeper, shim_name, &address);
        let (first, warm) = (median(first), median(warm));
        println!(
            "{handler:>10}: first start {:>8.1} ms   warm start {:>8.1} ms   idle RSS per pod {:>7.1} MiB, PSS {:.1} MiB ({:.1} MiB RSS in the pod that compiled)",
            first.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            rss as f64 / 1024.0,
            pss as f64 / 1024.0,
            rss_compiled as f64 / 1024.0
        );
        results.push((handler.clone(), first, warm, rss));
    }
    if let [(_, f0, w0, r0), (peer, f1, w1, r1)] = results.as_slice() {
        println!(
            "wasmoci / {peer}: first start {:.2}x   warm start {:.2}x (goal <= 0.5x)   idle RSS {:.2}x",
            f0.as_secs_f64() / f1.as_secs_f64(),
            w0.as_secs_f64() / w1.as_secs_f64(),
            *r0 as f64 / *r1 as f64
        );
    }
    println!("goal: idle shim RSS <= 15 MiB per pod");

    let Some(python) = python else {
        return;
    };
    // The real Python components (benches/tools.py), on wasmoci's shim: warm start of the
    // command beside hello's, and idle density of 1 and `pods` pods.
    let handler = wasmoci_runtime::containerd::RUNTIME_NAME;
    let shim_name = wasmoci_runtime::containerd::SHIM_BINARY;
    let read = |name: &str| {
        std::fs::read(python.join(name))
            .unwrap_or_else(|e| panic!("`{name}` in `{}`: {e}", python.display()))
    };
    let image_of = |bench: &mut Bench, name: &str, wasm: &[u8]| {
        let image = push_artifact(&registry, &format!("bench/python/{name}"), wasm);
        pull(bench, &image);
        image
    };
    let py_cli = image_of(&mut bench, "cli", &read("py-cli.wasm"));
    let _ = bench.start(handler, &py_cli, "py-cli.wasm");
    let mut warm = Vec::new();
    let from = bench.starts.len();
    for _ in 0..iterations {
        let (took, code) = bench.start(handler, &py_cli, "py-cli.wasm");
        assert_eq!(code, 0, "the Python command exited {code}");
        warm.push(took);
    }
    let hello_warm = results[0].2;
    let py_warm = median(warm);
    println!(
        "python command: warm start {:.1} ms, {:+.1} ms from hello's (goal: within 10 ms)",
        py_warm.as_secs_f64() * 1e3,
        (py_warm.as_secs_f64() - hello_warm.as_secs_f64()) * 1e3
    );
    if debug {
        println!("where a warm start of the Python command goes (medians from CreateContainer)");
        breakdown(&containerd.log(), &bench.starts[from..]);
    }
    let idle = [
        ("hello (sleeping)", sleep.clone(), "sleep.wasm", false),
        (
            "python command (sleeping)",
            read("py-sleep.wasm"),
            "py-sleep.wasm",
            false,
        ),
        (
            "python http (idle)",
            read("py-http.wasm"),
            "py-http.wasm",
            true,
        ),
    ];
    println!("idle density through CRI, wasmoci: RSS and PSS of all shim processes and workers");
    for (label, wasm, command, http) in idle {
        let image = image_of(&mut bench, &command.replace(".wasm", ""), &wasm);
        // Compiled once before measuring: every measured pod maps the cached code.
        let _ = bench.idle_pods(handler, &image, command, 1, http, shim_name, &address);
        let (rss1, pss1) = bench.idle_pods(handler, &image, command, 1, http, shim_name, &address);
        let (rss_n, pss_n) =
            bench.idle_pods(handler, &image, command, pods, http, shim_name, &address);
        let mib = |kib: u64| kib as f64 / 1024.0;
        let marginal = (pss_n.saturating_sub(pss1)) as f64 / 1024.0 / (pods - 1).max(1) as f64;
        println!(
            "  {label:<26} 1 pod: RSS {:7.1} MiB PSS {:7.1} MiB   {pods} pods: RSS {:7.1} MiB PSS {:7.1} MiB   marginal PSS per pod {:5.1} MiB{}",
            mib(rss1),
            mib(pss1),
            mib(rss_n),
            mib(pss_n),
            marginal,
            if http { " (goal <= 5 MiB)" } else { "" }
        );
    }
}
