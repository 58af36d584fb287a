//! Which of a pod's bind mounts may become a guest's directories, unless the container is
//! privileged: never a pseudo filesystem of the node (`/proc`, `/sys`, devices, cgroups),
//! nor a directory with one mounted below it (a hostPath of `/` reaches `/proc` too), nor
//! what holds the shim's own state (wasmoci's node home with its compile cache and key,
//! containerd's directories), at, below or above them. Judged by the node's mount table
//! and the source's real path, not by the destination's path, which the pod chooses.

use std::path::{Path, PathBuf};

/// Filesystems that expose the node itself: another pod's `environ` through `proc`, raw
/// devices through `devtmpfs`, the node's settings through `sysfs`, `cgroup` and the rest.
const NODE_FILESYSTEMS: [&str; 23] = [
    "proc",
    "binfmt_misc",
    "selinuxfs",
    "hugetlbfs",
    "nsfs",
    "rpc_pipefs",
    "nfsd",
    "autofs",
    "smackfs",
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
        "failed to mount the volume `{}` at `{destination}`: the node's `{fs}` filesystem is at `{}`; only a privileged container may mount it",
        path.display(),
        at.display()
    )]
    NodeFilesystem {
        /// The host path.
        path: PathBuf,
        /// Where the pod mounts it.
        destination: String,
        /// The filesystem type.
        fs: String,
        /// Where it is mounted: the source or below it.
        at: PathBuf,
    },
    /// A directory that holds the shim's own state, or is inside it.
    #[error(
        "failed to mount the volume `{}` at `{destination}`: it overlaps `{}`, which holds the node's {what}; only a privileged container may mount it",
        path.display(),
        state.display()
    )]
    NodeState {
        /// The host path.
        path: PathBuf,
        /// Where the pod mounts it.
        destination: String,
        /// The node's directory.
        state: PathBuf,
        /// What it holds.
        what: &'static str,
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

/// Directories of the node that hold the shim's own state, and what they hold.
pub(crate) fn node_state() -> Vec<(PathBuf, &'static str)> {
    vec![
        (
            wasmoci_fs::Home::node().root().to_owned(),
            "wasmoci store, compile cache and cache key",
        ),
        (
            "/var/lib/containerd".into(),
            "containerd content and snapshots",
        ),
        ("/run/containerd".into(), "containerd sockets and state"),
    ]
}

/// Refuses `source` (mounted at `destination`) when it is on a node filesystem or has one
/// below it, or overlaps a directory of `state`, unless the container is `privileged`.
pub(crate) fn check_volume(
    source: &Path,
    destination: &str,
    privileged: bool,
    state: &[(PathBuf, &'static str)],
) -> Result<(), MountError> {
    if privileged {
        return Ok(());
    }
    let unknown = |error| MountError::Unknown {
        path: source.to_owned(),
        error,
    };
    let real = std::fs::canonicalize(source).map_err(unknown)?;
    for (dir, what) in state {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        if real.starts_with(&dir) || dir.starts_with(&real) {
            return Err(MountError::NodeState {
                path: source.to_owned(),
                destination: destination.to_owned(),
                state: dir,
                what,
            });
        }
    }
    let table = std::fs::read_to_string("/proc/self/mountinfo").map_err(unknown)?;
    let mut found = filesystem_of(&table, &real).map(|fs| (fs, real.clone()));
    if !found
        .as_ref()
        .is_some_and(|(fs, _)| NODE_FILESYSTEMS.contains(&fs.as_str()))
    {
        found = node_filesystem_below(&table, &real);
    }
    match found {
        Some((fs, at)) if NODE_FILESYSTEMS.contains(&fs.as_str()) => {
            Err(MountError::NodeFilesystem {
                path: source.to_owned(),
                destination: destination.to_owned(),
                fs,
                at,
            })
        }
        _ => Ok(()),
    }
}

/// The first node filesystem mounted strictly below `path` in a mountinfo text.
fn node_filesystem_below(mountinfo: &str, path: &Path) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let point = PathBuf::from(unescape(line.split(' ').nth(4)?));
        let fs = line.split(" - ").nth(1)?.split(' ').next()?;
        (point != path && point.starts_with(path) && NODE_FILESYSTEMS.contains(&fs))
            .then(|| (fs.to_owned(), point))
    })
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
    fn a_node_filesystem_below_a_volume_is_found() {
        let below = |p: &str| node_filesystem_below(TABLE, Path::new(p));
        assert_eq!(below("/").map(|(fs, _)| fs), Some("devtmpfs".into()));
        assert_eq!(
            below("/sys/fs").map(|(fs, at)| (fs, at.display().to_string())),
            Some(("cgroup2".into(), "/sys/fs/cgroup".into()))
        );
        assert_eq!(below("/home"), None);
        assert_eq!(below("/var/lib/kubelet"), None);
    }

    #[test]
    fn node_filesystems_and_state_are_refused_unless_privileged() {
        let none: Vec<(PathBuf, &'static str)> = Vec::new();
        let err = check_volume(Path::new("/proc"), "/hostproc", false, &none).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to mount the volume `/proc` at `/hostproc`: the node's `proc` filesystem is at `/proc`; only a privileged container may mount it"
        );
        assert!(check_volume(Path::new("/proc"), "/hostproc", true, &none).is_ok());
        let err = check_volume(Path::new("/"), "/host", false, &none).unwrap_err();
        assert!(err.to_string().contains("filesystem is at `/"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        assert!(check_volume(dir.path(), "/data", false, &none).is_ok());
        let state = vec![(dir.path().join("home"), "wasmoci store")];
        std::fs::create_dir_all(dir.path().join("home/cache")).unwrap();
        for source in [dir.path().to_owned(), dir.path().join("home/cache")] {
            let err = check_volume(&source, "/x", false, &state).unwrap_err();
            assert!(
                err.to_string()
                    .contains("which holds the node's wasmoci store"),
                "{err}"
            );
        }
    }
}
