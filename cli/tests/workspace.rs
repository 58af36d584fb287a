//! The dependency rules of ARCHITECTURE.md, checked on the real dependency tree.

use std::process::Command;

fn normal_dependencies(package: &str) -> Vec<String> {
    dependencies(package, "normal")
}

/// Every package `package` reaches through `edges` (`normal`, `normal,build`, …).
fn dependencies(package: &str, edges: &str) -> Vec<String> {
    let workspace = wasmoci_testdata::root().parent().unwrap();
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            edges,
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
    assert!(
        !runtime.iter().any(|p| p == "wasmoci-registry"),
        "wasmoci-runtime depends on `wasmoci-registry`: the engine and the registry are siblings"
    );
    for banned in ["clap", "indicatif", "wasmtime", "wasmoci-cli"] {
        assert!(
            !registry.iter().any(|p| p == banned),
            "wasmoci-registry depends on `{banned}`"
        );
    }
}

/// containerd's gRPC and ttrpc stacks (and `protoc`, which their build scripts run) are the
/// shim's alone: the CLI, the engine, the format, the registry client and the fixtures
/// build without them (README command 1 on a machine without protoc).
#[test]
fn only_the_shim_reaches_containerd_and_protoc() {
    let banned = [
        "containerd-client",
        "containerd-shim",
        "tonic",
        "prost-build",
        "tonic-build",
        "k8s-cri",
    ];
    for package in [
        "wasmoci-cli",
        "wasmoci-runtime",
        "wasmoci-spec",
        "wasmoci-registry",
        "wasmoci-fs",
        "wasmoci-testdata",
    ] {
        let tree = dependencies(package, "normal,build");
        assert!(tree.len() > 1, "unexpected tree of `{package}`: {tree:?}");
        for name in banned {
            assert!(
                !tree.iter().any(|p| p == name),
                "`{package}` reaches `{name}` (only `containerd-shim-wasmoci` may)"
            );
        }
    }
    let shim = dependencies("containerd-shim-wasmoci", "normal");
    assert!(
        shim.iter().any(|p| p == "containerd-shim"),
        "the scan found no containerd in the shim: {shim:?}"
    );
}
