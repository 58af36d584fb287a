//! containerd restarted under a serving pod (`systemctl restart containerd` on a node):
//! the shim keeps the container, containerd finds it again by the shim's address, and it
//! still answers and stops cleanly. Through CRI, on containerd 1.7.

use super::*;
use crate::cri::{Node, get_inside};
use crate::support::containerd::TestContainerd;
use crate::support::cri::{Cri, pod_netns};

fn an_http_pod_keeps_serving_across_a_containerd_restart(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd.clone()) else {
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
on_each_containerd!(an_http_pod_keeps_serving_across_a_containerd_restart);

/// Waits up to `limit` for `pid` to be gone; whether it went.
fn gone_within(pid: u32, limit: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn sigterm(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

/// SIGTERM ends a shim none of whose tasks runs (`containerd-shim` 0.11 only logs it),
/// and so does containerd going away for good: through `ctr`, whose tasks stay until
/// deleted (CRI deletes a task as soon as it exits).
#[test]
fn idle_shims_exit_on_sigterm_and_when_containerd_is_gone() {
    let shim = Path::new(env!("CARGO_BIN_EXE_containerd-shim-wasmoci-v1"));
    let Some(mut containerd) = TestContainerd::start(shim.parent().unwrap()) else {
        return;
    };
    let rootfs = containerd.dir().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::copy(fixtures().join("hello.wasm"), rootfs.join("hello.wasm")).unwrap();
    let rootfs = rootfs.to_str().unwrap().to_owned();
    let address = containerd.address.clone();
    let idle = |id: &str| {
        let out = containerd.ctr(&[
            "run",
            "-d",
            "--runtime",
            wasmoci_runtime::containerd::RUNTIME_TYPE,
            "--rootfs",
            &rootfs,
            id,
            "/hello.wasm",
        ]);
        assert!(out.status.success(), "{out:?}");
        let start = std::time::Instant::now();
        while !String::from_utf8_lossy(&containerd.ctr(&["task", "ls"]).stdout)
            .lines()
            .any(|l| l.starts_with(id) && l.contains("STOPPED"))
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "`{id}` never stopped"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        crate::support::shim_pid(&address, id).expect("the shim of a stopped task runs")
    };
    let first = idle("idle-1");
    sigterm(first);
    assert!(
        gone_within(first, Duration::from_secs(5)),
        "an idle shim ignored SIGTERM"
    );
    // containerd copes with the shim gone: it cleans the task up itself (the shim's
    // `delete`), and the container can be deleted.
    let start = std::time::Instant::now();
    while String::from_utf8_lossy(&containerd.ctr(&["task", "ls"]).stdout).contains("idle-1") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the task stayed listed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deleted = containerd.ctr(&["container", "delete", "idle-1"]);
    assert!(deleted.status.success(), "{deleted:?}");

    let second = idle("idle-2");
    containerd.kill();
    assert!(
        gone_within(second, Duration::from_secs(15)),
        "a shim with every task stopped outlived containerd"
    );
}

/// A serving pod's shim ignores SIGTERM and outlives a crashed containerd (one started
/// again finds it); once its bundles are deleted too (containerd's state wiped, as when a
/// test's containerd goes), it ends its pod and exits, its children with it.
fn a_serving_shim_stays_until_containerd_forgets_it(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd.clone()) else {
        return;
    };
    let (pod, id, status) = node.serve_hello(&[("wasmoci.dev/allow-net", "true")]);
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    let netns = pod_netns(&info);
    let busy = crate::support::shim_pid(&node.containerd.address, &pod.id).unwrap();
    sigterm(busy);
    assert!(
        !gone_within(busy, Duration::from_secs(3)),
        "a shim serving a pod exited on SIGTERM"
    );
    let answer = get_inside(&netns, 8080).expect("it answers after the SIGTERM");
    assert!(answer.contains("hello from wasi:http"), "{answer}");
    let children =
        std::fs::read_to_string(format!("/proc/{busy}/task/{busy}/children")).unwrap_or_default();

    node.containerd.kill();
    assert!(
        !gone_within(busy, Duration::from_secs(7)),
        "a serving pod's shim exited when containerd went"
    );
    let tasks = node
        .containerd
        .dir()
        .join("state/io.containerd.runtime.v2.task/k8s.io");
    for bundle in [&pod.id, &id] {
        let rootfs = tasks.join(bundle).join("rootfs");
        let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
        std::fs::remove_dir_all(tasks.join(bundle)).unwrap();
    }
    assert!(
        gone_within(busy, Duration::from_secs(15)),
        "a shim whose bundles are gone did not exit"
    );
    for pid in children.split_whitespace() {
        let pid: u32 = pid.parse().unwrap();
        assert!(
            gone_within(pid, Duration::from_secs(5)),
            "the shim's child {pid} outlived it"
        );
    }
    node.containerd.start_again();
    let address = node.containerd.address.clone();
    node.cri = node.rt.block_on(Cri::connect(&address)).unwrap();
    assert_eq!(crate::support::shims_running(&address), 0, "a shim is left");
}
on_each_containerd!(a_serving_shim_stays_until_containerd_forgets_it);
