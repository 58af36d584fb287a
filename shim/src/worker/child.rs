//! The worker itself: the shim binary run as `containerd-shim-wasmoci-v1
//! __wasmoci-worker ID BUNDLE STDIN STDOUT STDERR`, with the control socket on fd 3 and
//! the report pipe on fd 4.
//!
//! While it has one thread and is still root it joins the pod's network namespace and
//! the container's cgroup, opens the stdio fifos and seals the volumes in a mount
//! namespace of its own; then it waits for the compiled program over the control socket;
//! then it takes the container's identity and capabilities, sets `no_new_privs` and
//! installs the seccomp filter; only then does it map the program and tell the shim what
//! it is (the end of Create). At Start (with an HTTP component's listener) it starts
//! threads and runs the guest. Its exit status is the task's.

use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use wasmoci_runtime::exit::{Exit, StopHandle};
use wasmoci_runtime::host::{Output, Stdio};
use wasmoci_runtime::limits::MemoryBudget;
use wasmoci_runtime::program::{Program, Target, Want};
use wasmoci_runtime::run::Guest;
use wasmoci_runtime::serve::ServeOptions;
use wasmoci_spec::WasmKind;

use super::{CONTROL_FD, REPORT_FD, identity, seccomp, volumes};
use crate::bundle::Bundle;
use crate::error::shown;
use crate::plan::{Container, Plan, plan};
use crate::stdio::{open_input, open_output};
use crate::task::engine;
use crate::timing::mark;

/// What the shim passes on the command line.
struct Args {
    id: String,
    bundle: PathBuf,
    stdin: String,
    stdout: String,
    stderr: String,
}

impl Args {
    fn parse(args: &[String]) -> Option<Args> {
        // The id is there for `ps` and the timing marks: the shim's log names the task.
        let [id, bundle, stdin, stdout, stderr] = args else {
            return None;
        };
        Some(Args {
            id: id.clone(),
            bundle: PathBuf::from(bundle),
            stdin: stdin.clone(),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
        })
    }
}

/// The control socket the shim talks to this worker over (fd 3; see [`super`]).
struct Control {
    socket: OwnedFd,
    /// Whether the worker said what its program is (after that, its errors are the
    /// guest's, not Create's).
    ready: std::cell::Cell<bool>,
}

impl Control {
    fn take() -> Control {
        // SAFETY: fd 3 is the control socket the shim placed for this worker.
        #[allow(unsafe_code, reason = "taking the fds the shim placed")]
        let socket = unsafe { OwnedFd::from_raw_fd(CONTROL_FD) };
        Control {
            socket,
            ready: std::cell::Cell::new(false),
        }
    }

    /// The shim's next message (one byte) and the fds that came with it; `None` when the
    /// shim closed the socket instead.
    fn receive(&self) -> Result<Option<(u8, Vec<OwnedFd>)>, String> {
        let mut message = [0u8; 1];
        let mut space = nix::cmsg_space!([RawFd; 2]);
        let mut iov = [IoSliceMut::new(&mut message)];
        let received = loop {
            match recvmsg::<()>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(|e| format!("failed to hear from the shim: {e}"))?,
            }
        };
        let mut fds = Vec::new();
        for cmsg in received
            .cmsgs()
            .map_err(|e| format!("failed to hear from the shim: {e}"))?
        {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: fds the kernel just installed in this process for us.
                #[allow(unsafe_code, reason = "owning the fds SCM_RIGHTS passed")]
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        Ok((received.bytes == 1).then_some((message[0], fds)))
    }

    /// Tells the shim what the program is (`c`, `h`), or why it cannot run.
    fn reply(&self, message: &[u8]) {
        let _ = nix::sys::socket::send(self.socket.as_raw_fd(), message, MsgFlags::MSG_NOSIGNAL);
    }

    /// Why this worker failed, to the shim while it waits for the program to load (so
    /// that Create fails with it).
    fn failed(&self, reason: &str) {
        if !self.ready.get() {
            let mut message = b"e".to_vec();
            let mut end = reason.len().min(super::REASON_MAX - 1);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            message.extend_from_slice(&reason.as_bytes()[..end]);
            self.reply(&message);
        }
    }
}

/// The worker was not started (Create failed, or a Kill or Delete came first).
fn not_started() -> ! {
    log::debug!("the task was not started; the worker ends");
    std::process::exit(1);
}

