//! The parts of an OCI runtime spec (`config.json` in the bundle) the shim reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `config.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Spec {
    /// The process to run.
    #[serde(default)]
    pub process: Process,
    /// The root filesystem.
    #[serde(default)]
    pub root: Option<Root>,
    /// Mounts.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Annotations (CRI puts `io.kubernetes.cri.*` and `wasmoci.dev/*` here).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Linux settings.
    #[serde(default)]
    pub linux: Option<Linux>,
}

/// `process`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Process {
    /// `argv`; `args[0]` names the wasm (`path[#func]`).
    #[serde(default)]
    pub args: Vec<String>,
    /// `KEY=VALUE` entries.
    #[serde(default)]
    pub env: Vec<String>,
}

/// `root`.
#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    /// The root filesystem, relative to the bundle unless absolute.
    pub path: PathBuf,
    /// Read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// A mount.
#[derive(Debug, Clone, Deserialize)]
pub struct Mount {
    /// Where the guest sees it.
    pub destination: String,
    /// `bind`, `proc`, `tmpfs`, …
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The host path (for binds).
    #[serde(default)]
    pub source: Option<PathBuf>,
    /// `ro`, `rbind`, …
    #[serde(default)]
    pub options: Vec<String>,
}

/// `linux`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Linux {
    /// Resource limits.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// The namespaces to join or create.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
}

/// `linux.namespaces[]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Namespace {
    /// `network`, `pid`, `ipc`, `uts`, `mount`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The namespace to join; none means a new one.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

/// `linux.resources`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    /// Memory.
    #[serde(default)]
    pub memory: Option<Memory>,
    /// CPU.
    #[serde(default)]
    pub cpu: Option<Cpu>,
}

/// `linux.resources.cpu`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Cpu {
    /// CFS quota in microseconds per period.
    #[serde(default)]
    pub quota: Option<i64>,
    /// CFS period in microseconds.
    #[serde(default)]
    pub period: Option<u64>,
}

/// `linux.resources.memory`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Memory {
    /// Bytes.
    #[serde(default)]
    pub limit: Option<i64>,
}

impl Spec {
    /// Reads `bundle/config.json`.
    pub fn load(bundle: &Path) -> Result<Spec, String> {
        let path = bundle.join("config.json");
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("failed to read `{}`: {e}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("failed to parse `{}`: {e}", path.display()))
    }

    /// The root filesystem directory.
    pub fn rootfs(&self, bundle: &Path) -> PathBuf {
        match &self.root {
            Some(root) if root.path.is_absolute() => root.path.clone(),
            Some(root) => bundle.join(&root.path),
            None => bundle.join("rootfs"),
        }
    }

    /// Whether this is the pod sandbox (the pause container) under CRI.
    pub fn is_sandbox(&self) -> bool {
        self.annotations
            .get("io.kubernetes.cri.container-type")
            .is_some_and(|t| t == "sandbox")
    }

    /// The network namespace to join, if the spec names one (a pod's, not the host's).
    pub fn network_namespace(&self) -> Option<&Path> {
        self.linux
            .as_ref()?
            .namespaces
            .iter()
            .find(|n| n.kind == "network")?
            .path
            .as_deref()
    }

    /// The CPU limit as a share of one core (`quota / period`), if one is set.
    pub fn cpu_share(&self) -> Option<f64> {
        let cpu = self.linux.as_ref()?.resources.as_ref()?.cpu.as_ref()?;
        let quota = cpu.quota.filter(|q| *q > 0)?;
        let period = cpu.period.filter(|p| *p > 0).unwrap_or(100_000);
        Some(quota as f64 / period as f64)
    }

    /// The memory limit in bytes, if one is set.
    pub fn memory_limit(&self) -> Option<u64> {
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
