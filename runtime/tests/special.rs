//! A wasip1 module's `path_open` refuses device nodes and FIFOs on a granted directory
//! (`errno::acces`), opens regular files as before, and the guard's look at the path
//! leaves the guest's memory as it was.

use wasmoci_runtime::cache::compile;
use wasmoci_runtime::exit::{Exit, StopHandle};
use wasmoci_runtime::host::Stdio;
use wasmoci_runtime::limits::Limits;
use wasmoci_runtime::sandbox::Sandbox;
use wasmoci_spec::WasmKind;

use super::{engine, guest};

/// Opens `hello.txt` in fd 3 with the path at address 0, inside the 64 bytes the guard
/// borrows, and exits with `path_open`'s errno, plus 100 when any byte of 0..64 changed
/// (a copy of them is kept at 128).
const OPENER: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello.txt-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS")
  (data (i32.const 128) "hello.txt-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS")
  (func (export "_start")
    (local $errno i32) (local $i i32) (local $changed i32)
    (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 9)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 96)))
    (loop $compare
      (if (i64.ne (i64.load (local.get $i)) (i64.load (i32.add (local.get $i) (i32.const 128))))
        (then (local.set $changed (i32.const 100))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $compare (i32.lt_u (local.get $i) (i32.const 64))))
    (call $proc_exit (i32.add (local.get $errno) (local.get $changed)))))
"#;

async fn open_in(dir: &std::path::Path) -> Exit {
    let wasm = wat::parse_str(OPENER).unwrap();
    let program = compile(engine(), "opener", WasmKind::detect(&wasm).unwrap(), &wasm).unwrap();
    let sandbox = Sandbox {
        dirs: vec![format!("{}::/data", dir.display()).parse().unwrap()],
        ..Sandbox::default()
    };
    guest(&program, "opener", &sandbox, &Limits::default())
        .run(Stdio::default(), &StopHandle::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_cannot_open_a_fifo_or_a_device_on_a_granted_directory() {
    let root = tempfile::tempdir().unwrap();
    let (plain, fifo, device) = (
        root.path().join("plain"),
        root.path().join("fifo"),
        root.path().join("device"),
    );
    for dir in [&plain, &fifo, &device] {
        std::fs::create_dir(dir).unwrap();
    }
    std::fs::write(plain.join("hello.txt"), "hi\n").unwrap();
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
    nix::unistd::mkfifo(&fifo.join("hello.txt"), mode).unwrap();
    assert_eq!(open_in(&plain).await, Exit::Code(0));
    // A device node needs root to make; `/dev/null`'s, `c 1 3`, reads nothing harmful.
    if nix::sys::stat::mknod(
        &device.join("hello.txt"),
        nix::sys::stat::SFlag::S_IFCHR,
        mode,
        nix::sys::stat::makedev(1, 3),
    )
    .is_ok()
    {
        assert_eq!(open_in(&device).await, Exit::Code(2));
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root, and must make the device node"
        );
    }
    // errno 2 is `acces`: refused before anything is opened (the FIFO has no writer, so
    // an open would block this test).
    assert_eq!(open_in(&fifo).await, Exit::Code(2));
}

/// The unguarded functions are not the guest's to import, under any name: a module
/// asking for the names the guard once kept them under does not instantiate.
#[tokio::test(flavor = "multi_thread")]
async fn a_module_cannot_import_the_unguarded_open() {
    let wasm = wat::parse_str(
        r#"(module
             (import "wasmoci:unguarded" "path_open"
               (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "_start")))"#,
    )
    .unwrap();
    let program = compile(engine(), "sneaky", WasmKind::detect(&wasm).unwrap(), &wasm).unwrap();
    let ran = guest(&program, "sneaky", &Sandbox::default(), &Limits::default())
        .run(Stdio::default(), &StopHandle::default())
        .await;
    let error = ran.expect_err("it instantiated").to_string();
    assert!(error.contains("wasmoci:unguarded"), "{error}");
}
