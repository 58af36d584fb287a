//! The worker takes the container's identity, as runc's init does: the bounding set
//! first (it needs `CAP_SETPCAP`), then groups, gid and uid with the capabilities kept
//! over the change, then the capability sets, then `no_new_privs`. Capabilities are per
//! thread, so this runs while the process has one thread, and checks that it has.
//!
//! The sets are those the container's process has under runc *after* its `execve` of a
//! program without file capabilities, since that process is the one doing the I/O there:
//! a non-root user keeps only its ambient capabilities (so `runAsUser: 1000` has none,
//! whatever `effective` says: Kubernetes' known behaviour), root gets its bounding and
//! inheritable sets.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};

use crate::confine::{CapabilitySets, Confinement};

fn set(names: &[String]) -> CapsHashSet {
    names
        .iter()
        .filter_map(|n| n.parse::<Capability>().ok())
        .collect()
}

/// Whether this process has one thread (so per-thread state set now is everyone's).
pub(crate) fn alone() -> Result<(), String> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("failed to list this process's threads: {e}"))?
        .count();
    if threads == 1 {
        Ok(())
    } else {
        Err(format!(
            "the worker has {threads} threads before it takes the container's identity; it must have one"
        ))
    }
}

/// Becomes the container's user with its capabilities; sets `no_new_privs` and `umask`;
/// dies with `shim`, its parent.
pub(crate) fn take(confinement: &Confinement, shim: nix::unistd::Pid) -> Result<(), String> {
    alone()?;
    let CapabilitySets {
        bounding,
        effective: _,
        permitted,
        inheritable,
        ambient,
    } = &confinement.capabilities;
    let bounding = set(bounding);
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: caps::errors::CapsError| format!("failed to {what}: {e}")
    };
    for cap in caps::all() {
        if !bounding.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(failed("drop from the bounding set"))?;
        }
    }
    prctl(
        libc::PR_SET_KEEPCAPS,
        1,
        "keep capabilities over the uid change",
    )?;
    let groups: Vec<Gid> = confinement
        .groups
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups)
        .map_err(|e| format!("failed to set the groups {:?}: {e}", confinement.groups))?;
    let gid = Gid::from_raw(confinement.gid);
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| format!("failed to set the gid {gid}: {e}"))?;
    let uid = Uid::from_raw(confinement.uid);
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| format!("failed to set the uid {uid}: {e}"))?;
    let (inheritable, ambient) = (set(inheritable), set(ambient));
    let kept = after_exec(
        confinement.uid,
        &bounding,
        &set(permitted),
        &inheritable,
        &ambient,
    );
    // Each step within what the one before allows: effective, inheritable, then permitted.
    caps::set(None, CapSet::Effective, &kept).map_err(failed("set the effective capabilities"))?;
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(failed("set the inheritable capabilities"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(failed("set the permitted capabilities"))?;
    caps::clear(None, CapSet::Ambient).map_err(failed("clear the ambient capabilities"))?;
    for cap in ambient.intersection(&kept) {
        caps::raise(None, CapSet::Ambient, *cap).map_err(failed("raise an ambient capability"))?;
    }
    prctl(libc::PR_SET_KEEPCAPS, 0, "stop keeping capabilities")?;
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "set `no_new_privs`")?;
    // A worker never outlives its shim (the uid change cleared any earlier request).
    prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        "ask for SIGKILL when the shim ends",
    )?;
    if nix::unistd::getppid() != shim {
        return Err("the shim ended before its worker started".into());
    }
    if let Some(umask) = confinement.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    }
    Ok(())
}

/// The permitted (and effective) set of a process of `uid` after `execve` of a file
/// without capabilities (capabilities(7)): root's is its inheritable and bounding sets;
/// another user's is its ambient set, which must lie within permitted and inheritable.
fn after_exec(
    uid: u32,
    bounding: &CapsHashSet,
    permitted: &CapsHashSet,
    inheritable: &CapsHashSet,
    ambient: &CapsHashSet,
) -> CapsHashSet {
    if uid == 0 {
        inheritable.union(bounding).copied().collect()
    } else {
        ambient
            .iter()
            .filter(|c| permitted.contains(c) && inheritable.contains(c))
            .copied()
            .collect()
    }
}

fn prctl(option: libc::c_int, value: libc::c_ulong, what: &str) -> Result<(), String> {
    // SAFETY: these options take one integer and no pointer.
    #[allow(unsafe_code, reason = "prctl has no safe wrapper in our dependencies")]
    let rc = unsafe { libc::prctl(option, value, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "failed to {what}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_keeps_capabilities_over_exec() {
        let defaults = set(&["CAP_CHOWN".into(), "CAP_DAC_OVERRIDE".into()]);
        let none = CapsHashSet::new();
        // CRI's defaults for `runAsUser: 1000`: nothing is left.
        assert!(after_exec(1000, &defaults, &defaults, &none, &none).is_empty());
        // Root keeps its bounding set.
        assert_eq!(after_exec(0, &defaults, &defaults, &none, &none), defaults);
        // Ambient capabilities survive for another user, within permitted and inheritable.
        let bind = set(&["CAP_NET_BIND_SERVICE".into()]);
        assert_eq!(after_exec(1000, &bind, &bind, &bind, &bind), bind);
        assert!(after_exec(1000, &bind, &none, &bind, &bind).is_empty());
    }
}
