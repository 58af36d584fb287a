//! The image-compat format: the wasm as a file in an ordinary container image, for
//! containerd versions that cannot pull Wasm artifacts (1.6 before 1.6.25, 1.7 before
//! 1.7.7). One uncompressed tar layer holds the `.wasm`; the config is an OCI image config
//! with `architecture: wasm`, `os: wasip1|wasip2` and an `Entrypoint` naming the file, so
//! a pod needs no `command:`.

use std::collections::BTreeMap;

use serde_json::json;

use crate::{
    Descriptor, Digest, Error, ImageManifest, Timestamp, WASM_ARCHITECTURE, WasmKind, media_types,
};

/// What goes into an image-compat image. As with artifacts, the same input always gives
/// the same digests.
#[derive(Debug, Clone)]
pub struct ImageInput<'a> {
    /// The module or component.
    pub wasm: &'a [u8],
    /// The config's `created`, the file's modification time, and the
    /// `org.opencontainers.image.created` annotation unless `annotations` sets it.
    pub created: Timestamp,
    /// The config's `author`.
    pub author: Option<String>,
    /// Where the wasm goes in the image, absolute (`/app.wasm`); also the `Entrypoint`.
    pub path: String,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A built image-compat image: the layer, the config and the manifest, with their bytes.
#[derive(Debug, Clone)]
pub struct Image {
    /// The tar layer.
    pub layer: Vec<u8>,
    /// The OCI image config blob.
    pub config_bytes: Vec<u8>,
    /// The manifest.
    pub manifest: ImageManifest,
    /// Its serialization.
    pub manifest_bytes: Vec<u8>,
    /// The digest of `manifest_bytes`.
    pub manifest_digest: Digest,
}

fn check_path(path: &str) -> Result<&str, Error> {
    let relative = path
        .strip_prefix('/')
        .filter(|p| p.ends_with(".wasm") && p.len() > ".wasm".len())
        .filter(|p| p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
        .ok_or_else(|| Error::ImagePath(path.to_owned()))?;
    Ok(relative)
}

/// One tar entry for `relative`, with fixed owner and times; directories above it first.
fn tar_layer(relative: &str, wasm: &[u8], mtime: u64) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let components: Vec<&str> = relative.split('/').collect();
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_size(size);
        header
    };
    for depth in 1..components.len() {
        let dir = format!("{}/", components[..depth].join("/"));
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        builder
            .append_data(&mut h, dir, std::io::empty())
            .expect("writing to a Vec cannot fail");
    }
    let mut h = header(tar::EntryType::Regular, 0o644, wasm.len() as u64);
    builder
        .append_data(&mut h, relative, wasm)
        .expect("writing to a Vec cannot fail");
    builder.into_inner().expect("writing to a Vec cannot fail")
}

/// Builds an image-compat image holding `input.wasm` at `input.path`.
pub fn build_image(input: ImageInput<'_>) -> Result<Image, Error> {
    let kind = WasmKind::detect(input.wasm).ok_or(Error::NotWasm)?;
    let relative = check_path(&input.path)?;
    let mtime = u64::try_from(input.created.unix_seconds()).unwrap_or(0);
    let layer = tar_layer(relative, input.wasm, mtime);
    let layer_descriptor = Descriptor::for_bytes(media_types::OCI_LAYER_TAR, &layer);
    let mut config = json!({
        "created": input.created.to_string(),
        "architecture": WASM_ARCHITECTURE,
        "os": kind.os().as_str(),
        "config": { "Entrypoint": [input.path] },
        "rootfs": { "type": "layers", "diff_ids": [layer_descriptor.digest.to_string()] },
    });
    if let Some(author) = input.author {
        config["author"] = author.into();
    }
    let config_bytes = serde_json::to_vec(&config).expect("a config always serializes");
    let manifest = ImageManifest::single_layer(
        Descriptor::for_bytes(media_types::OCI_IMAGE_CONFIG, &config_bytes),
        layer_descriptor,
        input.annotations,
        input.created,
    );
    let manifest_bytes = manifest.to_json();
    Ok(Image {
        layer,
        config_bytes,
        manifest_digest: Digest::of(&manifest_bytes),
        manifest,
        manifest_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(path: &str) -> ImageInput<'static> {
        ImageInput {
            wasm: b"\0asm\x01\0\0\0",
            created: Timestamp::from_unix_seconds(1_700_000_000).unwrap(),
            author: None,
            path: path.to_owned(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn layer_holds_the_wasm_at_its_path_and_config_names_it() {
        let image = build_image(input("/app/hello.wasm")).unwrap();
        let mut archive = tar::Archive::new(image.layer.as_slice());
        let entries: Vec<(String, Vec<u8>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
                (e.path().unwrap().display().to_string(), bytes)
            })
            .collect();
        assert_eq!(entries[0].0, "app/");
        assert_eq!(
            entries[1],
            ("app/hello.wasm".into(), b"\0asm\x01\0\0\0".to_vec())
        );
        let config: serde_json::Value = serde_json::from_slice(&image.config_bytes).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip1");
        assert_eq!(config["config"]["Entrypoint"][0], "/app/hello.wasm");
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            Digest::of(&image.layer).to_string()
        );
        assert_eq!(
            image.manifest.config.media_type,
            media_types::OCI_IMAGE_CONFIG
        );
        assert_eq!(
            image.manifest.layers[0].media_type,
            media_types::OCI_LAYER_TAR
        );
        let again = build_image(input("/app/hello.wasm")).unwrap();
        assert_eq!(again.manifest_digest, image.manifest_digest);
    }

    #[test]
    fn refuses_paths_that_escape_or_are_not_wasm() {
        for bad in [
            "app.wasm",
            "/",
            "/.wasm",
            "/a/../b.wasm",
            "//a.wasm",
            "/a.txt",
        ] {
            assert!(
                matches!(build_image(input(bad)), Err(Error::ImagePath(_))),
                "{bad}"
            );
        }
    }
}
