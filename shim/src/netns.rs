//! The pod's network namespace: a holder thread that lives in it for the pod's lifetime
//! (its `/proc/<tid>/ns/*` are what CRI gives the pod's other containers), and listeners
//! bound inside it.
//!
//! The holder is a thread of the shim, not a process: network namespaces are per thread,
//! `/proc/<tid>/ns/net` names a thread's, and a parked thread costs a small stack where a
//! process would cost megabytes.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use nix::sched::{CloneFlags, setns};

/// What can go wrong with the pod's network namespace.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetnsError {
    /// Opening or joining the namespace failed.
    #[error("failed to {action} the network namespace `{}`: {error}", path.display())]
    Namespace {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    /// The listener could not be bound or set up.
    #[error("failed to {action} `{addr}` in the pod's network namespace: {error}")]
    Listen {
        action: &'static str,
        addr: SocketAddr,
        error: io::Error,
    },
    /// A helper thread could not be started.
    #[error("failed to start the pod's {which} thread: {error}")]
    Spawn {
        which: &'static str,
        error: io::Error,
    },
    /// A helper thread ended before it answered.
    #[error("the pod's {0} thread ended before it answered")]
    Ended(&'static str),
}

/// Moves the calling thread into the network namespace at `netns`.
pub(crate) fn join(netns: &Path) -> Result<(), NetnsError> {
    let namespace = |action, error| NetnsError::Namespace {
        action,
        path: netns.to_owned(),
        error,
    };
    let file = std::fs::File::open(netns).map_err(|e| namespace("open", e))?;
    setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| namespace("join", e.into()))
}

/// A thread parked in the pod's network namespace; it ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Holder {
    tid: u32,
    _stop: mpsc::Sender<()>,
}

impl Holder {
    /// Starts a holder in `netns` (the host's when `None`), once it is inside.
    pub(crate) fn spawn(netns: Option<&Path>) -> Result<Holder, NetnsError> {
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
            .map_err(|error| NetnsError::Spawn {
                which: "holder",
                error,
            })?;
        let tid = joined.recv().map_err(|_| NetnsError::Ended("holder"))??;
        Ok(Holder { tid, _stop: stop })
    }

    /// Its thread id: `/proc/<tid>/ns/net` is the pod's network namespace.
    pub(crate) fn pid(&self) -> u32 {
        self.tid
    }
}

/// Binds `addr` inside `netns` (this process's namespace when `None`). Only a helper
/// thread joins the namespace; the socket stays in it after the thread ends.
pub(crate) fn bind_in(netns: Option<&Path>, addr: SocketAddr) -> Result<TcpListener, NetnsError> {
    let netns = netns.map(Path::to_owned);
    let listen = move |action, error| NetnsError::Listen {
        action,
        addr,
        error,
    };
    std::thread::spawn(move || {
        if let Some(netns) = &netns {
            join(netns)?;
        }
        let listener = TcpListener::bind(addr).map_err(|e| listen("listen on", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| listen("set up the listener on", e))?;
        Ok(listener)
    })
    .join()
    .map_err(|_| NetnsError::Ended("listener"))?
}
