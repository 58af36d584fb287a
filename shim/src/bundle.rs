//! The parts of an OCI bundle's runtime spec (`config.json`) the shim reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `config.json` of an OCI bundle.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Bundle {
    /// The process to run.
    #[serde(default)]
    pub(crate) process: Process,
    /// The root filesystem.
    #[serde(default)]
    pub(crate) root: Option<Root>,
    /// Mounts.
    #[serde(default)]
    pub(crate) mounts: Vec<Mount>,
    /// Annotations (CRI puts `io.kubernetes.cri.*` and `wasmoci.dev/*` here).
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
    /// Linux settings.
    #[serde(default)]
    pub(crate) linux: Option<Linux>,
}

/// `process`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Process {
    /// `argv`; `args[0]` names the wasm (`path[#func]`).
    #[serde(default)]
    pub(crate) args: Vec<String>,
    /// `KEY=VALUE` entries.
    #[serde(default)]
    pub(crate) env: Vec<String>,
    /// The capabilities CRI gives the container.
    #[serde(default)]
    pub(crate) capabilities: Option<Capabilities>,
    /// Who the container runs as (`runAsUser`, `runAsGroup`, `fsGroup`,
    /// `supplementalGroups`).
    #[serde(default)]
    pub(crate) user: User,
    /// `allowPrivilegeEscalation: false`.
    #[serde(default, rename = "noNewPrivileges")]
    pub(crate) no_new_privileges: bool,
}

/// `process.user`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct User {
    /// The user id.
    #[serde(default)]
    pub(crate) uid: u32,
    /// The group id.
    #[serde(default)]
    pub(crate) gid: u32,
    /// The supplementary groups.
    #[serde(default, rename = "additionalGids")]
    pub(crate) additional_gids: Vec<u32>,
    /// The umask.
    #[serde(default)]
    pub(crate) umask: Option<u32>,
}

/// `process.capabilities`: capability names (`CAP_CHOWN`, …) by set.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Capabilities {
    /// The bounding set: what the container could ever have.
    #[serde(default)]
    pub(crate) bounding: Vec<String>,
    /// The effective set.
    #[serde(default)]
    pub(crate) effective: Vec<String>,
    /// The permitted set.
    #[serde(default)]
    pub(crate) permitted: Vec<String>,
    /// The inheritable set.
    #[serde(default)]
    pub(crate) inheritable: Vec<String>,
    /// The ambient set.
    #[serde(default)]
    pub(crate) ambient: Vec<String>,
}

/// `root`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Root {
    /// The root filesystem, relative to the bundle unless absolute.
    pub(crate) path: PathBuf,
}

/// A mount.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Mount {
    /// Where the guest sees it.
    pub(crate) destination: String,
    /// `bind`, `proc`, `tmpfs`, …
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    /// The host path (for binds).
    #[serde(default)]
    pub(crate) source: Option<PathBuf>,
    /// `ro`, `rbind`, …
    #[serde(default)]
    pub(crate) options: Vec<String>,
}

/// `linux`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Linux {
    /// Resource limits.
    #[serde(default)]
    pub(crate) resources: Option<Resources>,
    /// The namespaces to join or create.
    #[serde(default)]
    pub(crate) namespaces: Vec<Namespace>,
    /// The container's cgroup: a path (cgroupfs driver) or `slice:prefix:name` (systemd
    /// driver).
    #[serde(default, rename = "cgroupsPath")]
    pub(crate) cgroups_path: Option<String>,
}

/// `linux.namespaces[]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Namespace {
    /// `network`, `pid`, `ipc`, `uts`, `mount`, …
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The namespace to join; none means a new one.
    #[serde(default)]
    pub(crate) path: Option<PathBuf>,
}

/// `linux.resources`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Resources {
    /// Memory.
    #[serde(default)]
    pub(crate) memory: Option<Memory>,
    /// CPU.
    #[serde(default)]
    pub(crate) cpu: Option<Cpu>,
    /// Processes.
    #[serde(default)]
    pub(crate) pids: Option<Pids>,
}

/// `linux.resources.pids`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Pids {
    /// The most tasks (threads) the cgroup may hold; 0 or less: no limit.
    #[serde(default)]
    pub(crate) limit: i64,
}

/// `linux.resources.cpu`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Cpu {
    /// CFS quota in microseconds per period.
    #[serde(default)]
    pub(crate) quota: Option<i64>,
    /// CFS period in microseconds.
    #[serde(default)]
    pub(crate) period: Option<u64>,
}

/// `linux.resources.memory`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Memory {
    /// Bytes.
    #[serde(default)]
    pub(crate) limit: Option<i64>,
}

/// A `config.json` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} `{}`: {reason}", path.display())]
pub struct BundleError {
    action: &'static str,
    path: PathBuf,
    reason: String,
}

impl Bundle {
    /// Reads `bundle/config.json`.
    pub fn load(bundle: &Path) -> Result<Bundle, BundleError> {
        let path = bundle.join("config.json");
        let error = |action, reason: String| BundleError {
            action,
            path: path.clone(),
            reason,
        };
        let bytes = std::fs::read(&path).map_err(|e| error("read", e.to_string()))?;
        Self::from_json(&bytes).map_err(|e| error("parse", e.to_string()))
    }

    /// Parses a `config.json`.
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<Bundle> {
        serde_json::from_slice(bytes)
    }

    /// The root filesystem directory.
    pub(crate) fn rootfs(&self, bundle: &Path) -> PathBuf {
        match &self.root {
            Some(root) if root.path.is_absolute() => root.path.clone(),
            Some(root) => bundle.join(&root.path),
            None => bundle.join("rootfs"),
        }
    }

    /// Whether this is the pod sandbox (the pause container) under CRI.
    pub(crate) fn is_sandbox(&self) -> bool {
        self.annotations
            .get("io.kubernetes.cri.container-type")
            .is_some_and(|t| t == "sandbox")
    }

    /// The network namespace to join, if the spec names one (a pod's, not the host's).
    pub(crate) fn network_namespace(&self) -> Option<&Path> {
        self.linux
            .as_ref()?
            .namespaces
            .iter()
            .find(|n| n.kind == "network")?
            .path
            .as_deref()
    }

    /// The CPU limit as a share of one core (`quota / period`), if one is set.
    pub(crate) fn cpu_share(&self) -> Option<f64> {
        let cpu = self.linux.as_ref()?.resources.as_ref()?.cpu.as_ref()?;
        let quota = cpu.quota.filter(|q| *q > 0)?;
        let period = cpu.period.filter(|p| *p > 0).unwrap_or(100_000);
        Some(quota as f64 / period as f64)
    }

    /// The memory limit in bytes, if one is set.
    pub(crate) fn memory_limit(&self) -> Option<u64> {
        let limit = self
            .linux
            .as_ref()?
            .resources
            .as_ref()?
            .memory
            .as_ref()?
            .limit?;
        u64::try_from(limit).ok().filter(|l| *l > 0)
    }
}
