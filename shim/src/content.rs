//! Where a container's wasm comes from, besides its root filesystem: containerd's content
//! store (what containerd pulled), or a pull of our own when a pod annotation names a
//! digest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{
    GetContainerRequest, GetImageRequest, ListImagesRequest, ReadContentRequest,
};
use containerd_client::tonic::Request;
use containerd_client::with_namespace;
use wasmoci_fs::Home;
use wasmoci_registry::client::{Client, ClientOptions};
use wasmoci_registry::store::{locate, tag_for};

use crate::pull_policy::{PullPolicy, PullRefused, own_addresses};
use wasmoci_registry::{Layout, Reference};
use wasmoci_spec::{Digest, ImageIndex, ImageManifest, WASM_ARCHITECTURE, WasmKind, media_types};

use crate::plan::Source;

/// The wasm of a container, found: its digest and where it came from (for messages); its
/// bytes read already (a file in the root filesystem, hashed to name it) or read only
/// when asked ([`Loaded::read`]: a layer in containerd's content store or the node's
/// store, whose digest the manifest gives), so that a start whose compiled code is cached
/// reads none of it.
pub(crate) struct Loaded {
    /// The wasm's digest (its layer's).
    pub(crate) digest: Digest,
    /// The wasm's size.
    pub(crate) size: u64,
    /// The image it came from.
    pub(crate) image: String,
    /// What is known of that image, for the node policy.
    pub(crate) origin: Origin,
    wasm: Wasm,
}

/// What the node policy needs to know of the image a container's wasm came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// Its names: the one CRI gives, then every other name containerd has for the same
    /// content (containerd 1.7's CRI gives one of them, not always the pod's); the pod's
    /// pinned reference of a direct pull. None: a file in a root filesystem containerd
    /// could not name.
    pub(crate) references: Vec<Reference>,
    /// Whether the first name (CRI's, the pod's) is pinned by a digest. containerd's CRI
    /// also names every pulled image `REPO@DIGEST`, so the other names do not count.
    pub(crate) pinned: bool,
    /// The manifest digest containerd (or our pull) resolved the name to.
    pub(crate) manifest: Option<Digest>,
}

impl Origin {
    /// The origin of containerd's images `names` (the first is CRI's), which resolved to
    /// `target`.
    fn of_images(names: &[String], target: &str) -> Origin {
        let references: Vec<Reference> = names.iter().filter_map(|n| n.parse().ok()).collect();
        Origin {
            pinned: references.first().is_some_and(|r| r.digest.is_some()),
            references,
            manifest: target.parse().ok(),
        }
    }
}

enum Wasm {
    Read(Vec<u8>),
    Taken,
    Containerd { address: String, namespace: String },
    Store(Layout),
}

impl Loaded {
    /// The module or component, read now if it was not yet (kept for [`Loaded::read`]).
    pub(crate) fn bytes(&mut self) -> Result<&[u8], ContentError> {
        if !matches!(self.wasm, Wasm::Read(_)) {
            let taken = Loaded {
                digest: self.digest,
                size: self.size,
                image: self.image.clone(),
                origin: Origin::default(),
                wasm: std::mem::replace(&mut self.wasm, Wasm::Taken),
            };
            self.wasm = Wasm::Read(taken.read()?);
        }
        match &self.wasm {
            Wasm::Read(bytes) => Ok(bytes),
            _ => unreachable!("read just now"),
        }
    }

    /// The module or component, checked against its digest.
    pub(crate) fn read(self) -> Result<Vec<u8>, ContentError> {
        match self.wasm {
            Wasm::Read(bytes) => Ok(bytes),
            Wasm::Taken => unreachable!("`bytes` puts back what it takes"),
            Wasm::Containerd { address, namespace } => {
                let digest = self.digest.to_string();
                block_on(
                    async {
                        let channel = connect(&address).await?;
                        read_blob(&mut ContentClient::new(channel), &namespace, &digest).await
                    },
                    "reading the wasm layer from containerd",
                )
                .map_err(|error| ContentError::ContentStore {
                    image: self.image,
                    error,
                })
            }
            Wasm::Store(layout) => {
                layout
                    .read_blob(&self.digest)
                    .map_err(|error| ContentError::Store {
                        reference: self.image,
                        error: Box::new(error),
                    })
            }
        }
    }
}

const CALL_LIMIT: Duration = Duration::from_secs(60);

/// The most names of one image's content the node policy looks at.
const MAX_NAMES: usize = 64;

/// A channel to containerd's gRPC socket at `address`.
async fn connect(address: &str) -> Result<containerd_client::tonic::transport::Channel, String> {
    containerd_client::connect(address)
        .await
        .map_err(|e| format!("failed to connect to containerd at `{address}`: {e}"))
}

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

/// What containerd knows of a container's image: the wasm, when the image is a Wasm
/// artifact (else it is a file in the rootfs), and the image's origin (none without an
/// image).
struct FromContainerd {
    loaded: Option<Loaded>,
    origin: Origin,
}

