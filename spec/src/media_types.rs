//! Media types of the CNCF Wasm OCI artifact layout, and the wasm layer types other
//! producers use, which we read but never write.
//!
//! Note: `oci-client` exports `WASM_LAYER_MEDIA_TYPE` / `WASM_CONFIG_MEDIA_TYPE` constants
//! too; those are the 2020 wasm-to-oci types, not the CNCF ones. Use these.

/// An OCI image manifest. The CNCF layout is a plain image manifest (no index, no
/// `artifactType`).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index, as in a layout's `index.json`.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The config blob of a Wasm artifact.
pub const WASM_CONFIG_V0: &str = "application/vnd.wasm.config.v0+json";
/// The one layer of a Wasm artifact: a core module or a component.
pub const WASM_LAYER: &str = "application/wasm";

/// The config of an ordinary container image (the image-compat format's config).
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed tar layer (the image-compat format's one layer).
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// The empty descriptor's media type (OCI 1.1): an artifact manifest's config `{}`.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// runwasi's `oci-tar-builder` layer type (read only).
pub const RUNWASI_COMPONENT_LAYER: &str =
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
/// Spin's component layer type (read only).
pub const SPIN_CONTENT_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// The solo.io / wasmCloud layer type from before the CNCF layout (read only).
pub const LEGACY_MODULE_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// Every wasm layer type we accept when reading, the CNCF one first.
pub const READABLE_WASM_LAYERS: [&str; 4] = [
    WASM_LAYER,
    RUNWASI_COMPONENT_LAYER,
    SPIN_CONTENT_LAYER,
    LEGACY_MODULE_LAYER,
];

/// Whether `media_type` is a wasm layer type we can read.
pub fn is_readable_wasm_layer(media_type: &str) -> bool {
    READABLE_WASM_LAYERS.contains(&media_type)
}
