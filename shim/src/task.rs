//! A task: its state machine (created → running → stopped, Start and Kill under one
//! lock), what it runs ([`Work`], prepared from a [`Plan`] with the effects: the wasm
//! fetched and compiled, the listener bound), and the thread that runs it to its exit
//! status. Exits are reported through [`Events`], so a task knows nothing of ttrpc.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use wasmoci_fs::Home;
use wasmoci_runtime::cache::{CompileCache, Lookup, Verified};
use wasmoci_runtime::engine::{EngineSettings, WasmEngine, build_engine};
use wasmoci_runtime::exit::StopHandle;

use crate::content::{self, Containerd};
use crate::error::{ShimError, shown};
use crate::netns;
use crate::plan::{Container, Plan};
use crate::timing::mark;
use crate::worker::{Ending, Image, Launch, Pending, Ready, Worker};

/// What a task tells the service as it runs.
pub(crate) trait Events: Send + Sync + 'static {
    /// The guest hit its memory limit (`/tasks/oom`).
    fn oom(&self, id: &str);
    /// The task ended with `code`: publish TaskExit, then let Wait return.
    fn exited(&self, id: &str, task: &Task, code: u32);
}

/// The engine every task of this shim process uses, and the node-wide compile cache.
pub(crate) fn engine() -> Result<&'static (WasmEngine, CompileCache), ShimError> {
    type Engine = (WasmEngine, CompileCache);
    static ENGINE: OnceLock<Result<Engine, Arc<wasmoci_runtime::Error>>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let engine = build_engine(&EngineSettings {
                pooling: Some(false),
                ..EngineSettings::default()
            })
            .map_err(Arc::new)?;
            Ok((engine, CompileCache::new(Home::node().compile_cache())))
        })
        .as_ref()
        .map_err(|e| ShimError::EngineSetup(e.clone()))
}

/// The cache entry of `loaded`, verified, not mapped (the worker maps it): found by its
/// digest (a second start of a digest on this node reads none of the wasm); compiled and
/// stored first when there is none, or none that can be run.
fn compiled(
    engine: &WasmEngine,
    cache: &CompileCache,
    name: &str,
    loaded: content::Loaded,
) -> Result<Verified, ShimError> {
    let digest = loaded.digest;
    match cache.find(engine, &digest)? {
        Lookup::Hit(entry) => return Ok(entry),
        Lookup::Miss => {}
        Lookup::Unusable(reason) => log::warn!(
            "the compile cache entry of `{digest}` was unusable ({reason}); compiling it again"
        ),
    }
    let wasm = loaded.read()?;
    cache.store(engine, name, &wasm, &digest)?;
    drop(wasm);
    give_back_freed_memory();
    match cache.find(engine, &digest)? {
        Lookup::Hit(entry) => Ok(entry),
        Lookup::Miss => Err(ShimError::Engine(wasmoci_runtime::Error::Compile {
            name: name.to_owned(),
            reason: "its compile cache entry vanished as soon as it was written".into(),
        })),
        Lookup::Unusable(reason) => Err(ShimError::Engine(wasmoci_runtime::Error::Compile {
            name: name.to_owned(),
            reason: format!(
                "its compile cache entry was unusable as soon as it was written ({reason})"
            ),
        })),
    }
}

/// Returns the heap the compiler freed to the kernel: glibc keeps it otherwise, and the
/// shim of the pod that compiled a digest would hold it as long as the pod lives
/// (measured: ~250 MiB after compiling the 18 MB Python HTTP component, against ~13 MiB
/// for the pods that found it compiled).
fn give_back_freed_memory() {
    // SAFETY: malloc_trim(3) only releases free memory of the allocator.
    #[allow(unsafe_code, reason = "malloc_trim(3) has no safe wrapper")]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Status {
    Created,
    Running,
    Stopped { code: u32, at: Timestamp },
}

/// What a task runs.
pub(crate) enum Work {
    /// The pod sandbox: nothing runs; it lives until it is killed (its holder thread
    /// keeps the pod's network namespace).
    Hold,
    /// A container the node policy refuses: nothing runs; Start fails with why, after
    /// writing it to the container's log (containerd reads the log while it starts a
    /// task, not always while it creates one).
    Refused {
        refusal: crate::node_policy::PolicyError,
        /// The worker spawned before the refusal: it holds the container's stderr open,
        /// and so containerd reading it, until the line is written. Ended at Start.
        worker: Option<Box<(Worker, Pending, Ending)>>,
    },
    /// A container: its worker process ([`crate::worker`]), started, its program
    /// mapped, waiting for Start; an HTTP component's listener, bound in the pod's
    /// network namespace.
    Guest {
        worker: Worker,
        pending: Pending,
        ending: Ending,
        listener: Option<std::net::TcpListener>,
    },
}

impl Work {
    /// The pid containerd sees for a created task: its worker's (none for the sandbox).
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Work::Hold | Work::Refused { .. } => None,
            Work::Guest { worker, .. } => Some(worker.pid()),
        }
    }
}

