//! Images the CRI tests and the cold-start benchmark push to their registry: CNCF Wasm
//! artifacts, the image-compat format, and ordinary (native) images. Shared by
//! `tests/runtime.rs` and `examples/cri_cold_start.rs` through `#[path]`.

use std::collections::BTreeMap;

use wasmoci_registry::client::{Client, ClientOptions};
use wasmoci_registry::{Layout, LayoutRef, Reference};
use wasmoci_spec::{
    ArtifactInput, Blob, Descriptor, ImageInput, Timestamp, build_artifact, build_image,
    media_types,
};
use wasmoci_testdata::registry::TestRegistry;

/// The `created` of everything pushed here, so digests are stable.
pub(crate) fn created() -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000).unwrap()
}

/// Pushes `manifest` with `blobs` to `registry` as `repo:1`; the pullable reference.
pub(crate) fn push(
    registry: &TestRegistry,
    repo: &str,
    manifest: &[u8],
    blobs: &[Blob<'_>],
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path());
    let stored = layout.store(manifest, blobs, Some("1")).unwrap();
    let stored = layout.resolve(&LayoutRef::Digest(stored.digest)).unwrap();
    let reference = format!("{}/{repo}:1", registry.addr);
    Client::new(ClientOptions::default())
        .unwrap()
        .push(&layout, &stored, &reference.parse::<Reference>().unwrap())
        .unwrap();
    reference
}

/// A CNCF Wasm artifact of `wasm`.
pub(crate) fn push_artifact(registry: &TestRegistry, repo: &str, wasm: &[u8]) -> String {
    let artifact = build_artifact(ArtifactInput::new(wasm, created())).unwrap();
    push(registry, repo, &artifact.manifest_bytes, &artifact.blobs())
}

/// The image-compat format: `wasm` at `path` in a tar layer.
#[allow(dead_code, reason = "the benchmark does not use it")]
pub(crate) fn push_image(registry: &TestRegistry, repo: &str, wasm: &[u8], path: &str) -> String {
    let image = build_image(ImageInput {
        wasm,
        created: created(),
        author: None,
        path: path.to_owned(),
        annotations: BTreeMap::new(),
    })
    .unwrap();
    push(
        registry,
        repo,
        &image.manifest_bytes,
        &[Blob::hash(&image.config_bytes), Blob::hash(&image.layer)],
    )
}

/// An ordinary linux/amd64 image: `bytes` at `path` (executable) in a tar layer, with
/// `entrypoint` if given.
pub(crate) fn push_native(
    registry: &TestRegistry,
    repo: &str,
    path: &str,
    bytes: &[u8],
    entrypoint: Option<&str>,
) -> String {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o755);
    header.set_size(bytes.len() as u64);
    builder.append_data(&mut header, path, bytes).unwrap();
    let layer = builder.into_inner().unwrap();
    let layer_descriptor = Descriptor::for_bytes(media_types::OCI_LAYER_TAR, &layer);
    let mut config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_descriptor.digest.to_string()]},
    });
    if let Some(entrypoint) = entrypoint {
        config["config"] = serde_json::json!({ "Entrypoint": [entrypoint] });
    }
    let config = serde_json::to_vec(&config).unwrap();
    let config_descriptor = Descriptor::for_bytes(media_types::OCI_IMAGE_CONFIG, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": config_descriptor,
        "layers": [layer_descriptor],
    }))
    .unwrap();
    push(
        registry,
        repo,
        &manifest,
        &[Blob::hash(&config), Blob::hash(&layer)],
    )
}
