//! A pod's lifecycle leaves nothing behind: shims, holders, sockets, mounts and
//! containerd's file descriptors, over many pods (through CRI, containerd 1.7).

use super::*;
use crate::cri::{Node, container, fixture};
use crate::support::cri::log_messages;
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

fn twenty_pods_leave_nothing_behind(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd.clone()) else {
        return;
    };
    let hello = push_artifact(&node.registry, "hello", &fixture("hello.wasm"));
    node.pull(&hello).unwrap();
    // Warm up once so that containerd's own lazily opened files are not counted.
    let (exited, _) = node.run(&[], container("hello", &hello, &["hello.wasm"]));
    assert_eq!(exited.exit_code, 0);
    let fds_before = open_fds(node.containerd.pid());
    let address = node.containerd.address.display().to_string();
    let mut pods = Vec::new();
    for _ in 0..20 {
        let pod = node.new_pod(&[], false);
        let mut cri = node.cri.clone();
        let log = Path::new(&pod.config.log_directory).join("hello.log");
        let holder = node.rt.block_on(async {
            let id = cri
                .create(&pod, &container("hello", &hello, &["hello.wasm"]))
                .await
                .unwrap();
            cri.start(&id).await.unwrap();
            let exited = cri.wait_exited(&id, Duration::from_secs(60)).await;
            assert_eq!(exited.exit_code, 0, "{exited:?}");
            // The pod's shim serves here while the pod lives (so the check below
            // looks at the right path).
            assert!(shim_socket(&address, &pod.id).exists());
            let status = cri.pod_status(&pod).await.unwrap();
            let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
            cri.remove_pod(&pod).await.unwrap();
            info["pid"].as_u64().unwrap()
        });
        assert_eq!(log_messages(&log), "hello from wasi:cli/run\n");
        pods.push((pod.id, holder));
    }
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
on_each_containerd!(twenty_pods_leave_nothing_behind);
