//! The image-compat format: the wasm of an artifact as a file in an ordinary container
//! image, for containerd before 1.6.25/1.7.7.

use wasmoci_registry::{Layout, LayoutRef, StoredArtifact};
use wasmoci_spec::{ImageInput, Timestamp, WasmConfig, annotations, build_image, media_types};

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
    let manifest = stored.manifest()?;
    if manifest.config.media_type != media_types::WASM_CONFIG_V0 {
        return Err(Error::NotWasm {
            name: source.to_owned(),
            config: manifest.config.media_type,
        });
    }
    let (_, layer) = manifest
        .wasm_layers()
        .next()
        .ok_or_else(|| Error::NoWasmLayer(source.to_owned()))?;
    let config =
        WasmConfig::from_json(&layout.read_blob(&manifest.config.digest)?).map_err(|e| {
            Error::ReadConfig {
                name: source.to_owned(),
                source: e.into(),
            }
        })?;
    let wasm = layout.read_blob(&layer.digest)?;
    let path = match path {
        Some(path) => path.to_owned(),
        None => match layer.annotation(annotations::TITLE) {
            Some(title) if title.ends_with(".wasm") && !title.contains('/') => format!("/{title}"),
            _ => "/app.wasm".to_owned(),
        },
    };
    let mut kept = manifest.annotations.clone().unwrap_or_default();
    kept.remove(annotations::REF_NAME);
    let image = build_image(ImageInput {
        wasm: &wasm,
        created: config
            .created
            .unwrap_or_else(|| Timestamp::from_unix_seconds(0).expect("in range")),
        author: config.author.clone(),
        path,
        annotations: kept,
    })
    .map_err(|e| Error::Convert {
        name: source.to_owned(),
        source: e,
    })?;
    let blobs = [
        (&image.manifest.config, image.config_bytes.as_slice()),
        (&image.manifest.layers[0], image.layer.as_slice()),
    ];
    into.store(&image.manifest_bytes, &blobs, Some(tag))?;
    Ok(into.resolve(&LayoutRef::Digest(image.manifest_digest))?)
}
