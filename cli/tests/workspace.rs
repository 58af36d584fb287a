//! The dependency rules of ARCHITECTURE.md, checked on the real dependency tree.

use std::process::Command;

fn normal_dependencies(package: &str) -> Vec<String> {
    let workspace = wasmoci_testdata::root().parent().unwrap();
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(["-p", package])
        .current_dir(workspace)
        .output()
        .expect("failed to run `cargo tree`");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn spec_stays_pure_and_the_libraries_stay_headless() {
    let spec = normal_dependencies("wasmoci-spec");
    assert!(
        spec.iter().any(|p| p == "wasmparser"),
        "unexpected tree: {spec:?}"
    );
    for banned in [
        "tokio",
        "clap",
        "indicatif",
        "oci-client",
        "reqwest",
        "hyper",
        "wasmoci-registry",
    ] {
        assert!(
            !spec.iter().any(|p| p == banned),
            "wasmoci-spec depends on `{banned}`"
        );
    }
    let runtime = normal_dependencies("wasmoci-runtime");
    assert!(
        runtime.iter().any(|p| p == "wasmtime"),
        "unexpected tree: {runtime:?}"
    );
    for banned in ["clap", "indicatif", "wasmoci-cli"] {
        assert!(
            !runtime.iter().any(|p| p == banned),
            "wasmoci-runtime depends on `{banned}`"
        );
    }
    let registry = normal_dependencies("wasmoci-registry");
    for banned in ["clap", "indicatif", "wasmtime", "wasmoci-cli"] {
        assert!(
            !registry.iter().any(|p| p == banned),
            "wasmoci-registry depends on `{banned}`"
        );
    }
}
