//! The worker's view of the pod's volumes: in a mount namespace of its own, each granted
//! directory is bound at `/run/wasmoci-volumes/N` (on a tmpfs only the worker sees),
//! `nodev` and `nosuid` through every mount below it, and read-only when the grant is.
//! So a device node in a volume cannot be opened (`EACCES`, by the kernel, whatever path
//! the guest takes to it); the container's user reaches its volumes as runc's would,
//! whatever the modes of the directories above them on the node (kubelet's are 0750
//! root); and nothing the worker does to its mounts reaches the node.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use wasmoci_runtime::sandbox::DirGrant;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Where the worker binds the volumes (created on the node, empty, 0755).
const STAGING: &str = "/run/wasmoci-volumes";

/// Enters a mount namespace of the worker's own and seals each of `dirs` there; their
/// host paths become where they are bound.
pub(crate) fn seal(dirs: &mut [DirGrant]) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o755)
        .recursive(true)
        .create(STAGING)
        .map_err(|e| format!("failed to create `{STAGING}`: {e}"))?;
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("failed to enter a mount namespace of its own: {e}"))?;
    // The node's mounts still show here; ours never show there.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("failed to make the mounts of the worker private: {e}"))?;
    mount(
        Some("tmpfs"),
        STAGING,
        Some("tmpfs"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )
    .map_err(|e| format!("failed to mount a tmpfs at `{STAGING}`: {e}"))?;
    for (n, dir) in dirs.iter_mut().enumerate() {
        let at = PathBuf::from(STAGING).join(n.to_string());
        seal_one(&dir.host, &at, dir.read_only).map_err(|e| {
            format!(
                "failed to mount the volume `{}` at `{}` without devices: {e}",
                dir.host.display(),
                dir.guest
            )
        })?;
        dir.host = at;
    }
    Ok(())
}

fn seal_one(host: &Path, at: &Path, read_only: bool) -> Result<(), String> {
    std::fs::create_dir(at).map_err(|e| e.to_string())?;
    mount(
        Some(host),
        at,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| e.to_string())?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_NODEV
            | MOUNT_ATTR_NOSUID
            | if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let path = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|_| "the path holds a NUL byte".to_owned())?;
    // SAFETY: `path` is a NUL-terminated string and `attr` a `struct mount_attr` whose
    // size is passed; both outlive the call.
    #[allow(
        unsafe_code,
        reason = "mount_setattr(2) has no wrapper in our dependencies"
    )]
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}