/// container → image → manifest (through an index, the `wasm` entry) → config → layer.
async fn from_content_store(
    address: &str,
    namespace: &str,
    container_id: &str,
    named: Option<&str>,
) -> Result<FromContainerd, String> {
    let channel = connect(address).await?;
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
        return Ok(FromContainerd {
            loaded: None,
            origin: Origin::default(),
        });
    }
    // The pod's name for it when CRI gives one: images of the same content share a
    // record, whose name may be another's.
    let image = named.map_or(container.image, str::to_owned);
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
    // Every name of the same content (a bounded list: one node's images).
    let mut names = vec![image.clone()];
    let others = ImagesClient::new(channel.clone())
        .list(with_namespace!(
            ListImagesRequest {
                filters: vec![format!("target.digest=={}", target.digest)],
            },
            namespace
        ))
        .await
        .map(|r| r.into_inner().images)
        .unwrap_or_default();
    for other in others.into_iter().take(MAX_NAMES) {
        if !names.contains(&other.name) {
            names.push(other.name);
        }
    }
    let origin = Origin::of_images(&names, &target.digest);
    let none = |origin: Origin| {
        Ok(FromContainerd {
            loaded: None,
            origin,
        })
    };
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
            return none(origin);
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
        return none(origin);
    }
    let layers: Vec<_> = manifest.wasm_layers().collect();
    let layer = match layers.as_slice() {
        [] => return none(origin),
        [(_, layer)] => *layer,
        _ => {
            return Err(format!(
                "image `{image}` has {} wasm layers; wasmoci runs images with exactly one",
                layers.len()
            ));
        }
    };
    Ok(FromContainerd {
        loaded: Some(Loaded {
            digest: layer.digest,
            size: layer.size,
            image,
            origin: origin.clone(),
            wasm: Wasm::Containerd {
                address: address.to_owned(),
                namespace: namespace.to_owned(),
            },
        }),
        origin,
    })
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
/// it (none when its image is not a Wasm artifact), and its image's origin.
fn load_from_containerd(
    address: &str,
    namespace: &str,
    container_id: &str,
    named: Option<&str>,
) -> Result<FromContainerd, String> {
    block_on(
        from_content_store(address, namespace, container_id, named),
        "reading the image from containerd",
    )
}

/// A container's wasm that cannot be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContentError {
    /// Our own pull failed.
    #[error("failed to pull `{reference}`: {error}")]
    Pull {
        reference: String,
        error: Box<wasmoci_registry::client::RegistryError>,
    },
    /// The node's rules refuse the pull.
    #[error(transparent)]
    Refused(#[from] PullRefused),
    /// The node's store could not be read.
    #[error("failed to read `{reference}` from the node's store: {error}")]
    Store {
        reference: String,
        error: Box<wasmoci_registry::Error>,
    },
    /// The artifact does not have exactly one wasm layer.
    #[error("`{reference}` has {count} wasm layers; wasmoci runs artifacts with exactly one")]
    Layers { reference: String, count: usize },
    /// The wasm layer could not be read from containerd's content store.
    #[error("failed to read the wasm of image `{image}`: {error}")]
    ContentStore { image: String, error: String },
    /// The file in the root filesystem cannot be read.
    #[error(
        "failed to read the component `{path}` from the container's root filesystem `{}`: {error}",
        rootfs.display()
    )]
    Rootfs {
        path: String,
        rootfs: PathBuf,
        error: std::io::Error,
    },
    /// The file is not a module or component.
    #[error(
        "`{path}` is not WebAssembly; wasmoci runs Wasm components and modules, not native containers (use another RuntimeClass for those)"
    )]
    NotWasm { path: String },
}

/// Where to reach containerd's content store: its gRPC socket and namespace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Containerd<'a> {
    pub(crate) address: &'a str,
    pub(crate) namespace: &'a str,
}

/// The wasm of container `id` from `source` (see [`Source`]); containerd's content store
/// is asked only when `containerd` is known.
pub(crate) fn load(
    source: &Source,
    containerd: Option<Containerd<'_>>,
    id: &str,
    policy: &wasmoci_spec::node_policy::NodePolicy,
) -> Result<Loaded, ContentError> {
    let (path, rootfs, named) = match source {
        Source::Pull { reference, .. } => return pull_direct(reference, policy),
        Source::Image {
            path,
            rootfs,
            image,
        } => (path, rootfs, image.as_deref()),
    };
    let mut origin = Origin::default();
    if let Some(containerd) = containerd {
        match load_from_containerd(containerd.address, containerd.namespace, id, named) {
            Ok(FromContainerd {
                loaded: Some(loaded),
                ..
            }) => {
                log::info!(
                    "task `{id}`: wasm `{}` from image `{}` in containerd's content store",
                    loaded.digest,
                    loaded.image
                );
                return Ok(loaded);
            }
            Ok(FromContainerd {
                loaded: None,
                origin: found,
            }) => origin = found,
            // As runwasi: an image we cannot read there may still carry the wasm as a file.
            Err(e) => log::warn!(
                "task `{id}`: {}; looking in the root filesystem instead",
                crate::error::shown(&e)
            ),
        }
    }
    let wasm = read_in_root(rootfs, path).map_err(|error| ContentError::Rootfs {
        path: path.clone(),
        rootfs: rootfs.clone(),
        error,
    })?;
    if WasmKind::detect(&wasm).is_none() {
        return Err(ContentError::NotWasm { path: path.clone() });
    }
    Ok(Loaded {
        digest: Digest::of(&wasm),
        size: wasm.len() as u64,
        image: path.clone(),
        origin,
        wasm: Wasm::Read(wasm),
    })
}

