//! What the process that runs a container's guest is confined to, read from the bundle
//! alone (pure): the pod's identity (`process.user`), its capabilities, its cgroup
//! (`linux.cgroupsPath`) and the resources the kernel enforces there. The worker
//! ([`crate::worker`]) applies it.

use std::path::PathBuf;

use crate::bundle::Bundle;
use crate::plan::PlanError;

/// The container's confinement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    /// `process.user.uid` (`runAsUser`).
    pub uid: u32,
    /// `process.user.gid` (`runAsGroup`).
    pub gid: u32,
    /// `process.user.additionalGids` (`fsGroup`, `supplementalGroups`).
    pub groups: Vec<u32>,
    /// `process.user.umask`.
    pub umask: Option<u32>,
    /// `process.capabilities`, each set by name.
    pub capabilities: CapabilitySets,
    /// `process.noNewPrivileges`. The worker sets `no_new_privs` whatever this says (it
    /// never executes anything); kept for the record of what the pod asked.
    pub no_new_privileges: bool,
    /// The container's cgroup, relative to each hierarchy's root.
    pub cgroup: Option<PathBuf>,
    /// What the cgroup enforces.
    pub resources: Resources,
}

/// Capability sets, by name (`CAP_NET_BIND_SERVICE`, …), checked to be known names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilitySets {
    /// What the container could ever have.
    pub bounding: Vec<String>,
    /// What its guest's I/O runs with.
    pub effective: Vec<String>,
    /// What it may make effective.
    pub permitted: Vec<String>,
    /// What an executed program could inherit.
    pub inheritable: Vec<String>,
    /// What an executed program gets.
    pub ambient: Vec<String>,
}

/// The resources the container's cgroup enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// `linux.resources.memory.limit`, bytes.
    pub memory: Option<u64>,
    /// `linux.resources.cpu`: quota and period, microseconds.
    pub cpu: Option<(i64, u64)>,
    /// `linux.resources.pids.limit`.
    pub pids: Option<i64>,
}

impl Confinement {
    /// Reads the confinement of `bundle`'s process.
    pub fn of(bundle: &Bundle) -> Result<Confinement, PlanError> {
        let process = &bundle.process;
        let caps = process.capabilities.clone().unwrap_or_default();
        let capabilities = CapabilitySets {
            bounding: known(caps.bounding)?,
            effective: known(caps.effective)?,
            permitted: known(caps.permitted)?,
            inheritable: known(caps.inheritable)?,
            ambient: known(caps.ambient)?,
        };
        let linux = bundle.linux.clone().unwrap_or_default();
        let cgroup = linux
            .cgroups_path
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(cgroup_path)
            .transpose()?;
        let resources = linux.resources.unwrap_or_default();
        Ok(Confinement {
            uid: process.user.uid,
            gid: process.user.gid,
            groups: process.user.additional_gids.clone(),
            umask: process.user.umask,
            capabilities,
            no_new_privileges: process.no_new_privileges,
            cgroup,
            resources: Resources {
                memory: bundle.memory_limit(),
                cpu: resources
                    .cpu
                    .as_ref()
                    .and_then(|c| Some((c.quota.filter(|q| *q > 0)?, c.period.unwrap_or(100_000)))),
                pids: resources.pids.map(|p| p.limit).filter(|l| *l > 0),
            },
        })
    }

    /// Whether the container is privileged (`CAP_SYS_ADMIN` in its bounding set, as CRI
    /// gives a privileged container).
    pub fn privileged(&self) -> bool {
        self.capabilities
            .bounding
            .iter()
            .any(|cap| cap == "CAP_SYS_ADMIN")
    }
}

fn known(names: Vec<String>) -> Result<Vec<String>, PlanError> {
    for name in &names {
        if name.parse::<caps::Capability>().is_err() {
            return Err(PlanError::Capability(name.clone()));
        }
    }
    Ok(names)
}

/// The cgroup `linux.cgroupsPath` names, relative to a hierarchy's root: a path (the
/// cgroupfs driver: `/kubepods/burstable/pod…/ID`), or `slice:prefix:name` (the systemd
/// driver: `kubepods-burstable-pod….slice:cri-containerd:ID` is
/// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod….slice/cri-containerd-ID.scope`,
/// as runc expands it).
pub fn cgroup_path(text: &str) -> Result<PathBuf, PlanError> {
    let invalid = |reason: &str| PlanError::CgroupsPath {
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let path = if !text.starts_with('/') && text.split(':').count() == 3 {
        let mut parts = text.split(':');
        let (slice, prefix, name) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let mut path = expand_slice(if slice.is_empty() {
            "system.slice"
        } else {
            slice
        })
        .ok_or_else(|| invalid("not a systemd slice name"))?;
        if name.ends_with(".slice") {
            path.push(name);
        } else if prefix.is_empty() {
            path.push(format!("{name}.scope"));
        } else {
            path.push(format!("{prefix}-{name}.scope"));
        }
        path
    } else {
        PathBuf::from(text.trim_start_matches('/'))
    };
    // Every part a plain name: the path stays under the hierarchy's root.
    let plain = path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(n) if !n.is_empty()));
    if !plain || path.as_os_str().is_empty() {
        return Err(invalid(
            "expected a path of plain names below the cgroup root",
        ));
    }
    Ok(path)
}

/// `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice` (`-.slice` is the root).
fn expand_slice(slice: &str) -> Option<PathBuf> {
    let stem = slice.strip_suffix(".slice")?;
    if stem == "-" {
        return Some(PathBuf::new());
    }
    if stem.is_empty() || stem.contains('/') || stem.starts_with('-') || stem.ends_with('-') {
        return None;
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return None;
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_expand_as_runc_does() {
        assert_eq!(
            cgroup_path("/kubepods/burstable/pod1/abc").unwrap(),
            PathBuf::from("kubepods/burstable/pod1/abc")
        );
        assert_eq!(
            cgroup_path("kubepods-burstable-pod1.slice:cri-containerd:abc").unwrap(),
            PathBuf::from(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"
            )
        );
        assert_eq!(
            cgroup_path(":cri-containerd:abc").unwrap(),
            PathBuf::from("system.slice/cri-containerd-abc.scope")
        );
        for bad in ["/a/../../etc", "/", "a--b.slice:p:n", "noslice:p:n"] {
            assert!(cgroup_path(bad).is_err(), "{bad}");
        }
    }
}
