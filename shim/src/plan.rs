//! What a task will do, decided from its bundle's `config.json` alone: pure, so every
//! rule from the pod spec to the engine's settings is tested from files
//! (`shim/tests/bundles/`). The effects (pulling, compiling, binding) come after, in
//! [`crate::task::prepare`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wasmoci_registry::Reference;
use wasmoci_runtime::limits::{Limits, MemoryBudget};
use wasmoci_runtime::sandbox::{DirGrant, NetworkGrant, Sandbox};
use wasmoci_runtime::serve::Admission;
use wasmoci_spec::Digest;

use crate::bundle::Bundle;
pub use crate::confine::Confinement;

/// Pod annotations the shim reads (`wasmoci.dev/*`, passed through by containerd's
/// `pod_annotations` / `container_annotations`).
pub mod annotations {
    /// CRI's own: the image as the pod spec names it (set by containerd, not the pod).
    pub const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
    /// `REF@sha256:…`: the shim pulls the wasm itself, pinned by digest.
    pub const IMAGE: &str = "wasmoci.dev/image";
    /// `ADDRESS:PORT` an HTTP component listens on (default [`super::DEFAULT_LISTEN`]).
    pub const LISTEN: &str = "wasmoci.dev/listen";
    /// `true`: the guest may open sockets (in the pod's network namespace).
    pub const ALLOW_NET: &str = "wasmoci.dev/allow-net";
    /// A duration (`30s`, `500ms`): a command's time limit, or each request's (60s
    /// unless given, for an HTTP component).
    pub const TIMEOUT: &str = "wasmoci.dev/timeout";
    /// An HTTP component's requests whose guest runs at once (default 50).
    pub const MAX_CONCURRENT: &str = "wasmoci.dev/max-concurrent";
    /// Requests that may wait for a running one to end; more get 503 (default 1000).
    pub const MAX_QUEUED: &str = "wasmoci.dev/max-queued";
    /// Open connections an HTTP component takes (default 1024).
    pub const MAX_CONNECTIONS: &str = "wasmoci.dev/max-connections";
    /// How long a client may take to send a request's headers (default `10s`).
    pub const HEADER_TIMEOUT: &str = "wasmoci.dev/header-timeout";
}

/// Where an HTTP component listens unless `wasmoci.dev/listen` says otherwise (runwasi's
/// default).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// Mounts under these are CRI's own (`/dev/shm`, `/dev/termination-log`, …), never the
/// pod's volumes: they are not granted to the guest.
const NOT_VOLUMES: [&str; 3] = ["/dev", "/proc", "/sys"];

/// What a task of a bundle does.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The pod sandbox (the pause container): run nothing, hold the pod's network
    /// namespace (the host's when `None`).
    Sandbox {
        /// The pod's network namespace.
        netns: Option<PathBuf>,
    },
    /// A container: run its wasm.
    Container(Box<Container>),
}

/// A container's plan.
#[derive(Debug, Clone)]
pub struct Container {
    /// The wasm's file name (`args[0]` without its directory), for messages.
    pub name: String,
    /// Where the wasm comes from.
    pub source: Source,
    /// `path#func`: the core module function to call instead of `_start`.
    pub entry: Option<String>,
    /// Arguments, environment, the bind mounts that may become directories (those whose
    /// source is not a directory are dropped when the task is created), network.
    pub sandbox: Sandbox,
    /// `linux.resources.memory.limit`: each instance's, and all of them together.
    pub memory_limit: Option<u64>,
    /// `quota / period` as a share of one core.
    pub cpu: Option<f64>,
    /// `wasmoci.dev/timeout`.
    pub timeout: Option<Duration>,
    /// An HTTP component's connections and requests at once (`wasmoci.dev/max-*`,
    /// `wasmoci.dev/header-timeout`).
    pub admission: Admission,
    /// Where an HTTP component listens.
    pub listen: SocketAddr,
    /// The pod's network namespace, which the guest's threads join.
    pub netns: Option<PathBuf>,
    /// The identity, capabilities and cgroup its guest runs with.
    pub confinement: Confinement,
}

