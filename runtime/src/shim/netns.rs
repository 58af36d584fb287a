//! The pod's network namespace: a small holder process that lives in it for the pod's
//! lifetime (its `/proc/<pid>/ns/*` are what CRI gives the pod's other containers), and
//! listeners bound inside it.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use nix::sched::{CloneFlags, setns};

/// The argument that makes the shim binary a holder instead of a shim.
pub(crate) const HOLD_ARG: &str = "--wasmoci-hold-netns";

pub(crate) fn join(netns: &Path) -> Result<(), String> {
    let file = std::fs::File::open(netns).map_err(|e| {
        format!(
            "failed to open the network namespace `{}`: {e}",
            netns.display()
        )
    })?;
    setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!(
            "failed to join the network namespace `{}`: {e}",
            netns.display()
        )
    })
}

/// What the holder process runs: join the namespace (if any), say so with one byte on
/// stdout, then wait until the shim closes our stdin (it stops us, or it died) and exit.
pub(crate) fn hold(netns: Option<&str>) -> i32 {
    use std::io::Write;
    if let Some(path) = netns.filter(|p| !p.is_empty())
        && let Err(e) = join(Path::new(path))
    {
        log::error!("{e}");
        return 1;
    }
    let mut stdout = std::io::stdout();
    if stdout
        .write_all(b"1")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return 1;
    }
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    0
}

/// A holder process; it exits when this is dropped (its stdin closes). The shim, as its
/// subreaper, reaps it; sending it a signal could hit a reused pid.
#[derive(Debug)]
pub(crate) struct Holder {
    child: Child,
    _stdin: ChildStdin,
}

impl Holder {
    /// Starts a holder in `netns` (the host's when `None`).
    pub(crate) fn spawn(netns: Option<&Path>) -> Result<Holder, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("failed to find the shim executable: {e}"))?;
        let mut child = Command::new(exe)
            .arg(HOLD_ARG)
            .arg(netns.map(PathBuf::from).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("failed to start the pod's holder process: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        // It writes one byte once it is in the namespace, or exits (EOF) if it cannot.
        let mut ready = [0u8; 1];
        let joined = child
            .stdout
            .take()
            .expect("piped")
            .read_exact(&mut ready)
            .is_ok();
        if !joined {
            return Err(format!(
                "the pod's holder process could not join the network namespace `{}`",
                netns.map_or_else(String::new, |p| p.display().to_string())
            ));
        }
        Ok(Holder {
            child,
            _stdin: stdin,
        })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Binds `addr` inside `netns` (this process's namespace when `None`). Only a helper
/// thread joins the namespace; the socket stays in it after the thread ends.
pub(crate) fn bind_in(netns: Option<&Path>, addr: SocketAddr) -> Result<TcpListener, String> {
    let netns = netns.map(Path::to_owned);
    std::thread::spawn(move || {
        if let Some(netns) = &netns {
            join(netns)?;
        }
        let listener = TcpListener::bind(addr).map_err(|e| {
            format!("failed to listen on `{addr}` in the pod's network namespace: {e}")
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("failed to set up the listener on `{addr}`: {e}"))?;
        Ok(listener)
    })
    .join()
    .map_err(|_| "the thread binding the listener panicked".to_owned())?
}
