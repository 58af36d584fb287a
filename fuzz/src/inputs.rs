//! The targets that take one input each: the bytes go to the function wasmoci calls on
//! them, and what it answers is used the way the commands use it (displayed, rendered
//! again, checked against a policy), so a panic anywhere on that path is found.

use std::path::Path;

use containerd_shim_wasmoci::bundle::Bundle;
use wasmoci_cli::ops::compose::{ComposeOptions, compose_wac};
use wasmoci_cli::ops::deps::lock::Lock;
use wasmoci_cli::project::Project;
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_registry::Reference;
use wasmoci_spec::node_policy::{NodePolicy, Subject};
use wasmoci_spec::{
    Digest, ImageIndex, ImageManifest, WasmConfig, WasmKind, component_section, export_names,
    module_import_names, module_imports_exports, top_level_payloads, validate, validate_wasm,
};

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Manifest, index and config JSON → the `spec` types → [`validate()`], the input
/// taken as each of the three blobs in turn beside good ones.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = ImageManifest::from_json(data) {
        let _ = m.wasm_layers().count();
        let again = ImageManifest::from_json(&m.to_json()).expect("a manifest we wrote parses");
        assert_eq!(
            again.to_json(),
            m.to_json(),
            "a manifest changes when written again"
        );
    }
    if let Ok(i) = ImageIndex::from_json(data) {
        let again = ImageIndex::from_json(&i.to_json()).expect("an index we wrote parses");
        assert_eq!(
            again.to_json(),
            i.to_json(),
            "an index changes when written again"
        );
    }
    if let Ok(c) = WasmConfig::from_json(data) {
        let _ = WasmConfig::from_json(&c.to_json()).expect("a config we wrote parses");
    }
    const MODULE: &[u8] = b"\0asm\x01\0\0\0";
    let good = wasmoci_spec::build_artifact(wasmoci_spec::ArtifactInput::new(
        MODULE,
        wasmoci_spec::Timestamp::from_unix_seconds(0).expect("0 is a time"),
    ))
    .expect("the empty module builds");
    for violations in [
        validate(data, &good.config_bytes, &[MODULE]),
        validate(&good.manifest_bytes, data, &[MODULE]),
        validate(&good.manifest_bytes, &good.config_bytes, &[data]),
        validate(data, data, &[data]),
    ] {
        for v in violations {
            let _ = v.to_string();
        }
    }
}

/// Wasm bytes → module/component detection, the component section, imports and exports,
/// and validation (on one thread and on two, which must agree).
pub fn wasm(data: &[u8]) {
    let _ = WasmKind::detect(data);
    if let Ok(section) = component_section(data) {
        let _ = format!("{section:?}");
    }
    let _ = top_level_payloads(data).map(|p| p.len());
    let _ = module_import_names(data);
    let _ = module_imports_exports(data);
    let _ = export_names(data);
    let features = wasmparser::WasmFeatures::all();
    let one = validate_wasm(data, features, 1).map_err(|e| e.to_string());
    let two = validate_wasm(data, features, 2).map_err(|e| e.to_string());
    assert_eq!(one, two, "validation on one thread and on two disagree");
}

/// Registry references, the command line's artifact names and digests: whatever parses
/// prints as text that parses to the same thing.
pub fn reference(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(r) = text.parse::<Reference>() {
        let shown = r.to_string();
        let again: Reference = shown
            .parse()
            .unwrap_or_else(|e| panic!("`{shown}` (from `{text}`) does not parse: {e}"));
        assert_eq!(again.to_string(), shown, "`{text}` prints two ways");
        let _ = (r.target(), r.is_loopback(), r.repository_path());
        let _ = wasmoci_registry::store::tag_for(&r);
    }
    if let Ok(a) = text.parse::<ArtifactRef>() {
        let _ = a.to_string();
    }
    if let Ok(d) = text.parse::<Digest>() {
        assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d));
    }
    let _ = wasmoci_cli::reference::check_name(text);
    let _ = wasmoci_cli::reference::check_tag(text);
    let _ = wasmoci_registry::name_of(text);
}

/// `wasmoci.toml`.
pub fn project(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Err(e) = Project::parse(text, Path::new("wasmoci.toml")) {
        let _ = e.to_string();
    }
}

/// `wasmoci.lock`: whatever parses renders as a lock that parses to the same rendering.
pub fn lock(data: &[u8]) {
    let Some(text) = text(data) else { return };
    match Lock::parse(text) {
        Ok(lock) => {
            let rendered = lock.render();
            let again = Lock::parse(&rendered)
                .unwrap_or_else(|e| panic!("a rendered lock does not parse: {e}\n{rendered}"));
            assert_eq!(again.render(), rendered, "a lock renders two ways");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// A `WWW-Authenticate` value, parsed as the client parses a registry's 401.
pub fn www_authenticate(data: &[u8]) {
    let Some(text) = text(data) else { return };
    for plain_ok in [false, true] {
        if let Some(url) = wasmoci_registry::client::token_url_for_challenge(text, plain_ok) {
            // The scheme is case-insensitive (`HTTPS://` is TLS too).
            let lower = url.to_ascii_lowercase();
            assert!(
                lower.starts_with("https://") || (plain_ok && lower.starts_with("http://")),
                "`{text}` sends us to `{url}`"
            );
            assert!(
                !url.contains(['\r', '\n', ' ']),
                "`{url}` holds white space"
            );
        }
    }
}

/// A bundle's `config.json`, as containerd writes it from a pod spec → the shim's plan.
pub fn bundle(data: &[u8]) {
    let Ok(bundle) = Bundle::from_json(data) else {
        return;
    };
    match containerd_shim_wasmoci::plan::plan(&bundle, Path::new("/nonexistent/bundle")) {
        Ok(plan) => {
            let _ = format!("{plan:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The node policy file (`/etc/wasmoci/policy.toml`), checked against a subject.
pub fn node_policy(data: &[u8]) {
    let Some(text) = text(data) else { return };
    match NodePolicy::parse(text) {
        Ok(policy) => {
            let repositories = ["registry.example/team/app".to_owned()];
            for checked in policy.check(&Subject {
                repositories: &repositories,
                pinned: true,
                manifest: Some(Digest::of(b"")),
                size: 1 << 20,
            }) {
                let _ = format!("{checked:?}");
            }
            let _ = policy.imports_verdict(["wasi:cli/run@0.2.0", "wasi:http/outgoing-handler"]);
            let _ = policy.allows("registry.example/team/app");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// A WAC document (`app.wac`): parsed, its packages looked for (none is found), its
/// errors placed at a line and column.
pub fn wac(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let mut find = |_: &str, _: Option<&semver::Version>| Err("not found while fuzzing".into());
    if let Err(e) = compose_wac(
        Path::new("app.wac"),
        text,
        &mut find,
        ComposeOptions::default(),
    ) {
        let _ = e.to_string();
    }
}