/// Where a container's wasm comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `wasmoci.dev/image`: a pull of our own into the node's store, pinned by `digest`.
    Pull {
        /// The reference, as the annotation names it.
        reference: Reference,
        /// The manifest digest it pins.
        digest: Digest,
    },
    /// containerd's content store when the container's image is a Wasm artifact, else the
    /// file `path` inside `rootfs` (the image-compat format).
    Image {
        /// `args[0]` without `#func`.
        path: String,
        /// The container's root filesystem.
        rootfs: PathBuf,
        /// The image as the pod names it (CRI's `io.kubernetes.cri.image-name`): what the
        /// node policy checks (containerd's container record may name another image with
        /// the same content).
        image: Option<String>,
    },
}

/// A bundle the shim cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `process.args` is empty.
    #[error("the container has no `process.args`: set `command:` in the pod spec")]
    NoArgs,
    /// An annotation's value does not parse.
    #[error("invalid `{key}` `{value}`: {reason}")]
    Annotation {
        /// The annotation.
        key: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// `wasmoci.dev/timeout` is not a duration.
    #[error("invalid `wasmoci.dev/timeout`: {0}")]
    Timeout(String),
    /// `wasmoci.dev/image` names no digest.
    #[error(
        "`wasmoci.dev/image` `{0}` must pin a digest (`REF@sha256:…`), so the node runs exactly what was reviewed"
    )]
    Unpinned(String),
    /// `process.capabilities` names a capability this shim does not know.
    #[error("unknown capability `{0}` in `process.capabilities`")]
    Capability(String),
    /// `linux.cgroupsPath` is neither a path nor `slice:prefix:name`.
    #[error("invalid `linux.cgroupsPath` `{value}`: {reason}")]
    CgroupsPath {
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
}

impl Container {
    /// Privileged (`CAP_SYS_ADMIN` in its bounding set, as CRI gives a privileged
    /// container): it may mount the node's pseudo filesystems, and runs unconfined.
    pub fn privileged(&self) -> bool {
        self.confinement.privileged()
    }

    /// The engine's limits: the memory limit bounds each instance and, through `budget`,
    /// all of them together (an HTTP server's requests in flight).
    pub fn limits(&self, budget: std::sync::Arc<MemoryBudget>) -> Limits {
        Limits {
            memory: self.memory_limit,
            total_memory: Some(budget),
            timeout: self.timeout,
            cpu: self.cpu,
            ..Limits::default()
        }
    }
}

