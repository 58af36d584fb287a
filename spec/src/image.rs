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

/// Whether `manifest` is an image-compat image (what [`build_image`] writes, or an image
/// like it): an OCI image config and one uncompressed tar layer, no wasm layer.
pub fn is_image(manifest: &ImageManifest) -> bool {
    manifest.config.media_type == media_types::OCI_IMAGE_CONFIG
        && manifest.layers.len() == 1
        && manifest.layers[0].media_type == media_types::OCI_LAYER_TAR
}

/// The path of the wasm in an image-compat image: its config's `Entrypoint[0]`, checked
/// as [`build_image`] checks it.
pub fn image_entrypoint(config: &[u8]) -> Result<String, Error> {
    let config: serde_json::Value = serde_json::from_slice(config)
        .map_err(|e| Error::ImageWasm(format!("the config is not JSON: {e}")))?;
    let path = config["config"]["Entrypoint"][0]
        .as_str()
        .ok_or_else(|| Error::ImageWasm("the config has no `config.Entrypoint`".into()))?;
    check_path(path)?;
    Ok(path.to_owned())
}

/// The wasm of an image-compat image: the file its config's `Entrypoint` names, read
/// from the tar `layer` (already in memory, so no entry can be larger than it).
pub fn wasm_in_image(config: &[u8], layer: &[u8]) -> Result<Vec<u8>, Error> {
    let path = image_entrypoint(config)?;
    let wanted = path.trim_start_matches('/');
    let bad = |e: std::io::Error| Error::ImageWasm(format!("the layer is not a tar archive: {e}"));
    let mut archive = tar::Archive::new(layer);
    let mut found = None;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.display().to_string();
        let name = name.trim_start_matches("./").trim_start_matches('/');
        if name != wanted || entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        // The last entry of a path wins, as when a layer is unpacked.
        let mut wasm = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut wasm).map_err(bad)?;
        found = Some(wasm);
    }
    let wasm = found.ok_or_else(|| {
        Error::ImageWasm(format!(
            "the layer has no file `{path}` (the config's `Entrypoint`)"
        ))
    })?;
    if WasmKind::detect(&wasm).is_none() {
        return Err(Error::ImageWasm(format!(
            "`{path}` in the layer is not a WebAssembly binary"
        )));
    }
    Ok(wasm)
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
    fn the_wasm_is_read_back_from_the_image() {
        let image = build_image(input("/app/hello.wasm")).unwrap();
        assert!(is_image(&image.manifest));
        assert_eq!(
            wasm_in_image(&image.config_bytes, &image.layer).unwrap(),
            b"\0asm\x01\0\0\0"
        );
        let other = build_image(input("/other.wasm")).unwrap();
        let err = wasm_in_image(&other.config_bytes, &image.layer).unwrap_err();
        assert!(err.to_string().contains("no file `/other.wasm`"), "{err}");
        let escaping = br#"{"config": {"Entrypoint": ["/../etc/passwd.wasm"]}}"#;
        assert!(matches!(
            wasm_in_image(escaping, &image.layer),
            Err(Error::ImagePath(_))
        ));
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
