//! A pod's lifecycle leaves nothing behind: shims, holders, sockets, mounts and
//! containerd's file descriptors, nor memory, over a hundred pods (through CRI).

use super::*;
use crate::cri::{Node, container, fixture, get_inside};
use crate::support::cri::{log_messages, pod_netns};
use crate::support::images::push_artifact;

/// The socket the pod's shim serves on (the formula containerd and the shim crate use).
fn shim_socket(address: &str, pod: &str) -> PathBuf {
    let digest = wasmoci_testdata::sha256(format!("{address}/k8s.io/{pod}").as_bytes());
    PathBuf::from("/run/containerd/s").join(digest.trim_start_matches("sha256:"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Resident memory of `pid` in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    wasmoci_testdata::load::memory(pid).0 >> 10
}

/// How many pods the churn runs (half HTTP servers, half commands).
const PODS: usize = 100;
/// Pods run before counting.
const WARM_UP: usize = 10;

fn a_hundred_pods_leave_nothing_behind(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd.clone()) else {
        return;
    };
    let hello = push_artifact(&node.registry, "hello", &fixture("hello.wasm"));
    node.pull(&hello).unwrap();
    // A pod that serves throughout: its shim must not grow with its neighbours' churn.
    let (survivor, _, _) = node.serve_hello(&[]);
    let http = push_artifact(&node.registry, "http-hello", &fixture("http-hello.wasm"));
    let address = node.containerd.address.display().to_string();
    let survivor_shim = crate::support::shim_pid(Path::new(&address), &survivor.id).unwrap();
    // The first WARM_UP pods are not counted: containerd opens files and grows its heap
    // (Go) to a steady size on its first pods.
    let (mut fds_before, mut rss_before, mut shim_rss_before) = (0, 0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut pods = Vec::new();
    for i in 0..WARM_UP + PODS {
        assert!(
            std::time::Instant::now() < deadline,
            "{i} pods took over 10 minutes"
        );
        if i == WARM_UP {
            fds_before = open_fds(node.containerd.pid());
            rss_before = rss_kib(node.containerd.pid());
            shim_rss_before = rss_kib(survivor_shim);
            pods.clear();
        }
        let serving = i % 2 == 1;
        let pod = node.new_pod(&[], false);
        let mut cri = node.cri.clone();
        let log = Path::new(&pod.config.log_directory).join("hello.log");
        let holder = node.rt.block_on(async {
            let id = if serving {
                cri.create(&pod, &container("http", &http, &["http-hello.wasm"]))
                    .await
                    .unwrap()
            } else {
                cri.create(&pod, &container("hello", &hello, &["hello.wasm"]))
                    .await
                    .unwrap()
            };
            cri.start(&id).await.unwrap();
            let status = cri.pod_status(&pod).await.unwrap();
            let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
            if serving {
                let answer = get_inside(&pod_netns(&info), 8080).expect("the pod answers");
                assert!(answer.contains("hello from wasi:http"), "{answer}");
                let exited = cri.stop(&id, 10).await;
                assert_eq!(exited.exit_code, 0, "the server's exit: {exited:?}");
            } else {
                let exited = cri.wait_exited(&id, Duration::from_secs(60)).await;
                assert_eq!(exited.exit_code, 0, "{exited:?}");
            }
            // The pod's shim serves here while the pod lives (so the check below
            // looks at the right path).
            assert!(shim_socket(&address, &pod.id).exists());
            cri.remove_pod(&pod).await.unwrap();
            info["pid"].as_u64().unwrap()
        });
        if !serving {
            assert_eq!(log_messages(&log), "hello from wasi:cli/run\n");
        }
        pods.push((pod.id, holder));
    }
    // Memory within 10% of the start: nothing kept per pod.
    let (rss_after, shim_rss_after) = (rss_kib(node.containerd.pid()), rss_kib(survivor_shim));
    assert!(
        rss_after <= rss_before * 11 / 10,
        "containerd grew from {rss_before} KiB to {rss_after} KiB over {PODS} pods"
    );
    assert!(
        shim_rss_after <= shim_rss_before * 11 / 10,
        "the surviving pod's shim grew from {shim_rss_before} KiB to {shim_rss_after} KiB"
    );
    let mut cri = node.cri.clone();
    node.rt.block_on(cri.remove_pod(&survivor)).unwrap();
    // Bounded wait (10 s: a loaded machine is slow to reap) for the last shims to exit.
    let shims = || crate::support::shims_running(Path::new(&address));
    for _ in 0..200 {
        if shims() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(shims(), 0, "a shim outlived its pod");
    for (id, holder) in &pods {
        assert!(
            !Path::new(&format!("/proc/{holder}")).exists(),
            "the holder of pod `{id}` is still running"
        );
        let socket = shim_socket(&address, id);
        assert!(!socket.exists(), "`{}` is left behind", socket.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = node.containerd.dir().display().to_string();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&dir)).collect();
    assert!(left.is_empty(), "mounts left behind: {left:#?}");
    let fds_after = open_fds(node.containerd.pid());
    assert!(
        fds_after <= fds_before + 5,
        "containerd had {fds_before} open files before the pods and {fds_after} after"
    );
}
on_each_containerd!(a_hundred_pods_leave_nothing_behind);
