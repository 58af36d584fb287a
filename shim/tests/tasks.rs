//! The shim under a real containerd, driven with `ctr` (tasks from a root filesystem
//! holding the .wasm: the image-compat format).

use super::*;
use crate::support::containerd::TestContainerd;
use crate::support::shims_running;

#[test]
fn tasks_run_exit_and_stop_through_containerd() {
    let shim = Path::new(env!("CARGO_BIN_EXE_containerd-shim-wasmoci-v1"));
    let Some(containerd) = TestContainerd::start(shim.parent().unwrap()) else {
        return;
    };
    let rootfs = containerd.dir().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    for name in ["hello.wasm", "exit3.wasm", "loop.wasm"] {
        std::fs::copy(fixtures().join(name), rootfs.join(name)).unwrap();
    }
    let rootfs = rootfs.to_str().unwrap();
    let run = |id: &str, wasm: &str| {
        containerd.ctr(&[
            "run",
            "--rm",
            "--runtime",
            wasmoci_runtime::containerd::RUNTIME_TYPE,
            "--rootfs",
            rootfs,
            id,
            wasm,
        ])
    };
    let hello = run("hello", "/hello.wasm");
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        "hello from wasi:cli/run\n",
        "{hello:?}"
    );
    assert_eq!(hello.status.code(), Some(0));
    assert_eq!(run("exit3", "/exit3.wasm").status.code(), Some(3));
    let missing = run("missing", "/nope.wasm");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("failed to read the component `/nope.wasm`"),
        "{missing:?}"
    );

    // A task that never ends stops on a kill, with 128 + SIGTERM.
    let address = containerd.address.clone();
    let looping = std::thread::spawn({
        let rootfs = rootfs.to_owned();
        move || {
            std::process::Command::new("/usr/bin/ctr")
                .arg("--address")
                .arg(&address)
                .args([
                    "run",
                    "--rm",
                    "--runtime",
                    wasmoci_runtime::containerd::RUNTIME_TYPE,
                    "--rootfs",
                    &rootfs,
                    "loop",
                    "/loop.wasm",
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        }
    });
    let mut killed = false;
    for _ in 0..100 {
        if containerd.ctr(&["task", "kill", "loop"]).status.success() {
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(killed, "the looping task never showed up");
    assert_eq!(looping.join().unwrap().status.code(), Some(143));

    // Bounded: several runs leave no shim process behind.
    for i in 0..5 {
        assert!(run(&format!("again-{i}"), "/hello.wasm").status.success());
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        shims_running(&containerd.address),
        0,
        "a shim outlived its tasks"
    );
}
