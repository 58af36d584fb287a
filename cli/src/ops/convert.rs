//! The image-compat format: the wasm of an artifact as a file in an ordinary container
//! image, for containerd before 1.6.25/1.7.7.

use wasmoci_registry::{Layout, LayoutRef, StoredArtifact};
use wasmoci_spec::{Blob, ImageInput, Timestamp, annotations, build_image};

use crate::ops::artifact::{Blobs, StoredParts};
use crate::ops::{Error, Result};

/// Builds the image-compat form of `stored` (from `layout`, named `source` in messages)
/// into `into` under `tag`, with the wasm at `path` (default: `/` + the layer's title,
/// or `/app.wasm`).
pub fn convert_into(
    layout: &Layout,
    stored: &StoredArtifact,
    source: &str,
    path: Option<&str>,
    into: &Layout,
    tag: &str,
) -> Result<StoredArtifact> {
    // Whatever `run` reads: a Wasm artifact, another tool's (Spin, runwasi), an image.
    let parts = StoredParts::read(
        layout.clone(),
        stored.clone(),
        source.to_owned(),
        Blobs::Verified,
    )?;
    let manifest = parts.manifest()?;
    let wasm = parts.wasm()?;
    let (created, author) = parts.created_author();
    let title = (!wasm.in_image)
        .then(|| wasm.layer.annotation(annotations::TITLE))
        .flatten();
    let path = match path {
        Some(path) => path.to_owned(),
        None => match title {
            Some(title) if title.ends_with(".wasm") && !title.contains('/') => format!("/{title}"),
            _ => "/app.wasm".to_owned(),
        },
    };
    let mut kept = manifest.annotations.clone().unwrap_or_default();
    kept.remove(annotations::REF_NAME);
    let image = build_image(ImageInput {
        wasm: &wasm.bytes,
        created: created.unwrap_or_else(|| Timestamp::from_unix_seconds(0).expect("in range")),
        author,
        path,
        annotations: kept,
    })
    .map_err(|e| Error::Convert {
        name: source.to_owned(),
        source: e,
    })?;
    let blobs = [Blob::hash(&image.config_bytes), Blob::hash(&image.layer)];
    into.store(&image.manifest_bytes, &blobs, Some(tag))?;
    Ok(into.resolve(&LayoutRef::Digest(image.manifest_digest))?)
}
