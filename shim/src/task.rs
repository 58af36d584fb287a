//! A task: its state machine (created → running → stopped, Start and Kill under one
//! lock), what it runs ([`Work`], prepared from a [`Plan`] with the effects: the wasm
//! fetched and compiled, the listener bound), and the thread that runs it to its exit
//! status. Exits are reported through [`Events`], so a task knows nothing of ttrpc.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use wasmoci_fs::Home;
use wasmoci_runtime::cache::CompileCache;
use wasmoci_runtime::engine::{EngineSettings, WasmEngine, build_engine};
use wasmoci_runtime::exit::{Exit, StopHandle};
use wasmoci_runtime::host::{Output, Stdio};
use wasmoci_runtime::limits::{Limits, MemoryBudget};
use wasmoci_runtime::program::{Program, Target, Want};
use wasmoci_runtime::run::Guest;
use wasmoci_runtime::sandbox::Sandbox;
use wasmoci_runtime::serve::{HttpHandler, ServeOptions};

use crate::content::{self, Containerd};
use crate::error::{ShimError, shown};
use crate::netns;
use crate::plan::{Container, Plan};
use crate::stdio::{open_input, open_output};

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
    /// A `wasi:http/incoming-handler` component, served on a listener in the pod's
    /// network namespace.
    Http {
        name: String,
        handler: HttpHandler,
        options: ServeOptions,
        listener: std::net::TcpListener,
    },
    /// A command.
    Command {
        name: String,
        program: Program,
        sandbox: Sandbox,
        limits: Limits,
    },
}

/// Does what `plan` needs done before the task can start: fetches and compiles the wasm,
/// decides what it runs as, binds an HTTP component's listener.
pub(crate) fn prepare(
    plan: &Plan,
    containerd: Option<Containerd<'_>>,
    id: &str,
    memory: &Arc<MemoryBudget>,
) -> Result<Work, ShimError> {
    let container = match plan {
        Plan::Sandbox { .. } => return Ok(Work::Hold),
        Plan::Container(container) => container,
    };
    let Container {
        name,
        source,
        entry,
        sandbox,
        listen,
        netns,
        ..
    } = &**container;
    let loaded = content::load(source, containerd, id)?;
    let (engine, cache) = engine()?;
    let (program, _) = cache.load(engine, name, &loaded.wasm, &loaded.digest)?;
    // Only what exists on the host becomes a directory the guest may use (CRI also binds
    // files: `/etc/hosts`, `/etc/resolv.conf`, …).
    let mut sandbox = sandbox.clone();
    sandbox.dirs.retain(|d| d.host.is_dir());
    let state = crate::mounts::node_state();
    for dir in &sandbox.dirs {
        crate::mounts::check_volume(&dir.host, &dir.guest, container.privileged, &state)?;
    }
    let limits = container.limits(memory.clone());
    let component = match program.target(engine.engine(), name, entry.as_deref(), Want::Any)? {
        Target::Command { entry } => {
            sandbox.entry = entry;
            return Ok(Work::Command {
                name: name.clone(),
                program,
                sandbox,
                limits,
            });
        }
        Target::Http => match &program {
            Program::Component(component) => component,
            Program::Module(_) => {
                return Err(ShimError::Engine(wasmoci_runtime::Error::Mismatch {
                    name: name.clone(),
                    what: "a core module".into(),
                    advice: "only components can serve `wasi:http`".into(),
                }));
            }
        },
    };
    let handler = wasmoci_runtime::serve::prepare(engine, component, name)?;
    let listener = netns::bind_in(netns.as_deref(), *listen)?;
    Ok(Work::Http {
        name: name.clone(),
        handler,
        options: ServeOptions {
            sandbox,
            limits,
            admission: container.admission.clone(),
            ..ServeOptions::default()
        },
        listener,
    })
}

pub(crate) struct Task {
    /// The pid containerd sees: the holder thread's for the sandbox, the shim's otherwise.
    pub(crate) pid: u32,
    /// `linux.resources.memory.limit` (0: none), for Stats.
    pub(crate) memory_limit: u64,
    /// The linear memory all the task's instances hold now, for Stats.
    pub(crate) memory: Arc<MemoryBudget>,
    /// The threads that run its guests, and the most CPU time (ns) seen on them, for
    /// Stats (a counter must not go down when a thread ends).
    pub(crate) threads: Arc<Mutex<Vec<u32>>>,
    pub(crate) cpu_seen: AtomicU64,
    pub(crate) holder: Mutex<Option<netns::Holder>>,
    /// A second, hard stop (SIGKILL after SIGTERM) ends an HTTP drain.
    pub(crate) hard_stop: Arc<tokio::sync::Notify>,
    /// The pod's network namespace, which the guest's threads join (so its sockets, when
    /// granted, are the pod's, not the node's).
    pub(crate) netns: Option<PathBuf>,
    pub(crate) bundle: String,
    pub(crate) stdin: String,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Status and the work not yet started, under one lock: Start and Kill race.
    pub(crate) state: Mutex<TaskState>,
    pub(crate) changed: Condvar,
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

