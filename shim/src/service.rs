//! The task service containerd talks to: the `containerd-shim` 0.11 `Shim` and `Task`
//! traits over the tasks of one pod ([`crate::task`]), with every RPC error a
//! [`ShimError`] mapped to its ttrpc code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use containerd_shim as shim;
use containerd_shim::protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskOOM, TaskStart};
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::topics;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, ExitSignal, Flags, TtrpcContext, TtrpcResult, api};
use wasmoci_runtime::containerd::RUNTIME_TYPE;
use wasmoci_runtime::exit::StopHandle;

use crate::bundle::Bundle;
use crate::content::Containerd;
use crate::error::ShimError;
use crate::netns;
use crate::plan::{Plan, plan};
use crate::task::{Events, Status, Task, TaskState, Work, prepare, run_work};
use crate::timing::mark;
use crate::worker::Launch;

mod watchdog;

/// The annotation CRI sets on every container of a pod: one shim serves the pod.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

fn now() -> Timestamp {
    shim::util::timestamp().unwrap_or_default()
}

/// Removes a shim socket nobody serves any more (a live shim of the pod keeps its own).
fn remove_socket_if_dead(socket: &str) {
    let path = socket.trim_start_matches("unix://");
    if Path::new(path).exists() && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// The shim: its tasks (one pod's containers) and how to tell containerd about them.
#[derive(Clone)]
pub(crate) struct Service {
    tasks: Arc<Mutex<HashMap<String, Arc<Task>>>>,
    exit: Arc<ExitSignal>,
    /// containerd asked for Shutdown while tasks remained: the watchdog exits once the
    /// last is deleted (not the Delete itself, whose answer must reach containerd first).
    shutdown_asked: Arc<AtomicBool>,
    namespace: String,
    /// containerd's gRPC socket (`-address`): its content store.
    address: String,
    /// This shim's own socket (`-socket`, empty for `start` and `delete`).
    socket: String,
    /// `-bundle` (for `delete`).
    bundle: String,
    publisher: Option<Arc<RemotePublisher>>,
}

impl Service {
    fn task(&self, id: &str) -> TtrpcResult<Arc<Task>> {
        self.tasks
            .lock()
            .expect("not poisoned")
            .get(id)
            .cloned()
            .ok_or_else(|| ShimError::NotFound(id.to_owned()).into())
    }

    fn publish(&self, topic: &str, event: Box<dyn MessageDyn>) {
        if let Some(publisher) = &self.publisher
            && let Err(e) =
                publisher.publish(shim::Context::default(), topic, &self.namespace, event)
        {
            log::warn!("failed to publish `{topic}`: {e}");
        }
    }
}

type Created = (Plan, Work, Option<netns::Holder>);

impl Service {
    /// Reads the bundle, plans the task and does what it needs before it can start.
    fn prepare(&self, req: &api::CreateTaskRequest) -> Result<Created, ShimError> {
        let bundle = Path::new(&req.bundle);
        let plan = plan(&Bundle::load(bundle)?, bundle)?;
        let containerd = (!self.address.is_empty()).then_some(Containerd {
            address: &self.address,
            namespace: &self.namespace,
        });
        let launch = Launch {
            id: &req.id,
            bundle: &req.bundle,
            stdin: &req.stdin,
            stdout: &req.stdout,
            stderr: &req.stderr,
        };
        let policy_path = crate::node_policy::runtime_config_path(req);
        let work = prepare(&plan, containerd, &launch, policy_path.as_deref())?;
        let holder = match &plan {
            Plan::Sandbox { netns } => Some(netns::Holder::spawn(netns.as_deref())?),
            Plan::Container(_) => None,
        };
        Ok((plan, work, holder))
    }
}

impl Events for Service {
    fn oom(&self, id: &str) {
        let mut event = TaskOOM::new();
        event.container_id = id.to_owned();
        self.publish(topics::TASK_OOM_EVENT_TOPIC, Box::new(event));
    }

    /// TaskExit first, then Wait returns (containerd deletes on Wait, and TaskDelete must
    /// follow TaskExit).
    fn exited(&self, id: &str, task: &Task, code: u32) {
        let at = now();
        let mut event = TaskExit::new();
        event.container_id = id.to_owned();
        event.id = id.to_owned();
        event.pid = task.pid();
        event.exit_status = code;
        event.exited_at = Some(at.clone()).into();
        self.publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(event));
        mark(id, "exit-published");
        task.finish(code, at);
    }
}

