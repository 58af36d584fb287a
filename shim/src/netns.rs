//! The pod's network namespace: a holder thread that lives in it for the pod's lifetime
//! (its `/proc/<tid>/ns/*` are what CRI gives the pod's other containers), and listeners
//! bound inside it.
//!
//! The holder is a thread of the shim, not a process: network namespaces are per thread,
//! `/proc/<tid>/ns/net` names a thread's, and a parked thread costs a small stack where a
//! process would cost megabytes.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc;

use nix::sched::{CloneFlags, setns};

/// Moves the calling thread into the network namespace at `netns`.
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

/// A thread parked in the pod's network namespace; it ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Holder {
    tid: u32,
    _stop: mpsc::Sender<()>,
}

impl Holder {
    /// Starts a holder in `netns` (the host's when `None`), once it is inside.
    pub(crate) fn spawn(netns: Option<&Path>) -> Result<Holder, String> {
        let (ready, joined) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        let netns = netns.map(Path::to_owned);
        std::thread::Builder::new()
            .name("pod-netns".into())
            .stack_size(64 << 10)
            .spawn(move || {
                let result = netns.as_deref().map_or(Ok(()), join);
                let tid = u32::try_from(nix::unistd::gettid().as_raw()).unwrap_or_default();
                let inside = result.is_ok();
                let _ = ready.send(result.map(|()| tid));
                if inside {
                    // Until the sender is dropped.
                    let _ = stopped.recv();
                }
            })
            .map_err(|e| format!("failed to start the pod's holder thread: {e}"))?;
        let tid = joined
            .recv()
            .map_err(|_| "the pod's holder thread ended at start".to_owned())??;
        Ok(Holder { tid, _stop: stop })
    }

    /// Its thread id: `/proc/<tid>/ns/net` is the pod's network namespace.
    pub(crate) fn pid(&self) -> u32 {
        self.tid
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
