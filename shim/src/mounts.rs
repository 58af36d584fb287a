//! Which of a pod's bind mounts may become a guest's directories: never a pseudo
//! filesystem of the node (`/proc`, `/sys`, devices, cgroups) unless the container is
//! privileged. Judged by the filesystem the source is on (the node's mount table), not by
//! the destination's path, which the pod chooses.

use std::path::{Path, PathBuf};

/// Filesystems that expose the node itself: another pod's `environ` through `proc`, raw
/// devices through `devtmpfs`, the node's settings through `sysfs`, `cgroup` and the rest.
const NODE_FILESYSTEMS: [&str; 15] = [
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "debugfs",
    "tracefs",
    "securityfs",
    "cgroup",
    "cgroup2",
    "bpf",
    "configfs",
    "efivarfs",
    "pstore",
    "fusectl",
    "mqueue",
];

/// A bind mount the guest may not have.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MountError {
    /// A node filesystem, in a container that is not privileged.
    #[error(
        "refusing the volume `{}` at `{destination}`: it is on the node's `{fs}` filesystem, which only a privileged container may mount",
        path.display()
    )]
    NodeFilesystem {
        /// The host path.
        path: PathBuf,
        /// Where the pod mounts it.
        destination: String,
        /// The filesystem type.
        fs: String,
    },
    /// The mount table could not be read.
    #[error("failed to find the filesystem of the volume `{}`", path.display())]
    Unknown {
        /// The host path.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
}

/// Refuses `source` (mounted at `destination`) when it is on a node filesystem and the
/// container is not `privileged`.
pub(crate) fn check_volume(
    source: &Path,
    destination: &str,
    privileged: bool,
) -> Result<(), MountError> {
    if privileged {
        return Ok(());
    }
    let unknown = |error| MountError::Unknown {
        path: source.to_owned(),
        error,
    };
    let real = std::fs::canonicalize(source).map_err(unknown)?;
    let table = std::fs::read_to_string("/proc/self/mountinfo").map_err(unknown)?;
    match filesystem_of(&table, &real) {
        Some(fs) if NODE_FILESYSTEMS.contains(&fs.as_str()) => Err(MountError::NodeFilesystem {
            path: source.to_owned(),
            destination: destination.to_owned(),
            fs,
        }),
        _ => Ok(()),
    }
}

/// The filesystem type of the mount that holds `path` (canonical) in a
/// `/proc/self/mountinfo` text: the last listed mount whose mount point is `path` or above
/// it, the longest first (a later mount over the same point hides an earlier one).
fn filesystem_of(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        // `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPER`
        let mut fields = line.split(' ');
        let Some(point) = fields.nth(4).map(unescape) else {
            continue;
        };
        let Some(fs) = line.split(" - ").nth(1).and_then(|t| t.split(' ').next()) else {
            continue;
        };
        if !path.starts_with(&point) {
            continue;
        }
        let depth = Path::new(&point).components().count();
        if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            best = Some((depth, fs.to_owned()));
        }
    }
    best.map(|(_, fs)| fs)
}

/// A mountinfo field with its octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = field
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=100k
24 23 0:21 / /dev/pts rw,nosuid shared:3 - devpts devpts rw
25 22 0:22 / /proc rw,nosuid shared:4 - proc proc rw
26 22 0:23 / /sys rw,nosuid shared:5 - sysfs sysfs rw
27 26 0:24 / /sys/fs/cgroup rw shared:6 - cgroup2 cgroup2 rw
28 22 0:25 / /var/lib/kubelet/pods/x/volumes/empty\\040dir rw shared:7 - tmpfs tmpfs rw
29 22 0:26 / /run rw shared:8 - tmpfs tmpfs rw
30 29 0:27 / /run rw shared:9 - proc proc rw
";

    #[test]
    fn the_filesystem_is_the_deepest_latest_mount() {
        let fs = |p: &str| filesystem_of(TABLE, Path::new(p)).unwrap();
        assert_eq!(fs("/proc/1/environ"), "proc");
        assert_eq!(fs("/proc"), "proc");
        assert_eq!(fs("/dev/pts/0"), "devpts");
        assert_eq!(fs("/dev/sda"), "devtmpfs");
        assert_eq!(fs("/sys/fs/cgroup/kubepods"), "cgroup2");
        assert_eq!(fs("/var/lib/kubelet/pods/x/volumes/empty dir/a"), "tmpfs");
        assert_eq!(fs("/home/me"), "ext4");
        assert_eq!(
            fs("/processes"),
            "ext4",
            "a prefix of the text is not a parent"
        );
        assert_eq!(
            fs("/run/x"),
            "proc",
            "the later mount over the same point wins"
        );
    }

    #[test]
    fn node_filesystems_are_refused_unless_privileged() {
        let err = check_volume(Path::new("/proc"), "/hostproc", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing the volume `/proc` at `/hostproc`: it is on the node's `proc` filesystem, which only a privileged container may mount"
        );
        assert!(check_volume(Path::new("/proc"), "/hostproc", true).is_ok());
        let dir = tempfile::tempdir().unwrap();
        assert!(check_volume(dir.path(), "/data", false).is_ok());
    }
}
