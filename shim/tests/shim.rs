//! The shim: its pure plan of a bundle (no root, no containerd), then under real
//! containerds, driven with `ctr` and through CRI as kubelet drives it (root).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

mod compose;
mod confine;
mod cri;
mod flood;
mod lifecycle;
mod plan;
mod policy;
mod restart;
mod support;
mod tasks;

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        wasmoci_testdata::build_fixtures(&dir).to_owned()
    })
}
