//! A test node's containerd config: `version = 2` for containerd 1.x, `version = 3` for
//! 2.x, from one [`CriSetup`].

use std::path::Path;

use super::{CNI_BIN_DIR, CriSetup};

/// What both config versions start with: where containerd keeps its state and listens
/// (all under `dir`), and the plugins a test node does without.
fn common(version: u32, dir: &Path) -> String {
    let p = |name: &str| dir.join(name).display().to_string();
    let disabled = [
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.blockfile",
        "io.containerd.snapshotter.v1.erofs",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.internal.v1.tracing",
        "io.containerd.nri.v1.nri",
    ];
    format!(
        "version = {version}\nroot = {:?}\nstate = {:?}\ndisabled_plugins = {disabled:?}\n[grpc]\n  address = {address:?}\n[ttrpc]\n  address = \"{address}.ttrpc\"\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = {:?}\n",
        p("root"),
        p("state"),
        p("opt"),
        address = p("containerd.sock"),
    )
}

/// containerd 1.x's config (`version = 2`) for a test node in `dir`.
pub(super) fn config_v2(setup: &CriSetup, dir: &Path) -> String {
    let p = |name: &str| dir.join(name);
    let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
    let config = format!(
        r#"{common}[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[{cri}.containerd]
  snapshotter = "native"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.{runtime_name}]
  runtime_type = "{runtime_type}"
  runtime_path = "{shim}"
  pod_annotations = ["wasmoci.dev/*"]
  container_annotations = ["wasmoci.dev/*"]
[{cri}.cni]
  bin_dir = "{cni_bin}"
  conf_dir = "{cni_conf}"
[{cri}.registry.mirrors."{registry}"]
  endpoint = ["http://{registry}"]
"#,
        common = common(2, dir),
        sandbox_image = setup.sandbox_image,
        shim = setup.shim.display(),
        runtime_name = wasmoci_runtime::containerd::RUNTIME_NAME,
        runtime_type = wasmoci_runtime::containerd::RUNTIME_TYPE,
        cni_bin = CNI_BIN_DIR,
        cni_conf = p("cni").display(),
        registry = setup.registry,
    );
    let mut config = config;
    runtimes(&mut config, cri, setup);
    config
}

/// containerd 2.x's config (`version = 3`, as deploy/containerd/config-v3.toml): CRI's
/// runtime and image plugins split, the pause image pinned, the test registry reached in
/// plain HTTP through a `hosts.toml`. CRI pulls through the transfer service, which
/// unpacks only for the snapshotters its `unpack_config` names (else "no unpack
/// platforms defined"): `native` is named.
pub(super) fn config_v3(setup: &CriSetup, dir: &Path) -> String {
    let p = |name: &str| dir.join(name);
    let hosts = p("certs.d").join(&setup.registry);
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"http://{r}\"\n[host.\"http://{r}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            r = setup.registry
        ),
    )
    .unwrap();
    let runtime = r#"plugins."io.containerd.cri.v1.runtime""#;
    let mut config = format!(
        r#"{common}[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "native"
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{sandbox_image}"
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "{certs}"
[plugins."io.containerd.transfer.v1.local"]
  config_path = "{certs}"
[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = "linux/{arch}"
  snapshotter = "native"
[{runtime}]
  restrict_oom_score_adj = true
[{runtime}.containerd]
  default_runtime_name = "runc"
[{runtime}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{runtime}.containerd.runtimes.{runtime_name}]
  runtime_type = "{runtime_type}"
  runtime_path = "{shim}"
  sandboxer = "podsandbox"
  pod_annotations = ["wasmoci.dev/*"]
  container_annotations = ["wasmoci.dev/*"]
[{runtime}.cni]
  bin_dirs = ["{cni_bin}"]
  conf_dir = "{cni_conf}"
"#,
        common = common(3, dir),
        sandbox_image = setup.sandbox_image,
        certs = p("certs.d").display(),
        shim = setup.shim.display(),
        runtime_name = wasmoci_runtime::containerd::RUNTIME_NAME,
        runtime_type = wasmoci_runtime::containerd::RUNTIME_TYPE,
        cni_bin = CNI_BIN_DIR,
        cni_conf = p("cni").display(),
        arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        },
    );
    runtimes(&mut config, runtime, setup);
    config
}

/// The `wasmoci` runtime's options and the other runtimes, under the CRI runtime plugin
/// `cri`.
fn runtimes(config: &mut String, cri: &str, setup: &CriSetup) {
    if !setup.runtime_options.is_empty() {
        config.push_str(&format!(
            "[{cri}.containerd.runtimes.{}.options]\n",
            wasmoci_runtime::containerd::RUNTIME_NAME
        ));
        for (key, value) in &setup.runtime_options {
            config.push_str(&format!("  {key} = {value:?}\n"));
        }
    }
    for (handler, runtime_type, path) in &setup.other_runtimes {
        config.push_str(&format!(
            "[{cri}.containerd.runtimes.{handler}]\n  runtime_type = \"{runtime_type}\"\n  runtime_path = \"{}\"\n",
            path.display()
        ));
    }
}

/// containerd's major version (`containerd --version`: `containerd <repo> 2.1.9 …`).
pub(super) fn major_version(containerd: &Path) -> u32 {
    let out = std::process::Command::new(containerd)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("failed to run `{} --version`: {e}", containerd.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.trim_start_matches('v').split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("`{}` printed no version: {text}", containerd.display()))
}
