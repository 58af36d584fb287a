//! Through CRI, as kubelet drives it: each guest runs in a worker
//! process as the pod's user and groups, with `no_new_privs` and a seccomp filter, in
//! the container's cgroup, and cannot open device nodes on its volumes nor follow a
//! symlink out of them.

use super::*;
use crate::cri::{Node, container, fixture};
use crate::support::images::push_artifact;
use std::os::unix::fs::{PermissionsExt, chown};

/// A volume directory holding `hello.txt` (its own name, a line) owned by `uid:gid`
/// with `mode`; the directory itself is 0755.
fn volume(parent: &Path, name: &str, uid: u32, gid: u32, mode: u32) -> String {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("hello.txt");
    std::fs::write(&file, format!("{name}\n")).unwrap();
    chown(&file, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    dir.display().to_string()
}

/// `cat.wasm` (prints `hello.txt` of its one volume, exit 2 when it cannot open it) as
/// `user` with `groups`: its exit code and log.
fn cat_as(
    node: &mut Node,
    image: &str,
    dir: &str,
    user: Option<i64>,
    groups: &[i64],
) -> (i32, String) {
    let mut spec = container("cat", image, &["cat.wasm"]);
    spec.mounts = vec![("/data".into(), dir.to_owned(), true)];
    spec.run_as_user = user;
    spec.supplemental_groups = groups.to_vec();
    let (exited, log) = node.run(&[], spec);
    (exited.exit_code, log)
}

fn guests_run_as_the_pod_user_in_its_cgroup_without_devices(containerd: PathBuf) {
    let Some(mut node) = Node::start(containerd.clone()) else {
        return;
    };
    let cat = push_artifact(&node.registry, "cat", &fixture("cat.wasm"));
    node.pull(&cat).unwrap();
    // Under a root-only 0700 directory, as kubelet's pod volumes are under 0750 root.
    let volumes = tempfile::tempdir().unwrap();
    let secret = volume(volumes.path(), "secret", 0, 0, 0o600);
    let mine = volume(volumes.path(), "mine", 1000, 1000, 0o600);
    let group = volume(volumes.path(), "group", 0, 2000, 0o640);

    // `runAsUser: 1000` reads its own file, not root's.
    assert_eq!(
        cat_as(&mut node, &cat, &mine, Some(1000), &[]),
        (0, "mine\n".into())
    );
    let (code, log) = cat_as(&mut node, &cat, &secret, Some(1000), &[]);
    assert_eq!(code, 2, "uid 1000 read a root 0600 file: {log}");
    // `fsGroup` / `supplementalGroups`: the group's file, only with the group.
    assert_eq!(
        cat_as(&mut node, &cat, &group, Some(1000), &[2000]),
        (0, "group\n".into())
    );
    let (code, log) = cat_as(&mut node, &cat, &group, Some(1000), &[]);
    assert_eq!(code, 2, "read a group file without the group: {log}");

    // A device node on a volume (here the node's `/dev/urandom`, `c 1 9`) cannot be
    // opened, even by a root pod.
    let device = volumes.path().join("device");
    std::fs::create_dir(&device).unwrap();
    nix::sys::stat::mknod(
        &device.join("hello.txt"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 9),
    )
    .unwrap();
    let (code, log) = cat_as(&mut node, &cat, device.to_str().unwrap(), None, &[]);
    assert_eq!(code, 2, "read a device node: {log:?}");

    // A FIFO on a volume: a module's open fails (`cat` exits 2), and a component's
    // (`cat` adapted exits 1), instead of blocking until someone writes.
    let fifo = volumes.path().join("fifo");
    std::fs::create_dir(&fifo).unwrap();
    nix::unistd::mkfifo(
        &fifo.join("hello.txt"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    let (code, log) = cat_as(&mut node, &cat, fifo.to_str().unwrap(), None, &[]);
    assert_eq!(code, 2, "a module opened a FIFO: {log:?}");
    let cat_component = push_artifact(
        &node.registry,
        "cat-component",
        &fixture("cat.component.wasm"),
    );
    node.pull(&cat_component).unwrap();
    let (code, log) = cat_as(&mut node, &cat_component, fifo.to_str().unwrap(), None, &[]);
    assert_eq!(code, 1, "opened a FIFO: {log:?}");

    // A symlink in a volume pointing out of it (relative `..`, or absolute) is not
    // followed out, even by a root pod: the file it names is never printed.
    let outside = volume(volumes.path(), "outside", 0, 0, 0o644);
    for (name, target) in [
        ("relative", "../outside/hello.txt".to_owned()),
        ("absolute", format!("{outside}/hello.txt")),
    ] {
        let dir = volumes.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&target, dir.join("hello.txt")).unwrap();
        for image in [&cat, &cat_component] {
            let (code, log) = cat_as(&mut node, image, dir.to_str().unwrap(), None, &[]);
            assert_ne!(
                code, 0,
                "followed a {name} symlink out of the volume: {log:?}"
            );
            assert!(!log.contains("outside"), "{name}: {log:?}");
        }
    }

    // The guest's memory is the container cgroup's, not the shim's (containerd's).
    let hog = push_artifact(&node.registry, "hog", &fixture("hog.wasm"));
    node.pull(&hog).unwrap();
    let pod = node.new_pod(&[], true);
    let mut spec = container("hog", &hog, &["hog.wasm"]);
    spec.run_as_user = Some(1000);
    let mut cri = node.cri.clone();
    let id = node.rt.block_on(cri.create(&pod, &spec)).unwrap();
    node.rt.block_on(cri.start(&id)).unwrap();
    let cgroup = format!(
        "{}/{}/{id}",
        node.cgroup_root(),
        pod.config.metadata.as_ref().unwrap().name
    );
    let usage = memory_usage_file(&cgroup);
    let started = std::time::Instant::now();
    let used = loop {
        let used: u64 = std::fs::read_to_string(&usage)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        if used >= 64 << 20 || started.elapsed() > Duration::from_secs(10) {
            break used;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(used >= 64 << 20, "`{}` is {used}", usage.display());
    let worker = procs(&cgroup);
    assert_eq!(worker.len(), 1, "the container cgroup holds {worker:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", worker[0])).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(field("Uid"), "1000 1000 1000 1000", "{status}");
    assert_eq!(field("CapEff"), "0000000000000000", "{status}");
    assert_eq!(field("NoNewPrivs"), "1", "{status}");
    assert_eq!(field("Seccomp"), "2", "{status}");
    let shim: u32 = field("PPid").parse().unwrap();
    let shim_status = std::fs::read_to_string(format!("/proc/{shim}/status")).unwrap();
    let shim_rss: u64 = shim_status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(
        shim_rss * 1024 < 64 << 20,
        "the shim holds {shim_rss} KiB: the guest's memory is charged to it"
    );
    // The same usage through CRI's ContainerStats.
    let stats = node.rt.block_on(cri.stats(&id)).unwrap();
    let reported = stats
        .memory
        .and_then(|m| m.usage_bytes)
        .map_or(0, |u| u.value);
    assert!(reported >= 64 << 20, "ContainerStats says {reported}");
    // A worker never outlives its shim: the shim killed (a crash, an OOM kill), its worker
    // dies with it, and containerd's cleanup (`shim delete`) removes the container's
    // cgroup. The worker was forked at Create by an RPC thread long gone: the
    // parent-death signal must be tied to the shim, not to that thread.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let worker_status = format!("/proc/{}/status", worker[0]);
    let dead = |path: &str| {
        std::fs::read_to_string(path).map_or(true, |s| {
            s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
    };
    let killed = std::time::Instant::now();
    while !dead(&worker_status) && killed.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dead(&worker_status), "the worker outlived its shim");
    let exited = std::time::Instant::now();
    loop {
        let status = node.rt.block_on(cri.status(&id)).unwrap();
        if status.state == k8s_cri::v1::ContainerState::ContainerExited as i32 {
            // CRI says it ended, and not well.
            assert_ne!(status.exit_code, 0, "{status:?}");
            assert!(!status.reason.is_empty(), "{status:?}");
            break;
        }
        assert!(
            exited.elapsed() < Duration::from_secs(30),
            "containerd did not see the container end with its shim"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    node.rt.block_on(cri.remove(&id)).unwrap();
    node.rt.block_on(cri.remove_pod(&pod)).unwrap();
    // The shim removed the container's cgroup with the container.
    assert!(!usage.exists(), "`{}` is left", usage.display());
    // And no shim of this containerd is left (bounded wait: a loaded machine reaps late).
    let address = node.containerd.address.clone();
    let gone = std::time::Instant::now();
    while crate::support::shims_running(&address) > 0 && gone.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(crate::support::shims_running(&address), 0, "a shim is left");
}
on_each_containerd!(guests_run_as_the_pod_user_in_its_cgroup_without_devices);

fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn memory_usage_file(cgroup: &str) -> PathBuf {
    if cgroup_v2() {
        Path::new("/sys/fs/cgroup")
            .join(cgroup)
            .join("memory.current")
    } else {
        Path::new("/sys/fs/cgroup/memory")
            .join(cgroup)
            .join("memory.usage_in_bytes")
    }
}

fn procs(cgroup: &str) -> Vec<u32> {
    let dir = if cgroup_v2() {
        Path::new("/sys/fs/cgroup").join(cgroup)
    } else {
        Path::new("/sys/fs/cgroup/memory").join(cgroup)
    };
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}