/// Does what `plan` needs done before the task can start: makes the container's cgroup
/// and starts its worker (which joins it, the pod's network namespace and its stdio
/// meanwhile), fetches and compiles the wasm, checks what it runs as and its volumes,
/// binds an HTTP component's listener. A failure leaves no worker and no cgroup.
pub(crate) fn prepare(
    plan: &Plan,
    containerd: Option<Containerd<'_>>,
    launch: &Launch<'_>,
    policy_path: Option<&str>,
) -> Result<Work, ShimError> {
    let container = match plan {
        Plan::Sandbox { .. } => return Ok(Work::Hold),
        Plan::Container(container) => container,
    };
    // Before anything is made: a policy that cannot be read refuses every start.
    let policy = match crate::node_policy::current(policy_path) {
        Ok(policy) => policy,
        Err(refusal) => {
            return Ok(Work::Refused {
                refusal,
                worker: None,
            });
        }
    };
    let cgroup = container.confinement.cgroup.as_deref();
    if let Some(cgroup) = cgroup {
        crate::worker::create_cgroup(cgroup, &container.confinement.resources)?;
    }
    mark(launch.id, "cgroup-made");
    let started = Worker::start(launch).and_then(|(worker, pending, ending)| {
        mark(launch.id, "worker-spawned");
        match program(container, containerd, launch.id, &pending, &policy) {
            Ok(listener) => Ok(Work::Guest {
                worker,
                pending,
                ending,
                listener,
            }),
            // Created, to be refused at Start: the worker stays until then.
            Err(ShimError::Policy(refusal)) => Ok(Work::Refused {
                refusal,
                worker: Some(Box::new((worker, pending, ending))),
            }),
            Err(e) => {
                abandon(worker, pending, ending);
                Err(e)
            }
        }
    });
    if started.is_err()
        && let Some(cgroup) = cgroup
    {
        crate::worker::remove_cgroup(cgroup, std::time::Duration::ZERO);
    }
    started
}

/// Ends a refused container's worker, if it has one, and its cgroup.
pub(crate) fn end_refused(worker: Option<Box<(Worker, Pending, Ending)>>, cgroup: Option<&Path>) {
    if let Some(worker) = worker {
        let (worker, pending, ending) = *worker;
        abandon(worker, pending, ending);
    }
    if let Some(cgroup) = cgroup {
        crate::worker::remove_cgroup(cgroup, std::time::Duration::ZERO);
    }
}

/// Ends a worker that will not be started, and waits for it, so that its cgroup can go.
fn abandon(worker: Worker, pending: Pending, ending: Ending) {
    drop(pending);
    let _ = worker.signal(libc::SIGKILL);
    let _ = ending.wait();
}

/// Finds (or compiles) the program of `container` and hands it to its worker, which
/// maps it; the listener it serves on, when it serves.
fn program(
    container: &Container,
    containerd: Option<Containerd<'_>>,
    id: &str,
    worker: &Pending,
    policy: &wasmoci_spec::node_policy::NodePolicy,
) -> Result<Option<std::net::TcpListener>, ShimError> {
    let Container {
        name,
        source,
        sandbox,
        listen,
        netns,
        ..
    } = container;
    let mut loaded = content::load(source, containerd, id, policy)?;
    mark(id, "content-found");
    crate::node_policy::enforce(policy, &mut loaded)?;
    mark(id, "policy-checked");
    let (engine, cache) = engine()?;
    mark(id, "engine-ready");
    let compiled = compiled(engine, cache, name, loaded)?;
    mark(id, "compiled-found");
    // Only what exists on the host becomes a directory the guest may use (CRI also binds
    // files: `/etc/hosts`, `/etc/resolv.conf`, …).
    let state = crate::mounts::node_state();
    for dir in sandbox.dirs.iter().filter(|d| d.host.is_dir()) {
        crate::mounts::check_volume(&dir.host, &dir.guest, container.privileged(), &state)?;
    }
    let ready = worker.hand(&Image::of(compiled))?;
    mark(id, "checked");
    Ok(match ready {
        Ready::Command => None,
        Ready::Http => Some(netns::bind_in(netns.as_deref(), *listen)?),
    })
}

pub(crate) struct Task {
    /// The pid containerd sees: the holder thread's for the sandbox, the worker's once a
    /// container has started, the shim's before.
    pub(crate) pid: AtomicU32,
    /// `linux.resources.memory.limit` (0: none), for Stats.
    pub(crate) memory_limit: u64,
    /// The container's cgroup, which the shim made and removes.
    pub(crate) cgroup: Option<PathBuf>,
    pub(crate) holder: Mutex<Option<netns::Holder>>,
    /// The worker running the guest, once started.
    pub(crate) worker: Mutex<Option<Worker>>,
    pub(crate) bundle: String,
    pub(crate) stdin: String,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Status and the work not yet started, under one lock: Start and Kill race.
    pub(crate) state: Mutex<TaskState>,
    pub(crate) changed: Condvar,
    /// A kill: ends a holder; remembered for a worker not yet running.
    pub(crate) stop: StopHandle,
}

