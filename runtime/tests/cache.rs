//! The compile cache holds native code: an entry runs only for the wasm it was compiled
//! from, in a directory only this user can write.

use std::os::unix::fs::PermissionsExt;

use wasmoci_runtime::cache::{CacheOutcome, CompileCache};
use wasmoci_runtime::exit::{Exit, StopHandle};
use wasmoci_runtime::host::Stdio;
use wasmoci_runtime::limits::Limits;
use wasmoci_runtime::sandbox::Sandbox;
use wasmoci_spec::Digest;

use super::{engine, fixtures, guest};

/// The reproduction of the security review: one entry (and its tag) copied over another
/// made `hello-p1.wasm` run `exit3`'s code. Now the copy does not verify: compiled again.
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_copied_over_another_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("compiled"));
    let read = |name: &str| std::fs::read(fixtures().join(name)).unwrap();
    let (hello, exit3) = (read("hello-p1.wasm"), read("exit3.wasm"));
    let (hello_digest, exit3_digest) = (Digest::of(&hello), Digest::of(&exit3));
    cache
        .load(engine(), "hello-p1", &hello, &hello_digest)
        .unwrap();
    cache
        .load(engine(), "exit3", &exit3, &exit3_digest)
        .unwrap();
    let (from, to) = (
        cache.entry_path(engine(), &exit3_digest),
        cache.entry_path(engine(), &hello_digest),
    );
    let tag = |p: &std::path::Path| p.with_extension("cwasm.sha256");
    std::fs::copy(&from, &to).unwrap();
    std::fs::copy(tag(&from), tag(&to)).unwrap();

    let (program, outcome) = cache
        .load(engine(), "hello-p1", &hello, &hello_digest)
        .unwrap();
    assert!(
        matches!(&outcome, CacheOutcome::Replaced(r) if r.contains("does not verify")),
        "{outcome:?}"
    );
    let exit = guest(
        &program,
        "hello-p1",
        &Sandbox::default(),
        &Limits::default(),
    )
    .run(Stdio::default(), &StopHandle::default())
    .await
    .unwrap();
    assert_eq!(exit, Exit::Code(0), "exit3's code ran");
    // The key is beside the cache, 0600; the directories 0700.
    let key = dir.path().join("compiled.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let compiled = std::fs::metadata(dir.path().join("compiled")).unwrap();
    assert_eq!(compiled.permissions().mode() & 0o777, 0o700);
}

#[test]
fn a_cache_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let compiled = dir.path().join("compiled");
    std::fs::create_dir(&compiled).unwrap();
    std::fs::set_permissions(&compiled, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cache = CompileCache::new(&compiled);
    let wasm = std::fs::read(fixtures().join("exit3.wasm")).unwrap();
    let err = cache
        .load(engine(), "exit3", &wasm, &Digest::of(&wasm))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failed to use the compile cache") && err.contains("mode 0777"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&compiled).unwrap().count(),
        0,
        "nothing written"
    );
}

/// A FIFO in the place of an entry or of its tag cannot hang a start: both are opened
/// without waiting, refused as not regular files, and the entry is compiled again.
#[test]
fn a_fifo_in_place_of_an_entry_is_replaced_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("compiled"));
    let wasm = std::fs::read(fixtures().join("exit3.wasm")).unwrap();
    let digest = Digest::of(&wasm);
    cache.load(engine(), "exit3", &wasm, &digest).unwrap();
    let entry = cache.entry_path(engine(), &digest);
    let tag = entry.with_extension("cwasm.sha256");
    for planted in [entry, tag] {
        std::fs::remove_file(&planted).unwrap();
        nix::unistd::mkfifo(&planted, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // On a thread, so that an open that waits fails the test instead of hanging it.
        let (done, outcome) = std::sync::mpsc::channel();
        let (cache, wasm) = (cache.clone(), wasm.clone());
        std::thread::spawn(move || {
            let first = cache.load(engine(), "exit3", &wasm, &digest).unwrap().1;
            let again = cache.load(engine(), "exit3", &wasm, &digest).unwrap().1;
            let _ = done.send((first, again));
        });
        let (first, again) = outcome
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a load waited on the FIFO");
        assert!(matches!(first, CacheOutcome::Replaced(_)), "{first:?}");
        assert!(std::fs::metadata(&planted).unwrap().is_file());
        assert_eq!(again, CacheOutcome::Hit);
    }
}
