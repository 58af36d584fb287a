//! Shared helpers: the fixtures, the binary, and "a real part is missing" handling.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The fixtures, built once per test run (see `wasmoci_testdata::build_fixtures`).
pub(crate) fn fixtures() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        wasmoci_testdata::build_fixtures(&dir).to_owned()
    })
}

/// `wasmoci` with a private home and a fixed build time.
pub(crate) fn wasmoci(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmoci"));
    cmd.env("WASMOCI_HOME", home)
        .env("SOURCE_DATE_EPOCH", "0")
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE");
    cmd
}

/// Runs and insists on success.
pub(crate) fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("failed to start wasmoci");
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether an external tool is installed. When it is not: under `CI=true` the test
/// fails (a CI machine must have it: `.ci/install` puts it there); elsewhere it is
/// skipped with a message.
pub(crate) fn require_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("`{name}` is not installed, and CI=true: run `.ci/install`");
        }
        eprintln!("skipping: `{name}` is not installed (run `.ci/install`)");
    }
    found
}

/// Builds the hello command component into the store of `home` as `hello:1.0.0`.
pub(crate) fn build_hello(home: &Path) {
    ok(wasmoci(home)
        .arg("build")
        .arg(fixtures().join("hello.wasm"))
        .args(["--tag", "hello:1.0.0"]));
}

/// Runs skopeo (which must succeed): its stdout.
pub(crate) fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A peer `.ci/install` unpacks under `target/tools` from Debian (`oras-1.2/usr/bin/oras`):
/// its path; `None` (the test skips) when it is missing outside CI, a failure under
/// `CI=true`.
pub(crate) fn unpacked_tool(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tools")
        .join(relative);
    wasmoci_testdata::registry::require(path.to_str().expect("a UTF-8 path")).then_some(path)
}
