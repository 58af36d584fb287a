//! The container's cgroup (`linux.cgroupsPath`), as runc makes it with the cgroupfs
//! driver: created with the pod's limits at Create, joined by the worker before it runs
//! anything, read for Stats, removed at Delete. cgroup v2 or v1 (every mounted
//! hierarchy), through `cgroups-rs`.

use std::path::{Path, PathBuf};

use cgroups_rs::CgroupPid;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Cgroup, MaxValue, hierarchies};

use crate::confine::Resources;
use crate::error::ShimError;

fn failed(path: &Path, action: &'static str) -> impl Fn(cgroups_rs::fs::error::Error) -> ShimError {
    let path = path.to_owned();
    move |e| ShimError::Cgroup {
        action,
        path: path.clone(),
        reason: e.to_string(),
    }
}

/// Creates the cgroup at `path` (relative to each hierarchy's root) with `resources` as
/// its limits. An existing cgroup is reused, its limits set again.
pub(crate) fn create(path: &Path, resources: &Resources) -> Result<(), ShimError> {
    let cgroup = Cgroup::new(hierarchies::auto(), path).map_err(failed(path, "create"))?;
    if let Some(limit) = resources.memory {
        let memory: &MemController = cgroup
            .controller_of()
            .ok_or_else(|| missing(path, "memory"))?;
        memory
            .set_limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .map_err(failed(path, "set the memory limit of"))?;
    }
    if let Some((quota, period)) = resources.cpu {
        let cpu: &CpuController = cgroup.controller_of().ok_or_else(|| missing(path, "cpu"))?;
        cpu.set_cfs_quota_and_period(Some(quota), Some(period))
            .map_err(failed(path, "set the CPU limit of"))?;
    }
    if let Some(limit) = resources.pids {
        let pids: &PidController = cgroup
            .controller_of()
            .ok_or_else(|| missing(path, "pids"))?;
        pids.set_pid_max(MaxValue::Value(limit))
            .map_err(failed(path, "set the process limit of"))?;
    }
    Ok(())
}

fn missing(path: &Path, controller: &str) -> ShimError {
    ShimError::Cgroup {
        action: "set limits on",
        path: path.to_owned(),
        reason: format!("the `{controller}` controller is not available"),
    }
}

/// Moves the calling process (every thread: it is alone when this runs) into the cgroup.
pub(crate) fn join(path: &Path) -> Result<(), ShimError> {
    let cgroup = Cgroup::load(hierarchies::auto(), path);
    cgroup
        .add_task_by_tgid(CgroupPid::from(u64::from(std::process::id())))
        .map_err(failed(path, "join"))
}

/// What the cgroup uses now: memory in bytes, CPU time in microseconds.
pub(crate) fn usage(path: &Path) -> (u64, u64) {
    let cgroup = Cgroup::load(hierarchies::auto(), path);
    let memory = cgroup
        .controller_of::<MemController>()
        .map_or(0, |m| m.memory_stat().usage_in_bytes);
    let cpu = if cgroup.v2() {
        cgroup.controller_of::<CpuController>().map_or(0, |c| {
            c.cpu()
                .stat
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        })
    } else {
        cgroup
            .controller_of::<CpuAcctController>()
            .map_or(0, |c| c.cpuacct().usage / 1000)
    };
    (memory, cpu)
}

/// Whether the kernel's OOM killer has killed a process of the cgroup.
pub(crate) fn oom_killed(path: &Path) -> bool {
    let cgroup = Cgroup::load(hierarchies::auto(), path);
    if cgroup.v2() {
        let events = PathBuf::from("/sys/fs/cgroup")
            .join(path)
            .join("memory.events");
        return std::fs::read_to_string(events).is_ok_and(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        });
    }
    cgroup
        .controller_of::<MemController>()
        .is_some_and(|m| m.memory_stat().oom_control.oom_kill > 0)
}

/// Removes the cgroup once its processes have exited (killed, they may still be going),
/// waiting `limit` at most (zero: its processes have exited); nothing when there is none.
pub(crate) fn remove(path: &Path, limit: std::time::Duration) {
    let cgroup = Cgroup::load(hierarchies::auto(), path);
    if !cgroup.exists() {
        return;
    }
    let deadline = std::time::Instant::now() + limit;
    loop {
        match cgroup.delete() {
            Ok(()) => return,
            Err(e) if std::time::Instant::now() >= deadline => {
                log::warn!("failed to remove the cgroup `{}`: {e}", path.display());
                return;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}