impl shim::Shim for Service {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        Service {
            tasks: Arc::new(Mutex::new(HashMap::new())),
            exit: Arc::new(ExitSignal::default()),
            shutdown_asked: Arc::new(AtomicBool::new(false)),
            namespace: args.namespace.clone(),
            address: args.address.clone(),
            socket: args.socket.clone(),
            bundle: args.bundle.clone(),
            publisher: None,
        }
    }

    fn start_shim(&mut self, opts: shim::StartOpts) -> Result<String, shim::Error> {
        // One shim per pod: containers of a CRI sandbox share it.
        let grouping = Bundle::load(Path::new("."))
            .ok()
            .and_then(|s| s.annotations.get(SANDBOX_ID).cloned())
            .unwrap_or_else(|| opts.id.clone());
        let (_child, address) = shim::spawn(opts, &grouping, Vec::new())?;
        // containerd finds the shim again after a restart by the bundle's `address` file
        // (a bundle without one is cleaned up as a dead shim, its task with it): written
        // for every task, the pod's first (whose server starts here) as its others.
        if let Err(e) = wasmoci_fs::write_atomic(Path::new("address"), address.as_bytes(), 0o644) {
            log::error!("failed to write the shim address into the bundle: {e}");
            std::process::exit(1);
        }
        // Answer containerd and exit here, without returning to `containerd-shim` 0.11: it
        // drops its signal handlers' socket on the way out, and when the server it spawned
        // exits at once (a pod's second container finds the pod's shim already serving),
        // the SIGCHLD arriving during that drop makes the handler write to the closed
        // socket, raise SIGPIPE, and do it again, forever at 100% CPU (seen here under
        // CRI). `process::exit` keeps the handlers and their socket intact.
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = write!(stdout, "{address}").and_then(|()| stdout.flush()) {
            log::error!("failed to write the shim address: {e}");
            std::process::exit(1);
        }
        std::process::exit(0)
    }

    fn delete_shim(&mut self) -> Result<DeleteResponse, shim::Error> {
        // containerd lost the shim: undo what it would have undone.
        let bundle = if self.bundle.is_empty() {
            PathBuf::from(".")
        } else {
            PathBuf::from(&self.bundle)
        };
        let rootfs = bundle.join("rootfs");
        let _ = shim::mount::umount_recursive(rootfs.to_str(), 0);
        let loaded = Bundle::load(&bundle).ok();
        // The container's cgroup, which its worker (killed with the shim: its
        // parent-death signal) has left or is leaving.
        if let Some(Plan::Container(container)) =
            loaded.as_ref().and_then(|b| plan(b, &bundle).ok())
            && let Some(cgroup) = &container.confinement.cgroup
        {
            crate::worker::remove_cgroup(cgroup, std::time::Duration::from_secs(2));
        }
        let grouping = loaded.and_then(|s| s.annotations.get(SANDBOX_ID).cloned());
        if let Some(grouping) = grouping {
            let socket = shim::socket_address(&self.address, &self.namespace, &grouping);
            remove_socket_if_dead(&socket);
        }
        let mut response = DeleteResponse::new();
        response.exit_status = 137;
        response.exited_at = Some(now()).into();
        Ok(response)
    }

    fn wait(&mut self) {
        self.exit.wait();
        // The crate removes the socket named in the bundle's `address` file, which is gone
        // by now when the sandbox's bundle was deleted first.
        if !self.socket.is_empty() {
            let _ = std::fs::remove_file(self.socket.trim_start_matches("unix://"));
        }
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        let service = Service {
            publisher: Some(Arc::new(publisher)),
            ..self.clone()
        };
        watchdog::spawn(service.clone());
        service
    }
}

