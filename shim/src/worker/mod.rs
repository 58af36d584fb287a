//! A worker process per container: the guest runs in a process of its own, which the
//! shim starts at Create by executing itself (`/proc/self/exe __wasmoci-worker …`, so it
//! shares no threads or memory with the shim), as runc starts its init at `create`. It
//! joins the container's cgroup and network namespace and opens its stdio while the shim
//! finds the compiled program; the shim hands it the program (its read-only compile
//! cache entry) over a socket; the worker takes the container's user and capabilities,
//! `no_new_privs` and a seccomp filter ([`child`]), maps the program and says what it
//! is; at Start the shim sends it "go" (and an HTTP component's listener) and it runs the
//! guest. The worker's pid is the task's, its exit status the task's, a Kill a signal to
//! it (through a pidfd).
//!
//! The socket is a `SOCK_SEQPACKET` pair, one message each way per step:
//! - shim → worker: the kind (`c` component, `m` module) with the entry's fd;
//! - worker → shim: `c` (a command), `h` (it serves `wasi:http`) or `e` and why it
//!   cannot run (at most [`REASON_MAX`] bytes);
//! - shim → worker, at Start: `g`, with the listener's fd when it serves.
//!
//! A socket closed instead of a message ends the worker (a Create that failed, a Kill
//! or Delete before Start).

mod cgroup;
mod child;
mod identity;
mod seccomp;
mod volumes;

use std::io::{BufRead, IoSlice, IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use containerd_shim::monitor::{Subject, Subscription, Topic, monitor_subscribe};
use nix::fcntl::{FcntlArg, fcntl};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};
use wasmoci_runtime::cache::Verified;
use wasmoci_spec::WasmKind;

pub(crate) use cgroup::{create as create_cgroup, oom_killed, remove as remove_cgroup, usage};
pub(crate) use child::main as child_main;

use crate::error::{ShimError, shown};

/// The first argument that makes the shim binary a worker.
pub(crate) const ARG: &str = "__wasmoci-worker";

/// Where the worker finds the control socket and the report pipe.
const CONTROL_FD: RawFd = 3;
const REPORT_FD: RawFd = 4;

/// The longest reason a worker gives for a program it cannot run.
const REASON_MAX: usize = 4096;

/// How long Create waits for the worker to map the program and say what it is.
const READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Set in the worker's environment when the shim logs at debug level: so does the worker.
const DEBUG_ENV: &str = "WASMOCI_WORKER_DEBUG";

/// What the worker writes to the report pipe when its guest hit the memory limit.
const REPORT_OOM: &[u8] = b"oom\n";

/// The longest line of the worker's log that reaches the node's log.
const LOG_LINE_MAX: u64 = 4096;

/// A compiled program: its compile cache entry, open read-only, which the worker maps
/// (pages of code shared with every other worker of that digest on the node).
#[derive(Debug)]
pub(crate) struct Image {
    file: std::fs::File,
    kind: WasmKind,
}

impl Image {
    /// The program of a verified cache entry, for a worker.
    pub(crate) fn of(entry: Verified) -> Image {
        Image {
            kind: entry.kind,
            file: entry.file,
        }
    }
}

/// What a worker found its program to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// It runs to its exit status.
    Command,
    /// It serves `wasi:http`: it needs a listener.
    Http,
}

/// What a worker is started with.
pub(crate) struct Launch<'a> {
    pub(crate) id: &'a str,
    pub(crate) bundle: &'a str,
    pub(crate) stdin: &'a str,
    pub(crate) stdout: &'a str,
    pub(crate) stderr: &'a str,
}

/// A running worker, to signal.
#[derive(Debug)]
pub(crate) struct Worker {
    pid: u32,
    pidfd: OwnedFd,
}

/// A started worker waiting for its program, then for Start: dropping this ends it.
#[derive(Debug)]
pub(crate) struct Pending {
    id: String,
    control: OwnedFd,
}

/// A running worker's end, to wait for.
pub(crate) struct Ending {
    pid: u32,
    report: std::io::PipeReader,
    exits: Subscription,
}