    /// Drops the work of a task that was never started; whether there was one.
    pub(crate) fn cancel(&self) -> bool {
        let mut state = self.state.lock().expect("not poisoned");
        matches!(state.status, Status::Created) && state.work.take().is_some()
    }

    /// CPU time (µs) its guests' threads have run, as far as it can still be read.
    pub(crate) fn cpu_usage_usec(&self) -> u64 {
        let now: u64 = self
            .threads
            .lock()
            .expect("not poisoned")
            .iter()
            .filter_map(|tid| {
                std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()
            })
            .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        let seen = self.cpu_seen.fetch_max(now, Ordering::Relaxed).max(now);
        seen / 1000
    }
}

/// Runs a task's work on its own thread to the end: the exit status.
pub(crate) fn run_work(events: &dyn Events, id: &str, runner: &Task, work: Work) -> u32 {
    runner
        .threads
        .lock()
        .expect("not poisoned")
        .push(current_tid());
    let stderr = match work {
        Work::Hold => Output::Null,
        _ => open_output(&runner.stderr),
    };
    // The guest's threads (this one, and every one its runtime starts from here) live in
    // the pod's network namespace.
    if !matches!(work, Work::Hold)
        && let Some(netns) = &runner.netns
        && let Err(e) = netns::join(netns)
    {
        log::error!("task `{id}`: {}", shown(&e));
        stderr.write_line(&format!("wasmoci: {}", shown(&e)));
        return 1;
    }
    match work {
        Work::Hold => {
            // The sandbox holds until it is killed.
            let signal = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(runner.stop.wait()))
                .unwrap_or(9);
            runner.holder.lock().expect("not poisoned").take();
            128 + signal as u32
        }
        Work::Http {
            name,
            handler,
            mut options,
            listener,
        } => {
            options.stdout = open_output(&runner.stdout);
            options.stderr = stderr.clone();
            match serve_until(&name, handler, options, listener, runner) {
                Ok(code) => code,
                Err(e) => {
                    log::error!("task `{id}`: {}", shown(&e));
                    stderr.write_line(&format!("wasmoci: {}", shown(&e)));
                    1
                }
            }
        }
        Work::Command {
            name,
            program,
            sandbox,
            limits,
        } => {
            let stdio = Stdio {
                stdin: open_input(&runner.stdin),
                stdout: open_output(&runner.stdout),
                stderr: stderr.clone(),
            };
            let exit = match engine() {
                Ok((engine, _)) => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| {
                        let guest = Guest {
                            engine,
                            program: &program,
                            name: &name,
                            sandbox: &sandbox,
                            limits: &limits,
                        };
                        rt.block_on(guest.run(stdio, &runner.stop))
                            .map_err(|e| e.to_string())
                    }),
                Err(e) => Err(e.to_string()),
            };
            match exit {
                Ok(exit) => {
                    if let Some(why) = exit.describe() {
                        log::warn!("task `{id}`: {}", shown(&why));
                        // Where `kubectl logs` shows it.
                        stderr.write_line(&format!("wasmoci: {}", shown(&why)));
                        if matches!(exit, Exit::MemoryLimit(_)) {
                            events.oom(id);
                        }
                        if let Exit::Trap {
                            backtrace: Some(bt),
                            ..
                        } = &exit
                        {
                            // One escaped line: guest function names are the guest's.
                            log::warn!("task `{id}`: {}", shown(bt));
                        }
                    }
                    exit.status() as u32
                }
                Err(e) => {
                    log::error!("task `{id}`: {}", shown(&e));
                    stderr.write_line(&format!("wasmoci: {}", shown(&e)));
                    1
                }
            }
        }
    }
}

pub(crate) fn current_tid() -> u32 {
    u32::try_from(nix::unistd::gettid().as_raw()).unwrap_or_default()
}

/// Serves until the task is stopped: SIGTERM stops accepting and lets requests in flight
/// finish (exit 0), SIGKILL (also after SIGTERM) stops at once (137).
fn serve_until(
    name: &str,
    handler: HttpHandler,
    options: ServeOptions,
    listener: std::net::TcpListener,
    task: &Task,
) -> Result<u32, String> {
    let threads = task.threads.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || threads.lock().expect("not poisoned").push(current_tid()))
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start an async runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("failed to set up the listener: {e}"))?;
        let stop = task.stop.clone();
        let hard = task.hard_stop.clone();
        tokio::select! {
            report = wasmoci_runtime::serve::serve(handler, name, listener, options, async move {
                stop.wait().await;
            }) => {
                let report = report.map_err(|e| e.to_string())?;
                log::info!(
                    "`{name}`: served {} request(s), {} failed",
                    report.requests,
                    report.failures
                );
                Ok(match task.stop.stopped() {
                    Some(15) | None => 0,
                    Some(signal) => 128 + signal as u32,
                })
            }
            () = hard.notified() => Ok(137),
        }
    })
}