impl shim::Task for Service {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        mark(&req.id, "create");
        let bundle = PathBuf::from(&req.bundle);
        let rootfs = bundle.join("rootfs");
        for mount in &req.rootfs {
            shim::mount::mount_rootfs(
                Some(mount.type_.as_str()),
                Some(mount.source.as_str()),
                &mount.options,
                &rootfs,
            )
            .map_err(ShimError::Mount)?;
        }
        // A task that cannot be created leaves no mount behind (containerd has no task to
        // delete then).
        let created = self.prepare(&req).inspect_err(|_| {
            let _ = shim::mount::umount_recursive(rootfs.to_str(), 0);
        })?;
        let (plan, work, holder) = created;
        let pid = holder
            .as_ref()
            .map(netns::Holder::pid)
            .or_else(|| work.pid())
            .unwrap_or_else(std::process::id);
        let (memory_limit, cgroup) = match &plan {
            Plan::Sandbox { .. } => (None, None),
            Plan::Container(c) => (c.memory_limit, c.confinement.cgroup.clone()),
        };
        let task = Arc::new(Task {
            pid: AtomicU32::new(pid),
            memory_limit: memory_limit.unwrap_or(0),
            cgroup,
            holder: Mutex::new(holder),
            worker: Mutex::new(None),
            bundle: req.bundle.clone(),
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            state: Mutex::new(TaskState {
                status: Status::Created,
                work: Some(work),
            }),
            changed: Condvar::new(),
            stop: StopHandle::default(),
        });
        self.tasks
            .lock()
            .expect("not poisoned")
            .insert(req.id.clone(), task);
        let mut event = TaskCreate::new();
        event.container_id = req.id.clone();
        event.bundle = req.bundle.clone();
        event.pid = pid;
        self.publish(topics::TASK_CREATE_EVENT_TOPIC, Box::new(event));
        let mut response = api::CreateTaskResponse::new();
        response.pid = pid;
        mark(&req.id, "create-returns");
        Ok(response)
    }

    fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        mark(&req.id, "start");
        let task = self.task(&req.id)?;
        let work = task.begin(&req.id)?;
        if let Work::Refused { refusal, worker } = work {
            crate::stdio::note(&task.stderr, &crate::error::shown(&refusal));
            crate::task::end_refused(worker, task.cgroup.as_deref());
            task.finish(126, now());
            return Err(ShimError::Policy(refusal).into());
        }
        let service = self.clone();
        let id = req.id.clone();
        let runner = task.clone();
        // The task's thread starts the worker, tells its pid, and waits for TaskStart to
        // go out before it waits for the worker: TaskStart comes before any TaskExit.
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name(format!("task-{id}"))
            .spawn(move || {
                let launched = move || {
                    let _ = started_tx.send(());
                    let _ = go_rx.recv();
                };
                let worker = std::panic::AssertUnwindSafe(|| {
                    run_work(&service, &id, &runner, work, launched)
                });
                let code = std::panic::catch_unwind(worker).unwrap_or_else(|_| {
                    log::error!("task `{id}`: the shim failed (a panic); reported as exit 139");
                    139
                });
                service.exited(&id, &runner, code);
            });
        let _ = started.recv();
        let pid = task.pid();
        let mut event = TaskStart::new();
        event.container_id = req.id.clone();
        event.pid = pid;
        self.publish(topics::TASK_START_EVENT_TOPIC, Box::new(event));
        let _ = go.send(());
        if let Err(e) = spawned {
            log::error!("task `{}`: failed to start a thread: {e}", req.id);
            self.exited(&req.id, &task, 1);
        }
        let mut response = api::StartResponse::new();
        response.pid = pid;
        mark(&req.id, "start-returns");
        Ok(response)
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let task = self.task(&req.id)?;
        let (code, at) = task.wait();
        let mut response = api::WaitResponse::new();
        response.exit_status = code;
        response.exited_at = Some(at).into();
        Ok(response)
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let task = self.task(&req.id)?;
        let signal = i32::try_from(req.signal).unwrap_or(9);
        task.signal(signal);
        // Killed before it started: it never will.
        if task.cancel() {
            task.holder.lock().expect("not poisoned").take();
            self.exited(&req.id, &task, 128 + signal as u32);
        }
        Ok(api::Empty::new())
    }

    fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        mark(&req.id, "delete");
        let task = self.task(&req.id)?;
        let (code, at) = match task.status() {
            Status::Stopped { code, at } => (code, at),
            _ => return Err(ShimError::StillRunning(req.id.clone()).into()),
        };
        self.tasks.lock().expect("not poisoned").remove(&req.id);
        let rootfs = Path::new(&task.bundle).join("rootfs");
        let _ = shim::mount::umount_recursive(rootfs.to_str(), 0);
        task.holder.lock().expect("not poisoned").take();
        if let Some(cgroup) = &task.cgroup {
            crate::worker::remove_cgroup(cgroup, std::time::Duration::ZERO);
        }
        let pid = task.pid();
        let mut event = TaskDelete::new();
        event.container_id = req.id.clone();
        event.id = req.id.clone();
        event.pid = pid;
        event.exit_status = code;
        event.exited_at = Some(at.clone()).into();
        self.publish(topics::TASK_DELETE_EVENT_TOPIC, Box::new(event));
        let mut response = api::DeleteResponse::new();
        response.pid = pid;
        response.exit_status = code;
        response.exited_at = Some(at).into();
        mark(&req.id, "delete-returns");
        Ok(response)
    }

    fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        let task = self.task(&req.id)?;
        let mut response = api::StateResponse::new();
        response.id = req.id.clone();
        response.bundle = task.bundle.clone();
        response.pid = task.pid();
        response.stdin = task.stdin.clone();
        response.stdout = task.stdout.clone();
        response.stderr = task.stderr.clone();
        use containerd_shim::protos::types::task::Status as S;
        match task.status() {
            Status::Created => response.status = S::CREATED.into(),
            Status::Running => response.status = S::RUNNING.into(),
            Status::Stopped { code, at } => {
                response.status = S::STOPPED.into();
                response.exit_status = code;
                response.exited_at = Some(at).into();
            }
        }
        Ok(response)
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let task = self.task(&req.id)?;
        let mut info = containerd_shim::protos::types::task::ProcessInfo::new();
        info.pid = task.pid();
        let mut response = api::PidsResponse::new();
        response.processes = vec![info];
        Ok(response)
    }

    fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        // A valid cgroup v2 `Metrics`, as runc's shim sends: CRI decodes every task's
        // stats, and one it cannot decode fails `ListContainerStats` for the whole node.
        // Usage is the container cgroup's (the worker's, when it has none).
        use containerd_shim::protos::cgroups_v2::metrics::{CPUStat, MemoryStat, Metrics};
        use containerd_shim::protos::protobuf::Message;
        let task = self.task(&req.id)?;
        let (used, cpu_usec) = task.usage();
        let mut memory = MemoryStat::new();
        memory.usage_limit = task.memory_limit;
        memory.usage = used;
        memory.anon = memory.usage;
        let mut cpu = CPUStat::new();
        cpu.usage_usec = cpu_usec;
        let mut metrics = Metrics::new();
        metrics.memory = Some(memory).into();
        metrics.cpu = Some(cpu).into();
        let mut any = containerd_shim::protos::protobuf::well_known_types::any::Any::new();
        any.type_url = "io.containerd.cgroups.v2.Metrics".into();
        any.value = metrics.write_to_bytes().map_err(|error| ShimError::Stats {
            id: req.id.clone(),
            error,
        })?;
        let mut response = api::StatsResponse::new();
        response.stats = Some(any).into();
        Ok(response)
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let mut response = api::ConnectResponse::new();
        response.shim_pid = std::process::id();
        response.task_pid = std::process::id();
        response.version = env!("CARGO_PKG_VERSION").into();
        let _ = req;
        Ok(response)
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        // containerd sends Shutdown while other tasks of the pod may remain: stay for them.
        if self.tasks.lock().expect("not poisoned").is_empty() {
            self.exit.signal();
        } else {
            self.shutdown_asked.store(true, Ordering::SeqCst);
        }
        Ok(api::Empty::new())
    }
}

/// Runs the shim (the binary's `main`), or a worker when the shim started itself as one.
pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(crate::worker::ARG) {
        crate::worker::child_main(&args[2..]);
    }
    shim::run::<Service>(RUNTIME_TYPE, None);
}