impl Worker {
    /// Starts the worker for a task; it joins what it can and waits for its program.
    pub(crate) fn start(launch: &Launch<'_>) -> Result<(Worker, Pending, Ending), ShimError> {
        let id = launch.id;
        let failed = |what: &str, e: &dyn std::fmt::Display| ShimError::Worker {
            id: id.to_owned(),
            reason: format!("failed to {what}: {e}"),
        };
        // Subscribed before the worker exists: its exit cannot be missed.
        let exits = monitor_subscribe(Topic::Pid).map_err(|e| failed("watch exits", &e))?;
        let (report, report_child) = std::io::pipe().map_err(|e| failed("make a pipe", &e))?;
        let (log, log_child) = std::io::pipe().map_err(|e| failed("make a pipe", &e))?;
        let (control, control_child) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| failed("make a socket pair", &e))?;
        // Above the fds the worker expects, so that placing one cannot close another.
        let high = |fd: std::os::fd::BorrowedFd<'_>| {
            let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(10))
                .map_err(|e| failed("duplicate an fd", &e))?;
            // SAFETY: a new fd that nothing else owns; dropped when the worker has it.
            #[allow(unsafe_code, reason = "owning the fd fcntl returned")]
            Ok::<_, ShimError>(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
        };
        let control_fd = high(control_child.as_fd())?;
        let report_fd = high(report_child.as_fd())?;
        drop((control_child, report_child));
        let placed = [
            (control_fd.as_raw_fd(), CONTROL_FD),
            (report_fd.as_raw_fd(), REPORT_FD),
        ];
        let mut command = std::process::Command::new("/proc/self/exe");
        command
            .arg0("containerd-shim-wasmoci-v1")
            .arg(ARG)
            .args([
                id,
                launch.bundle,
                launch.stdin,
                launch.stdout,
                launch.stderr,
            ])
            .env_clear()
            .envs(log::log_enabled!(log::Level::Debug).then_some((DEBUG_ENV, "1")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_child);
        // SAFETY: between fork and exec the closure only calls dup2(2), which is
        // async-signal-safe, on fds that are open in the child.
        #[allow(unsafe_code, reason = "placing fds in the child")]
        unsafe {
            command.pre_exec(move || {
                for (from, to) in &placed {
                    if libc::dup2(*from, *to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = on_spawner(move || command.spawn())
            .and_then(|spawned| spawned)
            .map_err(|e| failed("run `/proc/self/exe`", &e))?;
        let pid = child.id();
        let pidfd = match pidfd_open(pid) {
            Ok(pidfd) => pidfd,
            Err(e) => {
                // No worker is left running that nothing could signal.
                let _ = child.kill();
                return Err(failed("open a pidfd", &e));
            }
        };
        // The shim's reaper waits for it; nothing here does.
        drop(child);
        relay_log(id, log);
        Ok((
            Worker { pid, pidfd },
            Pending {
                id: id.to_owned(),
                control,
            },
            Ending { pid, report, exits },
        ))
    }

    /// The worker's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to the worker (not to a process that took its pid after it ended).
    pub(crate) fn signal(&self, signal: i32) -> std::io::Result<()> {
        // SAFETY: a pidfd we own, a null siginfo, no flags.
        #[allow(
            unsafe_code,
            reason = "pidfd_send_signal(2) has no wrapper in our dependencies"
        )]
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

impl Pending {
    /// Hands the worker its program: what it is, once the worker (as the container's
    /// user, confined) has mapped it; the error of a program it cannot run.
    pub(crate) fn hand(&self, image: &Image) -> Result<Ready, ShimError> {
        let failed = |reason: String| ShimError::Worker {
            id: self.id.clone(),
            reason,
        };
        let kind = match image.kind {
            WasmKind::Component => b'c',
            WasmKind::Module => b'm',
        };
        if let Err(e) = self.send(&[kind], &[image.file.as_raw_fd()]) {
            // It ended already: what it said before it did, if anything.
            return match self.reply(MsgFlags::MSG_DONTWAIT) {
                Ok(reply) if !reply.is_empty() => self.ready(&reply),
                _ => Err(failed(format!("failed to hand it the program: {e}"))),
            };
        }
        let mut poll = [nix::poll::PollFd::new(
            self.control.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let limit =
            nix::poll::PollTimeout::try_from(READY_LIMIT).unwrap_or(nix::poll::PollTimeout::MAX);
        loop {
            match nix::poll::poll(&mut poll, limit) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(failed(format!("failed to wait for it: {e}"))),
                Ok(0) => {
                    return Err(failed(format!(
                        "it did not load the program within {READY_LIMIT:?}"
                    )));
                }
                Ok(_) => break,
            }
        }
        let reply = self
            .reply(MsgFlags::empty())
            .map_err(|e| failed(format!("failed to hear from it: {e}")))?;
        self.ready(&reply)
    }

    /// The worker's next message (empty: it closed the socket).
    fn reply(&self, flags: MsgFlags) -> nix::Result<Vec<u8>> {
        let mut reply = vec![0u8; REASON_MAX + 1];
        let mut iov = [IoSliceMut::new(&mut reply)];
        let bytes = loop {
            match recvmsg::<()>(self.control.as_raw_fd(), &mut iov, None, flags) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other?.bytes,
            }
        };
        reply.truncate(bytes);
        Ok(reply)
    }

    /// What the worker's reply says.
    fn ready(&self, reply: &[u8]) -> Result<Ready, ShimError> {
        let failed = |reason: String| ShimError::Worker {
            id: self.id.clone(),
            reason,
        };
        match *reply {
            [b'c'] => Ok(Ready::Command),
            [b'h'] => Ok(Ready::Http),
            [b'e', ref reason @ ..] => Err(ShimError::Program {
                id: self.id.clone(),
                reason: String::from_utf8_lossy(reason).into_owned(),
            }),
            [] => Err(failed(
                "it ended before it loaded the program (the node's log says why)".into(),
            )),
            _ => Err(failed("it sent a malformed reply".into())),
        }
    }

    /// Start: the worker runs the guest (an HTTP component on `listener`).
    pub(crate) fn go(self, listener: Option<&std::net::TcpListener>) -> std::io::Result<()> {
        let fds: Vec<RawFd> = listener.map(AsRawFd::as_raw_fd).into_iter().collect();
        self.send(b"g", &fds)
    }

    fn send(&self, message: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
        let rights = [ControlMessage::ScmRights(fds)];
        let sent = sendmsg::<()>(
            self.control.as_raw_fd(),
            &[IoSlice::new(message)],
            if fds.is_empty() { &[] } else { &rights },
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        if sent == message.len() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "sent {sent} of {} bytes",
                message.len()
            )))
        }
    }
}

impl Ending {
    /// Waits for the worker to exit: its status (128 + the signal that killed it), and
    /// whether its guest hit the memory limit.
    pub(crate) fn wait(mut self) -> (u32, bool) {
        let pid = i32::try_from(self.pid).unwrap_or(-1);
        let code = loop {
            match self.exits.rx.recv() {
                Ok(event) if matches!(event.subject, Subject::Pid(p) if p == pid) => {
                    break event.exit_code;
                }
                Ok(_) => continue,
                Err(_) => break 255,
            }
        };
        let mut report = Vec::new();
        let _ = (&mut self.report).take(64).read_to_end(&mut report);
        (
            u32::try_from(code).unwrap_or(255),
            report.starts_with(REPORT_OOM),
        )
    }
}

/// Runs `job` on the shim's one spawning thread, which lives as long as the shim: a
/// worker's parent-death signal (`PR_SET_PDEATHSIG`, [`identity`]) fires when the
/// *thread* that forked it ends, and the RPC threads it would otherwise be forked from
/// come and go.
fn on_spawner<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    type Job = Box<dyn FnOnce() + Send>;
    static SPAWNER: std::sync::OnceLock<
        std::io::Result<std::sync::Mutex<std::sync::mpsc::Sender<Job>>>,
    > = std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("worker-spawner".into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .map(|_| std::sync::Mutex::new(jobs))
    });
    let spawner = spawner
        .as_ref()
        .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))?;
    let (done, result) = std::sync::mpsc::channel();
    spawner
        .lock()
        .expect("not poisoned")
        .send(Box::new(move || {
            let _ = done.send(job());
        }))
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))?;
    result
        .recv()
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
    #[allow(
        unsafe_code,
        reason = "pidfd_open(2) has no wrapper in our dependencies"
    )]
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd that nothing else owns.
    #[allow(unsafe_code, reason = "owning the fd pidfd_open returned")]
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as RawFd) })
}

/// Copies the worker's log lines (escaped, each bounded) into the node's log.
fn relay_log(id: &str, log: std::io::PipeReader) {
    let id_for_warning = id;
    let id = id.to_owned();
    let relay = move || {
        let mut lines = std::io::BufReader::new(log);
        loop {
            let mut line = Vec::new();
            match (&mut lines).take(LOG_LINE_MAX).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    log::info!("task `{id}`: {}", shown(text.trim_end()));
                    if !line.ends_with(b"\n") {
                        // The rest of an overlong line is dropped.
                        let _ = lines.skip_until(b'\n');
                    }
                }
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("worker-log".into())
        .spawn(relay)
    {
        log::warn!(
            "failed to read the log of the worker of `{}`: {e}",
            shown(id_for_warning)
        );
    }
}