/// Runs the worker to its exit status; never returns.
pub(crate) fn main(args: &[String]) -> ! {
    let shim = nix::unistd::getppid();
    log::set_logger(&STDERR_LOG).ok();
    log::set_max_level(if std::env::var_os(super::DEBUG_ENV).is_some() {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
    let Some(args) = Args::parse(args) else {
        log::error!(
            "expected ID BUNDLE STDIN STDOUT STDERR KIND LISTENER after `{}`",
            super::ARG
        );
        std::process::exit(2);
    };
    // The guest's stderr, for the reasons it stopped; the node's log gets them too.
    let mut stderr = Output::Null;
    mark(&args.id, "worker-main");
    let control = Control::take();
    let code = match run(&args, shim, &mut stderr, &control) {
        Ok(code) => code,
        Err(message) => {
            let message = shown(&message);
            control.failed(&message);
            log::error!("{message}");
            stderr.write_line(&format!("wasmoci: {message}"));
            1
        }
    };
    mark(&args.id, "worker-exits");
    std::process::exit(code);
}

fn run(
    args: &Args,
    shim: nix::unistd::Pid,
    stderr: &mut Output,
    control: &Control,
) -> Result<i32, String> {
    let container = match plan(
        &Bundle::load(&args.bundle).map_err(|e| e.to_string())?,
        &args.bundle,
    )
    .map_err(|e| e.to_string())?
    {
        Plan::Container(container) => container,
        Plan::Sandbox { .. } => return Err("a pod sandbox runs no worker".into()),
    };
    mark(&args.id, "worker-planned");
    // One thread, root: join, open, read.
    if let Some(netns) = &container.netns {
        crate::netns::join(netns).map_err(|e| e.to_string())?;
    }
    mark(&args.id, "worker-netns");
    if let Some(cgroup) = &container.confinement.cgroup {
        super::cgroup::join(cgroup).map_err(|e| e.to_string())?;
    }
    mark(&args.id, "worker-cgroup");
    *stderr = open_output(&args.stderr);
    let stdio = Stdio {
        stdin: open_input(&args.stdin),
        stdout: open_output(&args.stdout),
        stderr: stderr.clone(),
    };
    let mut sandbox = container.sandbox.clone();
    sandbox.dirs.retain(|d| d.host.is_dir());
    let privileged = container.privileged();
    mark(&args.id, "worker-stdio");
    if !privileged {
        volumes::seal(&mut sandbox.dirs)?;
    }
    mark(&args.id, "worker-joined");
    // SAFETY: fd 4 is the report pipe the shim made for this worker.
    #[allow(unsafe_code, reason = "taking the fds the shim placed")]
    let report = unsafe { std::fs::File::from_raw_fd(REPORT_FD) };
    // The program, read-only (0444: mapped by `/proc/self/fd/N` after leaving root).
    let Some((kind, fds)) = control.receive()? else {
        not_started()
    };
    let kind = match kind {
        b'c' => WasmKind::Component,
        b'm' => WasmKind::Module,
        _ => return Err("the shim sent a malformed program handoff".into()),
    };
    let image = std::fs::File::from(fds.into_iter().next().ok_or("the shim sent no program")?);
    mark(&args.id, "worker-handed");
    // Now the container's identity, and no way back; threads only after this.
    identity::take(&container.confinement, shim)?;
    if !privileged {
        seccomp::install().map_err(|e| format!("failed to install the seccomp filter: {e}"))?;
    }
    mark(&args.id, "worker-confined");
    let (engine, _) = engine().map_err(|e| e.to_string())?;
    mark(&args.id, "worker-engine");
    let name = &container.name;
    // SAFETY: the file is the compile cache entry the shim found through
    // `CompileCache::find` with an engine of these settings, its tag checked against
    // that open file, and handed over read-only.
    #[allow(
        unsafe_code,
        reason = "mapping the shim's own checked, compiled program"
    )]
    let program = unsafe { Program::from_handed_file(engine, kind, name, &image) }
        .map_err(|e| e.to_string())?;
    drop(image);
    mark(&args.id, "worker-mapped");
    let target = program
        .target(engine.engine(), name, container.entry.as_deref(), Want::Any)
        .map_err(|e| e.to_string())?;
    let handler = match (&target, &program) {
        (Target::Http, Program::Component(component)) => Some(
            wasmoci_runtime::serve::prepare(engine, component, name).map_err(|e| e.to_string())?,
        ),
        (Target::Http, Program::Module(_)) => {
            return Err(wasmoci_runtime::Error::Mismatch {
                name: name.clone(),
                what: "a core module".into(),
                advice: "only components can serve `wasi:http`".into(),
            }
            .to_string());
        }
        (Target::Command { .. }, _) => None,
    };
    control.reply(if handler.is_some() { b"h" } else { b"c" });
    control.ready.set(true);
    mark(&args.id, "worker-ready");
    // Start.
    let Some((b'g', fds)) = control.receive()? else {
        not_started()
    };
    let listener = fds.into_iter().next().map(std::net::TcpListener::from);
    mark(&args.id, "worker-go");
    // A command runs on this thread (its file I/O on tokio's blocking pool); a server's
    // requests on two.
    let runtime = match target {
        Target::Command { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Target::Http => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .map_err(|e| format!("failed to start an async runtime: {e}"))?;
    let stop = StopHandle::default();
    {
        let _inside = runtime.enter();
        forward_signals(&stop);
    }
    let limit = container.memory_limit.unwrap_or(u64::MAX);
    let limits = container.limits(MemoryBudget::new(limit));
    match (target, handler, listener) {
        (Target::Command { entry }, _, _) => {
            sandbox.entry = entry;
            let guest = Guest {
                engine,
                program: &program,
                name,
                sandbox: &sandbox,
                limits: &limits,
            };
            let stdout = stdio.stdout.clone();
            let exit = runtime
                .block_on(guest.run(stdio, &stop))
                .map_err(|e| e.to_string())?;
            mark(&args.id, "worker-guest-ended");
            let status = reported(&exit, stderr, report);
            drained(&[&stdout, stderr]);
            mark(&args.id, "worker-drained");
            // Now, without dropping the runtime (which waits for its blocking threads),
            // the store or the program: the kernel takes them all at once.
            std::process::exit(status)
        }
        (Target::Http, Some(handler), Some(listener)) => {
            let options = ServeOptions {
                sandbox,
                limits,
                admission: container.admission.clone(),
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                ..ServeOptions::default()
            };
            serve(&runtime, &container, handler, options, listener, &stop)
        }
        _ => Err(format!(
            "`{name}` serves `wasi:http` but the shim bound no listener"
        )),
    }
}

/// Waits until the readers of `outputs`, containerd's log copiers, have taken what the
/// guest wrote (2 s at most, for all of them): containerd may close its end of a fifo as
/// soon as it sees the exit, and what is still in the fifo is then lost (seen under
/// load: an empty pod log, "reading from a closed fifo" in containerd's log). runc's
/// shim waits for its copy the same way before it reports an exit. Only fifos are
/// watched (a regular file's FIONREAD is its unread length).
fn drained(outputs: &[&Output]) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileTypeExt;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    // Polled from 50 µs, doubling to 5 ms: a reader that is keeping up takes a short
    // write within a few hundred µs, and each exit waits for it.
    let mut pause = std::time::Duration::from_micros(50);
    for output in outputs {
        let Output::File(file) = output else {
            continue;
        };
        if !file.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
            continue;
        }
        while std::time::Instant::now() < deadline {
            let mut pending: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int through the pointer; the fd is ours and open.
            #[allow(
                unsafe_code,
                reason = "FIONREAD has no safe wrapper in our dependencies"
            )]
            let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FIONREAD, &mut pending) };
            if rc != 0 || pending == 0 {
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(5));
        }
    }
}

