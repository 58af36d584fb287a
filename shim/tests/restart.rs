//! containerd restarted under a serving pod (`systemctl restart containerd` on a node):
//! the shim keeps the container, containerd finds it again by the shim's address, and it
//! still answers and stops cleanly. Through CRI, on containerd 1.7.

use super::*;
use crate::cri::{Node, get_inside};
use crate::support::cri::{Cri, containerd_1_7, pod_netns};

#[test]
fn an_http_pod_keeps_serving_across_a_containerd_restart() {
    if !wasmoci_testdata::registry::require(containerd_1_7().to_str().unwrap()) {
        return;
    }
    let Some(mut node) = Node::start(containerd_1_7()) else {
        return;
    };
    let (pod, id, status) = node.serve_hello(&[("wasmoci.dev/allow-net", "true")]);
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    let netns = pod_netns(&info);
    let answer = get_inside(&netns, 8080).expect("it answers before the restart");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");

    // containerd finds a shim again by each bundle's `address` file (the sandbox's too:
    // without it, containerd took the pod's shim for dead and lost the container).
    let tasks = node
        .containerd
        .dir()
        .join("state/io.containerd.runtime.v2.task/k8s.io");
    for bundle in [&pod.id, &id] {
        let address = std::fs::read_to_string(tasks.join(bundle).join("address"))
            .unwrap_or_else(|e| panic!("the bundle of `{bundle}` has no address: {e}"));
        assert!(address.starts_with("unix://"), "{address}");
    }
    node.containerd.restart();
    let address = node.containerd.address.clone();
    let mut cri: Cri = node.rt.block_on(Cri::connect(&address)).unwrap();
    node.cri = cri.clone();
    let state = node.rt.block_on(cri.status(&id)).unwrap().state;
    assert_eq!(
        state,
        k8s_cri::v1::ContainerState::ContainerRunning as i32,
        "the container after the restart"
    );
    let answer = get_inside(&netns, 8080).expect("it answers after the restart");
    assert!(answer.contains("hello from wasi:http"), "{answer}");

    // It stops cleanly: SIGTERM drains, exit 0; then nothing of the pod is left.
    let exited = node.rt.block_on(cri.stop(&id, 10));
    assert_eq!(exited.exit_code, 0, "{exited:?}");
    node.rt.block_on(cri.remove(&id)).unwrap();
    node.rt.block_on(cri.remove_pod(&pod)).unwrap();
    let gone = std::time::Instant::now();
    while crate::support::shims_running(&address) > 0 && gone.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(crate::support::shims_running(&address), 0, "a shim is left");
}