pub(crate) struct TaskState {
    pub(crate) status: Status,
    pub(crate) work: Option<Work>,
}

impl Task {
    pub(crate) fn status(&self) -> Status {
        self.state.lock().expect("not poisoned").status.clone()
    }

    pub(crate) fn finish(&self, code: u32, at: Timestamp) {
        self.state.lock().expect("not poisoned").status = Status::Stopped { code, at };
        self.changed.notify_all();
    }

    pub(crate) fn wait(&self) -> (u32, Timestamp) {
        let mut state = self.state.lock().expect("not poisoned");
        loop {
            if let Status::Stopped { code, at } = &state.status {
                return (*code, at.clone());
            }
            state = self.changed.wait(state).expect("not poisoned");
        }
    }

    /// Takes the work of a created task to start it.
    pub(crate) fn begin(&self, id: &str) -> Result<Work, ShimError> {
        let mut state = self.state.lock().expect("not poisoned");
        let work = state.work.take();
        match (&state.status, work) {
            (Status::Created, Some(work)) => {
                state.status = Status::Running;
                Ok(work)
            }
            (Status::Stopped { .. }, _) => Err(ShimError::StoppedBeforeStart(id.to_owned())),
            _ => Err(ShimError::AlreadyStarted(id.to_owned())),
        }
    }

    /// Ends the work of a task that was never started (its worker, waited for); whether
    /// there was one.
    pub(crate) fn cancel(&self) -> bool {
        let work = {
            let mut state = self.state.lock().expect("not poisoned");
            if !matches!(state.status, Status::Created) {
                return false;
            }
            state.work.take()
        };
        match work {
            Some(Work::Guest {
                worker,
                pending,
                ending,
                ..
            }) => {
                abandon(worker, pending, ending);
                true
            }
            Some(Work::Refused { worker, .. }) => {
                end_refused(worker, self.cgroup.as_deref());
                true
            }
            Some(Work::Hold) => true,
            None => false,
        }
    }

    /// The pid containerd sees now.
    pub(crate) fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Sends `signal` to the task: to its worker once it runs; a holder (and a worker
    /// about to start) stops through [`Task::stop`].
    pub(crate) fn signal(&self, signal: i32) {
        self.stop.stop(signal);
        if let Some(worker) = self.worker.lock().expect("not poisoned").as_ref()
            && let Err(e) = worker.signal(signal)
            && e.raw_os_error() != Some(libc::ESRCH)
        {
            log::warn!("failed to signal the worker {}: {e}", worker.pid());
        }
    }

    /// Memory in bytes and CPU time in µs the task uses: its cgroup's, else its
    /// worker's.
    pub(crate) fn usage(&self) -> (u64, u64) {
        if let Some(cgroup) = &self.cgroup {
            return crate::worker::usage(cgroup);
        }
        if self.worker.lock().expect("not poisoned").is_none() {
            return (0, 0);
        }
        process_usage(self.pid())
    }
}

/// A process's resident memory (bytes) and CPU time (µs), from `/proc`.
fn process_usage(pid: u32) -> (u64, u64) {
    let memory = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0);
    // utime and stime, fields 14 and 15, after the parenthesised name.
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            // SAFETY: sysconf has no preconditions.
            #[allow(unsafe_code, reason = "sysconf(_SC_CLK_TCK) has no safe wrapper here")]
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            Some(ticks * 1_000_000 / hz)
        })
        .unwrap_or(0);
    (memory, cpu)
}

/// Runs a task's work to the end: the exit status. A guest runs in a worker, started
/// here; `launched` is called once it runs (its pid set) or failed to start, before this
/// waits.
pub(crate) fn run_work(
    events: &dyn Events,
    id: &str,
    task: &Task,
    work: Work,
    launched: impl FnOnce(),
) -> u32 {
    match work {
        Work::Refused { .. } => {
            unreachable!("Start refuses it before it runs");
        }
        Work::Hold => {
            launched();
            // The sandbox holds until it is killed.
            let signal = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(task.stop.wait()))
                .unwrap_or(9);
            task.holder.lock().expect("not poisoned").take();
            128 + signal as u32
        }
        Work::Guest {
            worker,
            pending,
            ending,
            listener,
        } => {
            let sent = pending.go(listener.as_ref());
            // The worker holds its own copy now.
            drop(listener);
            *task.worker.lock().expect("not poisoned") = Some(worker);
            // A kill that came while it started.
            if let Some(signal) = task.stop.stopped() {
                task.signal(signal);
            }
            launched();
            if let Err(e) = sent {
                // It ended before Start (its stderr says why), or cannot be reached: its
                // end is waited for below either way (the socket is closed now).
                log::warn!(
                    "task `{id}`: failed to hand the worker its program: {}",
                    shown(&e)
                );
            }
            let (code, oom) = ending.wait();
            mark(id, "exit-seen");
            let killed_by_kernel = code == 137
                && task
                    .cgroup
                    .as_deref()
                    .is_some_and(crate::worker::oom_killed);
            if oom || killed_by_kernel {
                events.oom(id);
            }
            code
        }
    }
}
