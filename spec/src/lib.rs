//! The CNCF *Wasm OCI artifact* layout as plain Rust types.
//!
//! This crate is the format and nothing else: media types, the typed config
//! (`application/vnd.wasm.config.v0+json`), OCI manifests and layout indexes, SHA-256
//! digests, the module/component distinction, the imports and exports a component
//! declares, deterministic artifact building, and [`validate()`], which reports every
//! violation of the layout at once. It never touches the file system, the network, the
//! clock or the environment: callers pass bytes and timestamps in.
//!
//! ```
//! use wasmoci_spec::{ArtifactInput, build_artifact, validate, Timestamp};
//!
//! // The smallest core module: a wasip1 artifact.
//! let wasm = b"\0asm\x01\0\0\0".to_vec();
//! let created = Timestamp::from_unix_seconds(0).unwrap();
//! let artifact = build_artifact(ArtifactInput::new(&wasm, created)).unwrap();
//! assert_eq!(artifact.config.os.as_str(), "wasip1");
//! assert!(artifact.config.component.is_none());
//! let violations = validate(&artifact.manifest_bytes, &artifact.config_bytes, &[&wasm]);
//! assert!(violations.is_empty(), "{violations:?}");
//! ```

mod artifact;
mod blob;
mod config;
pub mod deps;
mod digest;
mod error;
mod image;
mod manifest;
pub mod media_types;
pub mod node_policy;
pub mod policy;
mod text;
mod timestamp;
pub mod units;
mod validate;
mod wasm;

pub use artifact::{Artifact, ArtifactInput, build_artifact};
pub use blob::Blob;
pub use config::{ComponentSection, Os, WASM_ARCHITECTURE, WasmConfig};
pub use digest::{Digest, DigestError, DigestWriter, HashingReader};
pub use error::{Error, Result};
pub use image::{Image, ImageInput, build_image, image_entrypoint, is_image, wasm_in_image};
pub use manifest::{Descriptor, ImageIndex, ImageManifest, annotations};
pub use text::escape_controls;
pub use timestamp::Timestamp;
pub use validate::{Violation, validate, validate_image};
pub use wasm::{
    WasmError, WasmKind, WitDecodeError, component_section, decode_wit, export_names,
    is_meaningful_world, module_import_names, module_imports_exports, top_level_payloads,
    validate_wasm, wasm_features,
};
