//! Where a container's wasm comes from, besides its root filesystem: containerd's content
//! store (what containerd pulled), or a pull of our own when a pod annotation names a
//! digest.

use std::time::Duration;

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{GetContainerRequest, GetImageRequest, ReadContentRequest};
use containerd_client::tonic::Request;
use containerd_client::with_namespace;
use wasmoci_spec::{Digest, ImageIndex, ImageManifest, WASM_ARCHITECTURE, media_types};

/// The wasm of a container, with where it came from (for messages) and its digest.
pub(crate) struct Loaded {
    /// The module or component.
    pub(crate) wasm: Vec<u8>,
    /// The layer's digest, checked against the bytes.
    pub(crate) digest: Digest,
    /// The image it came from.
    pub(crate) image: String,
}

const CALL_LIMIT: Duration = Duration::from_secs(60);

/// A `Content.Read` of a whole blob, checked against `digest`.
async fn read_blob(
    content: &mut ContentClient<containerd_client::tonic::transport::Channel>,
    namespace: &str,
    digest: &str,
) -> Result<Vec<u8>, String> {
    let expected: Digest = digest
        .parse()
        .map_err(|e| format!("containerd named an invalid digest `{digest}`: {e}"))?;
    let request = ReadContentRequest {
        digest: digest.to_owned(),
        offset: 0,
        size: 0,
    };
    let mut stream = content
        .read(with_namespace!(request, namespace))
        .await
        .map_err(|e| {
            format!(
                "failed to read blob `{digest}` from containerd: {}",
                e.message()
            )
        })?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(|e| {
        format!(
            "failed to read blob `{digest}` from containerd: {}",
            e.message()
        )
    })? {
        bytes.extend_from_slice(&chunk.data);
    }
    expected
        .verify(&bytes)
        .map_err(|e| format!("blob `{digest}` in containerd's content store is corrupt: {e}"))?;
    Ok(bytes)
}

/// container → image → manifest (through an index, the `wasm` entry) → config → layer.
/// `None` when the image is not a Wasm artifact (then the wasm is a file in the rootfs).
async fn from_content_store(
    address: &str,
    namespace: &str,
    container_id: &str,
) -> Result<Option<Loaded>, String> {
    let channel = containerd_client::connect(address)
        .await
        .map_err(|e| format!("failed to connect to containerd at `{address}`: {e}"))?;
    let container = ContainersClient::new(channel.clone())
        .get(with_namespace!(
            GetContainerRequest {
                id: container_id.to_owned()
            },
            namespace
        ))
        .await
        .map_err(|e| {
            format!(
                "failed to look up container `{container_id}` in containerd: {}",
                e.message()
            )
        })?
        .into_inner()
        .container
        .ok_or_else(|| format!("containerd has no container `{container_id}`"))?;
    if container.image.is_empty() {
        return Ok(None);
    }
    let image = container.image;
    let target = ImagesClient::new(channel.clone())
        .get(with_namespace!(
            GetImageRequest {
                name: image.clone()
            },
            namespace
        ))
        .await
        .map_err(|e| {
            format!(
                "failed to look up image `{image}` in containerd: {}",
                e.message()
            )
        })?
        .into_inner()
        .image
        .and_then(|i| i.target)
        .ok_or_else(|| format!("containerd has no image `{image}`"))?;
    let mut content = ContentClient::new(channel);
    let mut manifest_digest = target.digest.clone();
    let mut bytes = read_blob(&mut content, namespace, &manifest_digest).await?;
    if target.media_type == media_types::OCI_INDEX
        || target.media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
    {
        let index = ImageIndex::from_json(&bytes).map_err(|e| format!("image `{image}`: {e}"))?;
        let Some(entry) = index.manifests.iter().find(|m| {
            m.extra
                .get("platform")
                .and_then(|p| p.get("architecture"))
                .is_some_and(|a| a == WASM_ARCHITECTURE)
        }) else {
            return Ok(None);
        };
        manifest_digest = entry.digest.to_string();
        bytes = read_blob(&mut content, namespace, &manifest_digest).await?;
    }
    let manifest = ImageManifest::from_json(&bytes)
        .map_err(|e| format!("image `{image}` (`{manifest_digest}`): {e}"))?;
    let config = read_blob(&mut content, namespace, &manifest.config.digest.to_string()).await?;
    #[derive(serde::Deserialize)]
    struct Platform {
        #[serde(default)]
        architecture: String,
    }
    let platform: Platform = serde_json::from_slice(&config).map_err(|e| {
        format!(
            "failed to parse the config `{}` of image `{image}`: {e}",
            manifest.config.digest
        )
    })?;
    if platform.architecture != WASM_ARCHITECTURE {
        return Ok(None);
    }
    let layers: Vec<_> = manifest.wasm_layers().collect();
    let layer = match layers.as_slice() {
        [] => return Ok(None),
        [(_, layer)] => *layer,
        _ => {
            return Err(format!(
                "image `{image}` has {} wasm layers; wasmoci runs images with exactly one",
                layers.len()
            ));
        }
    };
    let wasm = read_blob(&mut content, namespace, &layer.digest.to_string()).await?;
    Ok(Some(Loaded {
        wasm,
        digest: layer.digest,
        image,
    }))
}

fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, String>>,
    what: &str,
) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start an async runtime: {e}"))?
        .block_on(async {
            tokio::time::timeout(CALL_LIMIT, future)
                .await
                .map_err(|_| format!("{what} took longer than {CALL_LIMIT:?}"))?
        })
}

/// The wasm of container `container_id` from containerd's content store, as runwasi reads
/// it; `None` when its image is not a Wasm artifact.
pub(crate) fn load_from_containerd(
    address: &str,
    namespace: &str,
    container_id: &str,
) -> Result<Option<Loaded>, String> {
    block_on(
        from_content_store(address, namespace, container_id),
        "reading the image from containerd",
    )
}

/// Pulls `reference` (which must pin a digest) into the node's store, unless it is there
/// already, and returns its wasm layer.
pub(crate) fn pull_direct(reference: &str) -> Result<Loaded, String> {
    use wasmoci_registry::client::{Client, ClientOptions};
    use wasmoci_registry::{Layout, LayoutRef, Reference};
    let parsed: Reference = reference
        .parse()
        .map_err(|e| format!("invalid `wasmoci.dev/image` `{reference}`: {e}"))?;
    let Some(digest) = parsed.digest else {
        return Err(format!(
            "`wasmoci.dev/image` `{reference}` must pin a digest (`REF@sha256:…`), so the node runs exactly what was reviewed"
        ));
    };
    let layout = Layout::at(wasmoci_fs::Home::node().store());
    let stored = match layout.resolve(&LayoutRef::Digest(digest)) {
        Ok(stored) => stored,
        Err(_) => {
            let client = Client::new(ClientOptions::default())
                .map_err(|e| format!("failed to set up the registry client: {e}"))?;
            client
                .pull(&parsed, &layout, None)
                .map_err(|e| format!("failed to pull `{reference}`: {e}"))?;
            layout
                .resolve(&LayoutRef::Digest(digest))
                .map_err(|e| format!("failed to read `{reference}` after pulling it: {e}"))?
        }
    };
    let manifest = stored
        .manifest()
        .map_err(|e| format!("failed to read `{reference}`: {e}"))?;
    let layers: Vec<_> = manifest.wasm_layers().collect();
    let [(_, layer)] = layers.as_slice() else {
        return Err(format!(
            "`{reference}` has {} wasm layers; wasmoci runs artifacts with exactly one",
            layers.len()
        ));
    };
    let wasm = layout
        .read_blob(&layer.digest)
        .map_err(|e| format!("failed to read the wasm of `{reference}`: {e}"))?;
    layer
        .digest
        .verify(&wasm)
        .map_err(|e| format!("the wasm of `{reference}` in the node's store is corrupt: {e}"))?;
    Ok(Loaded {
        wasm,
        digest: layer.digest,
        image: reference.to_owned(),
    })
}
