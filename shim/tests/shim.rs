//! The shim: its pure plan of a bundle (no root, no containerd), then under real
//! containerds, driven with `ctr` and through CRI as kubelet drives it (root).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Runs a CRI test (`fn name(containerd: PathBuf)`) on each containerd a node may have:
/// Debian trixie's 1.7 (`name::containerd_1_7`) and sid's 2.1 (`name::containerd_2_1`).
macro_rules! on_each_containerd {
    ($name:ident) => {
        mod $name {
            #[test]
            fn containerd_1_7() {
                super::$name(crate::support::cri::containerd_1_7());
            }

            #[test]
            fn containerd_2_1() {
                super::$name(crate::support::cri::containerd_2_1());
            }
        }
    };
}

mod compose;
mod confine;
mod cri;
mod flood;
mod lifecycle;
mod load;
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