/// Decides what the task of `bundle` (a bundle directory at `dir`) does.
pub fn plan(bundle: &Bundle, dir: &std::path::Path) -> Result<Plan, PlanError> {
    if bundle.is_sandbox() {
        return Ok(Plan::Sandbox {
            netns: bundle.network_namespace().map(ToOwned::to_owned),
        });
    }
    let arg0 = bundle.process.args.first().ok_or(PlanError::NoArgs)?;
    let (path, func) = match arg0.split_once('#') {
        Some((path, func)) => (path, Some(func)),
        None => (arg0.as_str(), None),
    };
    let name = std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned());
    let source = match bundle.annotations.get(annotations::IMAGE) {
        Some(reference) => pinned(reference)?,
        None => Source::Image {
            path: path.to_owned(),
            rootfs: bundle.rootfs(dir),
            image: bundle.annotations.get(annotations::CRI_IMAGE_NAME).cloned(),
        },
    };
    let entry = func
        .filter(|f| !f.is_empty() && *f != "_start")
        .map(str::to_owned);
    let timeout = bundle
        .annotations
        .get(annotations::TIMEOUT)
        .map(|text| wasmoci_runtime::units::parse_duration(text).map_err(PlanError::Timeout))
        .transpose()?;
    let network = match bundle.annotations.get(annotations::ALLOW_NET) {
        None => NetworkGrant::None,
        Some(value) if value == "false" => NetworkGrant::None,
        Some(value) if value == "true" => NetworkGrant::All,
        Some(value) => {
            return Err(PlanError::Annotation {
                key: annotations::ALLOW_NET,
                value: value.clone(),
                reason: "expected `true` or `false`".into(),
            });
        }
    };
    let listen = bundle
        .annotations
        .get(annotations::LISTEN)
        .map_or(DEFAULT_LISTEN, String::as_str);
    let listen = listen.parse().map_err(|e| PlanError::Annotation {
        key: annotations::LISTEN,
        value: listen.to_owned(),
        reason: format!("expected `ADDRESS:PORT` ({e})"),
    })?;
    let admission = admission(bundle)?;
    let env = bundle
        .process
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok(Plan::Container(Box::new(Container {
        name,
        source,
        entry,
        sandbox: Sandbox {
            args: bundle.process.args.clone(),
            env,
            dirs: volumes(bundle),
            network,
            entry: None,
        },
        memory_limit: bundle.memory_limit(),
        cpu: bundle.cpu_share(),
        timeout,
        admission,
        listen,
        netns: bundle.network_namespace().map(ToOwned::to_owned),
        confinement: Confinement::of(bundle)?,
    })))
}

/// `wasmoci.dev/max-*` and `wasmoci.dev/header-timeout` over the defaults.
fn admission(bundle: &Bundle) -> Result<Admission, PlanError> {
    let mut admission = Admission::default();
    let count = |key: &'static str, least: usize, into: &mut usize| {
        let Some(value) = bundle.annotations.get(key) else {
            return Ok(());
        };
        match value.parse::<usize>() {
            Ok(n) if n >= least => {
                *into = n;
                Ok(())
            }
            _ => Err(PlanError::Annotation {
                key,
                value: value.clone(),
                reason: format!("expected a whole number, at least {least}"),
            }),
        }
    };
    count(
        annotations::MAX_CONCURRENT,
        1,
        &mut admission.max_concurrent,
    )?;
    count(annotations::MAX_QUEUED, 0, &mut admission.max_queued)?;
    count(
        annotations::MAX_CONNECTIONS,
        1,
        &mut admission.max_connections,
    )?;
    if let Some(value) = bundle.annotations.get(annotations::HEADER_TIMEOUT) {
        admission.header_timeout =
            wasmoci_runtime::units::parse_duration(value).map_err(|reason| {
                PlanError::Annotation {
                    key: annotations::HEADER_TIMEOUT,
                    value: value.clone(),
                    reason,
                }
            })?;
    }
    Ok(admission)
}

/// Bind mounts that are the pod's volumes, as directory grants (read-only when `ro`).
fn volumes(bundle: &Bundle) -> Vec<DirGrant> {
    bundle
        .mounts
        .iter()
        .filter(|m| m.kind.as_deref() == Some("bind"))
        .filter(|m| {
            !NOT_VOLUMES
                .iter()
                .any(|d| m.destination == *d || m.destination.starts_with(&format!("{d}/")))
        })
        .filter_map(|m| {
            Some(DirGrant {
                host: m.source.clone()?,
                guest: m.destination.clone(),
                read_only: m.options.iter().any(|o| o == "ro"),
            })
        })
        .collect()
}

fn pinned(reference: &str) -> Result<Source, PlanError> {
    let parsed: Reference = reference.parse().map_err(|e| PlanError::Annotation {
        key: annotations::IMAGE,
        value: reference.to_owned(),
        reason: format!("{e}"),
    })?;
    let digest = parsed
        .digest
        .ok_or_else(|| PlanError::Unpinned(reference.to_owned()))?;
    Ok(Source::Pull {
        reference: parsed,
        digest,
    })
}
