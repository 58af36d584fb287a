use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::{
    Digest, ImageManifest, Os, WASM_ARCHITECTURE, WasmConfig, WasmKind, component_section,
    media_types,
};

/// One way an artifact breaks the CNCF layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Stable, kebab-case identifier, e.g. `config-os` (safe to match on in scripts).
    pub code: &'static str,
    /// Where: a path into the manifest or config, e.g. `manifest.layers[1].digest`.
    pub path: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.code, self.path, self.message)
    }
}

#[derive(Default)]
struct Report(Vec<Violation>);

impl Report {
    fn add(&mut self, code: &'static str, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation {
            code,
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Checks an artifact against the CNCF Wasm OCI artifact layout and returns **every**
/// violation (empty when it conforms).
///
/// `manifest` and `config` are the exact blob bytes; `layers[i]` holds the bytes of
/// `manifest.layers[i]`. Checked: the manifest and config parse; media types; sizes and
/// digests of every blob; exactly one wasm layer; `layerDigests` equals the layer digests
/// in order; `architecture == "wasm"`; `os` agrees with the bytes (`wasip1` for a core
/// module, `wasip2` for a component); `component` present if and only if the layer is a
/// component; its imports and exports equal what the bytes declare.
pub fn validate(manifest: &[u8], config: &[u8], layers: &[&[u8]]) -> Vec<Violation> {
    let mut report = Report::default();
    let manifest = match ImageManifest::from_json(manifest) {
        Ok(m) => m,
        Err(e) => {
            report.add("manifest-json", "manifest", e.to_string());
            return report.0;
        }
    };
    if manifest.schema_version != 2 {
        report.add(
            "manifest-schema-version",
            "manifest.schemaVersion",
            format!("must be 2, found {}", manifest.schema_version),
        );
    }
    if let Some(mt) = &manifest.media_type
        && mt != media_types::OCI_MANIFEST
    {
        report.add(
            "manifest-media-type",
            "manifest.mediaType",
            format!("must be `{}`, found `{mt}`", media_types::OCI_MANIFEST),
        );
    }
    if manifest.config.media_type != media_types::WASM_CONFIG_V0 {
        report.add(
            "config-media-type",
            "manifest.config.mediaType",
            format!(
                "must be `{}`, found `{}`",
                media_types::WASM_CONFIG_V0,
                manifest.config.media_type
            ),
        );
    }
    check_blob(&mut report, "manifest.config", &manifest.config, config);

    for (i, layer) in manifest.layers.iter().enumerate() {
        let path = format!("manifest.layers[{i}]");
        match layers.get(i) {
            Some(bytes) => check_blob(&mut report, &path, layer, bytes),
            None => report.add(
                "layer-missing",
                path.clone(),
                format!("no content for layer `{}`", layer.digest),
            ),
        }
        let mt = &layer.media_type;
        if mt != media_types::WASM_LAYER {
            let message = if media_types::is_readable_wasm_layer(mt) {
                format!(
                    "`{mt}` is another producer's wasm layer type; the CNCF layout uses `{}`",
                    media_types::WASM_LAYER
                )
            } else {
                format!(
                    "`{mt}` is not a wasm layer; the CNCF layout has exactly one `{}` layer",
                    media_types::WASM_LAYER
                )
            };
            report.add("layer-media-type", format!("{path}.mediaType"), message);
        }
    }
    let wasm_layers: Vec<usize> = manifest.wasm_layers().map(|(i, _)| i).collect();
    if wasm_layers.len() != 1 {
        report.add(
            "layer-count",
            "manifest.layers",
            format!(
                "must hold exactly one wasm layer, found {}",
                wasm_layers.len()
            ),
        );
    }

    let config = match WasmConfig::from_json(config) {
        Ok(c) => c,
        Err(e) => {
            report.add("config-json", "config", e.to_string());
            return report.0;
        }
    };
    if config.created.is_none() {
        report.add(
            "config-created",
            "config.created",
            "missing: the build time is required (RFC 3339)",
        );
    }
    if config.architecture != WASM_ARCHITECTURE {
        report.add(
            "config-architecture",
            "config.architecture",
            format!("must be `wasm`, found `{}`", config.architecture),
        );
    }
    match &config.os {
        Os::Wasip1 | Os::Wasip2 => {}
        Os::Missing => report.add(
            "config-os",
            "config.os",
            "missing: must be `wasip1` or `wasip2`",
        ),
        Os::Other(os) => report.add(
            "config-os",
            "config.os",
            format!("must be `wasip1` or `wasip2`, found `{os}`"),
        ),
    }
    let layer_digests: Vec<Digest> = manifest.layers.iter().map(|l| l.digest).collect();
    if config.layer_digests != layer_digests {
        report.add(
            "config-layer-digests",
            "config.layerDigests",
            format!(
                "must list the layer digests in order: expected [{}], found [{}]",
                join(&layer_digests),
                join(&config.layer_digests)
            ),
        );
    }

    // What the bytes say, when there is exactly one wasm layer to read.
    let [index] = wasm_layers[..] else {
        return report.0;
    };
    let Some(bytes) = layers.get(index) else {
        return report.0;
    };
    let path = format!("manifest.layers[{index}]");
    let Some(kind) = WasmKind::detect(bytes) else {
        report.add(
            "layer-not-wasm",
            path,
            "the layer is not a WebAssembly module or component",
        );
        return report.0;
    };
    let expected_os = kind.os();
    if matches!(config.os, Os::Wasip1 | Os::Wasip2) && config.os != expected_os {
        report.add(
            "config-os",
            "config.os",
            format!(
                "the layer is a {kind}, so `os` must be `{expected_os}`, not `{}`",
                config.os
            ),
        );
    }
    match (kind, &config.component) {
        (WasmKind::Module, Some(_)) => report.add(
            "config-component-unexpected",
            "config.component",
            "the layer is a core module, which has no `component` section",
        ),
        (WasmKind::Component, None) => report.add(
            "config-component-missing",
            "config.component",
            "the layer is a component, so the config must list its `imports` and `exports`",
        ),
        (WasmKind::Component, Some(declared)) => match component_section(bytes) {
            Ok(actual) => {
                compare_names(&mut report, "imports", &declared.imports, &actual.imports);
                compare_names(&mut report, "exports", &declared.exports, &actual.exports);
            }
            Err(e) => report.add("layer-component-decode", path, e.to_string()),
        },
        (WasmKind::Module, None) => {}
    }
    report.0
}

/// Checks an image-compat image (what `build_image` writes): the blobs match their
/// descriptors, the config says `architecture: wasm` and the `os` of the wasm, its
/// `rootfs.diff_ids` names the layer, and its `Entrypoint` names a wasm file in the layer.
/// Returns every violation and that wasm, when it was found (to be checked as wasm).
pub fn validate_image(
    manifest: &ImageManifest,
    config: &[u8],
    layer: &[u8],
) -> (Vec<Violation>, Option<Vec<u8>>) {
    let mut report = Report::default();
    check_blob(&mut report, "manifest.config", &manifest.config, config);
    if let Some(descriptor) = manifest.layers.first() {
        check_blob(&mut report, "manifest.layers[0]", descriptor, layer);
    }
    let json: serde_json::Value = match serde_json::from_slice(config) {
        Ok(json) => json,
        Err(e) => {
            report.add("config-json", "config", e.to_string());
            return (report.0, None);
        }
    };
    if json["architecture"] != WASM_ARCHITECTURE {
        report.add(
            "config-architecture",
            "config.architecture",
            format!(
                "must be `{WASM_ARCHITECTURE}`, found {}",
                json["architecture"]
            ),
        );
    }
    let layer_digest = Digest::of(layer).to_string();
    if json["rootfs"]["diff_ids"] != serde_json::json!([layer_digest]) {
        report.add(
            "image-diff-ids",
            "config.rootfs.diff_ids",
            format!(
                "must be [{layer_digest}] (the uncompressed layer), found {}",
                json["rootfs"]["diff_ids"]
            ),
        );
    }
    let wasm = match crate::wasm_in_image(config, layer) {
        Ok(wasm) => wasm,
        Err(e) => {
            report.add("image-wasm", "config.config.Entrypoint", e.to_string());
            return (report.0, None);
        }
    };
    if let Some(kind) = WasmKind::detect(&wasm)
        && json["os"] != kind.os().as_str()
    {
        report.add(
            "config-os",
            "config.os",
            format!(
                "must be `{}` for a {}, found {}",
                kind.os().as_str(),
                kind.as_str(),
                json["os"]
            ),
        );
    }
    (report.0, Some(wasm))
}

fn check_blob(report: &mut Report, path: &str, descriptor: &crate::Descriptor, bytes: &[u8]) {
    if descriptor.size != bytes.len() as u64 {
        report.add(
            "blob-size",
            format!("{path}.size"),
            format!("is {}, the blob has {} bytes", descriptor.size, bytes.len()),
        );
    }
    let actual = Digest::of(bytes);
    if descriptor.digest != actual {
        report.add(
            "blob-digest",
            format!("{path}.digest"),
            format!(
                "says `{}`, the blob hashes to `{actual}`",
                descriptor.digest
            ),
        );
    }
}

fn compare_names(report: &mut Report, field: &str, declared: &[String], actual: &[String]) {
    let declared_set: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
    let actual_set: BTreeSet<&str> = actual.iter().map(String::as_str).collect();
    let missing: Vec<&str> = actual_set.difference(&declared_set).copied().collect();
    let extra: Vec<&str> = declared_set.difference(&actual_set).copied().collect();
    if missing.is_empty() && extra.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "the component declares {} not listed",
            quote(&missing)
        ));
    }
    if !extra.is_empty() {
        parts.push(format!(
            "lists {} the component does not declare",
            quote(&extra)
        ));
    }
    report.add(
        if field == "imports" {
            "config-component-imports"
        } else {
            "config-component-exports"
        },
        format!("config.component.{field}"),
        format!("does not match the layer: {}", parts.join("; ")),
    );
}

fn quote(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(Digest::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