/// The exit status of a command, with why it stopped on its stderr and in the report.
fn reported(exit: &Exit, stderr: &Output, mut report: std::fs::File) -> i32 {
    if let Some(why) = exit.describe() {
        log::warn!("{}", shown(&why));
        stderr.write_line(&format!("wasmoci: {}", shown(&why)));
        if matches!(exit, Exit::MemoryLimit(_)) {
            let _ = report.write_all(super::REPORT_OOM);
        }
        if let Exit::Trap {
            backtrace: Some(bt),
            ..
        } = exit
        {
            // One escaped line: guest function names are the guest's.
            log::warn!("{}", shown(bt));
        }
    }
    exit.status()
}

/// Serves until SIGTERM (requests in flight finish: exit 0) or another signal (128 + it);
/// SIGKILL ends the process.
fn serve(
    runtime: &tokio::runtime::Runtime,
    container: &Container,
    handler: wasmoci_runtime::serve::HttpHandler,
    options: ServeOptions,
    listener: std::net::TcpListener,
    stop: &StopHandle,
) -> Result<i32, String> {
    let name = &container.name;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("failed to set up the listener: {e}"))?;
        let waiting = stop.clone();
        let report = wasmoci_runtime::serve::serve(handler, name, listener, options, async move {
            waiting.wait().await;
        })
        .await
        .map_err(|e| e.to_string())?;
        log::info!(
            "`{name}`: served {} request(s), {} failed",
            report.requests,
            report.failures
        );
        Ok(match stop.stopped() {
            Some(15) | None => 0,
            Some(signal) => 128 + signal,
        })
    })
}

/// Turns the signals a task's Kill sends into a stop of the guest (the first one wins);
/// must run inside the runtime.
fn forward_signals(stop: &StopHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
        SignalKind::quit(),
    ] {
        let raw = kind.as_raw_value();
        match signal(kind) {
            Ok(mut stream) => {
                let stop = stop.clone();
                tokio::spawn(async move {
                    if stream.recv().await.is_some() {
                        stop.stop(raw);
                    }
                });
            }
            Err(e) => log::warn!("failed to handle signal {raw}: {e}"),
        }
    }
}

/// The worker's log: lines on its stderr, which the shim reads into the node's log.
struct StderrLog;
static STDERR_LOG: StderrLog = StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}\n", record.level(), shown(record.args()));
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}