/// Pulls `reference` (pinned by a manifest digest) into the node's store, unless it is
/// there already under that name, and returns its wasm layer.
fn pull_direct(
    reference: &Reference,
    node_policy: &wasmoci_spec::node_policy::NodePolicy,
) -> Result<Loaded, ContentError> {
    let store = |error| ContentError::Store {
        reference: reference.to_string(),
        error: Box::new(error),
    };
    // The node's rules first, for every pod: content another pod's pull left in the
    // store is reused only under this pod's own reference (its name at its digest).
    let policy = PullPolicy::from_env_and(node_policy);
    let own = own_addresses();
    policy.check(reference, &own)?;
    let layout = Layout::at(Home::node().store());
    let stored = match layout.resolve(&locate(reference)) {
        Ok(stored) => stored,
        Err(_) => {
            let pull = |error| ContentError::Pull {
                reference: reference.to_string(),
                error: Box::new(error),
            };
            let options = ClientOptions {
                anonymous: !policy.credentials(reference),
                https_only: !policy.insecure(reference),
                only_addresses: policy.address_filter(reference, own),
                ..ClientOptions::default()
            };
            Client::new(options)
                .map(|client| client.with_notes(|note| log::warn!("{}", crate::error::shown(note))))
                .and_then(|client| client.pull(reference, &layout, Some(&tag_for(reference))))
                .map_err(pull)?;
            layout.resolve(&locate(reference)).map_err(store)?
        }
    };
    let manifest = stored.manifest().map_err(store)?;
    let layers: Vec<_> = manifest.wasm_layers().collect();
    let [(_, layer)] = layers.as_slice() else {
        return Err(ContentError::Layers {
            reference: reference.to_string(),
            count: layers.len(),
        });
    };
    Ok(Loaded {
        digest: layer.digest,
        size: layer.size,
        image: reference.to_string(),
        origin: Origin {
            references: vec![reference.clone()],
            pinned: true,
            manifest: reference.digest,
        },
        wasm: Wasm::Store(layout),
    })
}

/// The largest wasm file read from a root filesystem.
const MAX_WASM_FILE: u64 = 1 << 30;

/// Reads `path` inside `root` as the container would see it: `..` and symlinks, absolute
/// ones included, resolve inside `root` (`openat2` with `RESOLVE_IN_ROOT`), and only a
/// regular file of at most [`MAX_WASM_FILE`] bytes is read. It is found with `O_PATH`
/// (which opens nothing: a device's driver or a fifo's writer never sees us), checked with
/// `fstat`, and only then opened for reading, through that same handle.
pub(crate) fn read_in_root(root: &Path, path: &str) -> std::io::Result<Vec<u8>> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(root)?;
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let found = std::fs::File::from(openat2(&dir, relative, how)?);
    let metadata = found.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if metadata.len() > MAX_WASM_FILE {
        return Err(std::io::Error::other(format!(
            "{} bytes is more than the {MAX_WASM_FILE} a component may have",
            metadata.len()
        )));
    }
    // The same inode, opened for reading through the `O_PATH` handle.
    let file = std::fs::File::open(format!("/proc/self/fd/{}", found.as_raw_fd()))?;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_WASM_FILE).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::read_in_root;

    /// A fifo named as the wasm is refused without being opened: a writer waiting on it
    /// stays blocked (an open for reading would have let it through).
    #[test]
    fn a_fifo_is_refused_without_being_opened() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("app.wasm");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer_path = fifo.clone();
        std::thread::spawn(move || {
            let opened = std::fs::OpenOptions::new().write(true).open(&writer_path);
            let _ = tx.send(opened.is_ok());
        });
        let err = read_in_root(root.path(), "/app.wasm").unwrap_err();
        assert_eq!(err.to_string(), "not a regular file");
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the fifo was opened for reading"
        );
        // Let the writer go.
        let _reader = std::fs::File::open(&fifo).unwrap();
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5)), Ok(true));
        // A regular file reads, through `..` past the root and an absolute symlink, both
        // resolved inside the root.
        std::fs::write(root.path().join("real.wasm"), b"\0asm").unwrap();
        std::os::unix::fs::symlink("/real.wasm", root.path().join("link.wasm")).unwrap();
        assert_eq!(
            read_in_root(root.path(), "../../link.wasm").unwrap(),
            b"\0asm"
        );
    }
}
