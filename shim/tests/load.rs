//! An HTTP pod under load and under slowloris, through CRI, as `wasmoci serve` is
//! (cli/tests/load.rs): every request answered or refused with 503, and idle connections
//! that never send a request cannot keep a new client out (`wasmoci.dev/max-connections`,
//! `wasmoci.dev/header-timeout`).

use super::*;
use crate::cri::{Node, inside};
use crate::support::cri::pod_netns;

const ADDR: &str = "127.0.0.1:8080";

fn an_http_pod_holds_load_and_slowloris(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd) else {
        return;
    };
    let (pod, id, status) = node.serve_hello(&[
        ("wasmoci.dev/allow-net", "true"),
        ("wasmoci.dev/max-concurrent", "8"),
        ("wasmoci.dev/max-queued", "64"),
        ("wasmoci.dev/max-connections", "100"),
        ("wasmoci.dev/header-timeout", "1s"),
    ]);
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    let netns = pod_netns(&info);
    let shim = crate::support::shim_pid(&node.containerd.address, &pod.id).unwrap();

    // 10,000 requests from 1,000 connections at once (100 served at a time).
    let statuses = inside(&netns, || {
        wasmoci_testdata::load::load(ADDR, 1000, 10, Duration::from_secs(120))
    });
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count();
    let (ok, busy) = (count(200), count(503));
    assert_eq!(
        ok + busy,
        statuses.len(),
        "{ok} answered, {busy} refused, the rest not answered"
    );
    // (Whether some are refused depends on the machine's speed: at most 100 of the
    // connections are served at once, 72 requests admitted.)
    assert!(ok > 0, "nothing was answered");
    let mut cri = node.cri.clone();
    let state = node.rt.block_on(cri.status(&id)).unwrap().state;
    assert_eq!(state, k8s_cri::v1::ContainerState::ContainerRunning as i32);
    assert!(
        Path::new(&format!("/proc/{shim}")).exists(),
        "the shim died"
    );

    // Slowloris: 500 connections that never send a request, past the cap of 100; the
    // header timeout closes them and a new client is served.
    let took = inside(&netns, || {
        let idle: Vec<_> = (0..500)
            .map(|_| std::net::TcpStream::connect(ADDR).unwrap())
            .collect();
        let started = std::time::Instant::now();
        let answer = crate::cri::get_inside_here(ADDR);
        drop(idle);
        answer.map(|a| (a, started.elapsed()))
    });
    let (answer, took) = took.expect("a new client was not served past 500 idle connections");
    assert!(answer.contains("hello from wasi:http"), "{answer}");
    assert!(
        took >= Duration::from_millis(500),
        "served in {took:?}: the cap of 100 did not hold"
    );
    let exited = node.rt.block_on(cri.stop(&id, 10));
    assert_eq!(exited.exit_code, 0, "{exited:?}");
}
on_each_containerd!(an_http_pod_holds_load_and_slowloris);
