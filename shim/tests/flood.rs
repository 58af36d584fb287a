//! A guest that floods its stdout cannot grow the shim: the worker writes straight into
//! containerd's fifo, which pushes back when containerd's log falls behind; and Kill
//! stops it at once. Through CRI, on containerd 1.7.

use super::*;
use crate::cri::{Node, container};
use crate::support::cri::log_messages;
use crate::support::images::push_artifact;

/// A wasip1 command writing `chunks` × 64 KiB of `x` to stdout, then exiting 0.
fn spew(chunks: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write"
               (func $write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 2)
             (func (export "_start")
               (local $i i32)
               (memory.fill (i32.const 1024) (i32.const 120) (i32.const 65536))
               (i32.store (i32.const 0) (i32.const 1024))
               (i32.store (i32.const 4) (i32.const 65536))
               (loop $more
                 (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br_if $more (i32.lt_u (local.get $i) (i32.const {chunks}))))))"#
    ))
    .unwrap()
}

/// The resident memory of the pod's shims (every shim of this containerd), in KiB.
fn shims_rss_kib(address: &Path) -> u64 {
    let out = std::process::Command::new("ps")
        .args(["-eo", "rss=,args="])
        .output()
        .unwrap();
    let address = address.display().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(wasmoci_runtime::containerd::SHIM_BINARY) && l.contains(&address))
        .filter(|l| !l.contains("__wasmoci-worker"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn a_guest_flooding_stdout_keeps_the_shim_small_and_is_killed_at_once(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd.clone()) else {
        return;
    };
    // 100 MiB, to its end: every byte reaches the container's log.
    let hundred = push_artifact(&node.registry, "flood/hundred", &spew(1600));
    node.pull(&hundred).unwrap();
    let pod = node.new_pod(&[], true);
    let log = Path::new(&pod.config.log_directory).join("hundred.log");
    let mut cri = node.cri.clone();
    let address = node.containerd.address.clone();
    let (exited, peak) = node.rt.block_on(async {
        let id = cri
            .create(&pod, &container("hundred", &hundred, &["spew.wasm"]))
            .await
            .unwrap();
        cri.start(&id).await.unwrap();
        // Sampled while it writes (bounded).
        let mut peak = 0;
        for _ in 0..100 {
            peak = peak.max(shims_rss_kib(&address));
            if cri.status(&id).await.unwrap().state
                == k8s_cri::v1::ContainerState::ContainerExited as i32
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (cri.wait_exited(&id, Duration::from_secs(60)).await, peak)
    });
    assert_eq!(exited.exit_code, 0, "{exited:?}");
    let logged: usize = log_messages(&log).len();
    assert_eq!(logged, 100 << 20, "every byte reached the log");
    assert!(peak < 64 * 1024, "the shim grew to {peak} KiB");

    // Endless: stopped at once (SIGKILL, no grace), however much is queued.
    let endless = push_artifact(&node.registry, "flood/endless", &spew(u32::MAX));
    node.pull(&endless).unwrap();
    let killed = node.rt.block_on(async {
        let id = cri
            .create(&pod, &container("endless", &endless, &["spew.wasm"]))
            .await
            .unwrap();
        cri.start(&id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let asked = std::time::Instant::now();
        let exited = cri.stop(&id, 0).await;
        (exited, asked.elapsed())
    });
    assert_eq!(killed.0.exit_code, 137, "{:?}", killed.0);
    assert!(
        killed.1 < Duration::from_secs(5),
        "stopped after {:?}",
        killed.1
    );
    assert!(shims_rss_kib(&address) < 64 * 1024);
    node.rt.block_on(cri.remove_pod(&pod)).unwrap();
}
on_each_containerd!(a_guest_flooding_stdout_keeps_the_shim_small_and_is_killed_at_once);
