//! The task service containerd talks to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use containerd_shim as shim;
use containerd_shim::protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskOOM, TaskStart};
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, ExitSignal, Flags, TtrpcContext, TtrpcResult, api};
use wasmoci_fs::Home;
use wasmoci_spec::{Digest, WasmKind};

use wasmoci_runtime::cache::CompileCache;
use wasmoci_runtime::containerd::RUNTIME_TYPE;
use wasmoci_runtime::engine::{EngineSettings, WasmEngine, build_engine};
use wasmoci_runtime::limits::{Limits, MemoryBudget};
use wasmoci_runtime::program::{EntryPoint, Program};
use wasmoci_runtime::run::{Exit, Input, Output, Stdio, StopHandle, run_command_until};
use wasmoci_runtime::sandbox::{DirGrant, NetworkGrant, Sandbox};
use wasmoci_runtime::serve::{HttpHandler, ServeOptions};

use crate::bundle::Spec;
use crate::{content, netns};

fn invalid(message: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(
        ttrpc::Code::INVALID_ARGUMENT,
        message.into(),
    ))
}

fn precondition(message: String) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(ttrpc::Code::FAILED_PRECONDITION, message))
}

fn not_found(id: &str) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(
        ttrpc::Code::NOT_FOUND,
        format!("no task `{id}` in this shim"),
    ))
}

fn now() -> Timestamp {
    shim::util::timestamp().unwrap_or_default()
}

/// The engine every task of this shim process uses (and the node-wide compile cache).
fn engine() -> Result<&'static (WasmEngine, CompileCache), String> {
    static ENGINE: OnceLock<Result<(WasmEngine, CompileCache), String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let engine = build_engine(&EngineSettings {
                pooling: Some(false),
                ..EngineSettings::default()
            })
            .map_err(|e| e.to_string())?;
            Ok((engine, CompileCache::new(Home::node().compile_cache())))
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[derive(Debug, Clone)]
enum Status {
    Created,
    Running,
    Stopped { code: u32, at: Timestamp },
}

/// What a task runs.
enum Work {
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

struct Task {
    /// The pid containerd sees: the holder thread's for the sandbox, the shim's otherwise.
    pid: u32,
    /// `linux.resources.memory.limit` (0: none), for Stats.
    memory_limit: u64,
    /// The linear memory all the task's instances hold now, for Stats.
    memory: Arc<MemoryBudget>,
    /// The threads that run its guests, and the most CPU time (ns) seen on them, for
    /// Stats (a counter must not go down when a thread ends).
    threads: Arc<Mutex<Vec<u32>>>,
    cpu_seen: std::sync::atomic::AtomicU64,
    holder: Mutex<Option<netns::Holder>>,
    /// A second, hard stop (SIGKILL after SIGTERM) ends an HTTP drain.
    hard_stop: Arc<tokio::sync::Notify>,
    /// The pod's network namespace, which the guest's threads join (so its sockets, when
    /// granted, are the pod's, not the node's).
    netns: Option<PathBuf>,
    bundle: String,
    stdin: String,
    stdout: String,
    stderr: String,
    /// Status and the work not yet started, under one lock: Start and Kill race.
    state: Mutex<TaskState>,
    changed: Condvar,
    stop: StopHandle,
}

struct TaskState {
    status: Status,
    work: Option<Work>,
}

impl Task {
    fn status(&self) -> Status {
        self.state.lock().expect("not poisoned").status.clone()
    }

    fn finish(&self, code: u32, at: Timestamp) {
        self.state.lock().expect("not poisoned").status = Status::Stopped { code, at };
        self.changed.notify_all();
    }

    fn wait(&self) -> (u32, Timestamp) {
        let mut state = self.state.lock().expect("not poisoned");
        loop {
            if let Status::Stopped { code, at } = &state.status {
                return (*code, at.clone());
            }
            state = self.changed.wait(state).expect("not poisoned");
        }
    }
}

/// The shim: its tasks (one pod's containers) and how to tell containerd about them.
#[derive(Clone)]
pub(crate) struct Service {
    tasks: Arc<Mutex<HashMap<String, Arc<Task>>>>,
    exit: Arc<ExitSignal>,
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
            .ok_or_else(|| not_found(id))
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

impl Service {
    /// A task ended: TaskExit first, then Wait returns (containerd deletes on Wait, and
    /// TaskDelete must follow TaskExit).
    fn exited(&self, id: &str, task: &Task, code: u32) {
        let at = now();
        let mut event = TaskExit::new();
        event.container_id = id.to_owned();
        event.id = id.to_owned();
        event.pid = task.pid;
        event.exit_status = code;
        event.exited_at = Some(at.clone()).into();
        self.publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(event));
        task.finish(code, at);
    }
}

impl shim::Shim for Service {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        Service {
            tasks: Arc::new(Mutex::new(HashMap::new())),
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            address: args.address.clone(),
            socket: args.socket.clone(),
            bundle: args.bundle.clone(),
            publisher: None,
        }
    }

    fn start_shim(&mut self, opts: shim::StartOpts) -> Result<String, shim::Error> {
        // One shim per pod: containers of a CRI sandbox share it.
        let grouping = Spec::load(Path::new("."))
            .ok()
            .and_then(|s| s.annotations.get("io.kubernetes.cri.sandbox-id").cloned())
            .unwrap_or_else(|| opts.id.clone());
        let (_child, address) = shim::spawn(opts, &grouping, Vec::new())?;
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
        let grouping = Spec::load(&bundle)
            .ok()
            .and_then(|s| s.annotations.get("io.kubernetes.cri.sandbox-id").cloned());
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
        Service {
            publisher: Some(Arc::new(publisher)),
            ..self.clone()
        }
    }
}

/// The wasm a container runs: from a direct pull when the pod annotation
/// `wasmoci.dev/image` names `REF@sha256:…`; else from containerd's content store when the
/// image is a Wasm artifact; else the file `process.args[0]` (`path[#func]`) in its root
/// filesystem (the image-compat format).
fn load_wasm(
    service: &Service,
    id: &str,
    spec: &Spec,
    bundle: &Path,
) -> Result<(String, Vec<u8>, Digest), String> {
    let arg0 = spec
        .process
        .args
        .first()
        .ok_or("the container has no `process.args`: set `command:` in the pod spec")?;
    let path = arg0.split('#').next().unwrap_or_default();
    let name = Path::new(path)
        .file_name()
        .map_or_else(|| id.to_owned(), |n| n.to_string_lossy().into_owned());
    if let Some(reference) = spec.annotations.get("wasmoci.dev/image") {
        let loaded = content::pull_direct(reference)?;
        return Ok((name, loaded.wasm, loaded.digest));
    }
    if !service.address.is_empty() {
        match content::load_from_containerd(&service.address, &service.namespace, id) {
            Ok(Some(loaded)) => {
                log::info!(
                    "task `{id}`: wasm `{}` from image `{}` in containerd's content store",
                    loaded.digest,
                    loaded.image
                );
                return Ok((name, loaded.wasm, loaded.digest));
            }
            Ok(None) => {}
            // As runwasi: an image we cannot read there may still carry the wasm as a file.
            Err(e) => log::warn!("task `{id}`: {e}; looking in the root filesystem instead"),
        }
    }
    let rootfs = spec.rootfs(bundle);
    let wasm = read_in_root(&rootfs, path).map_err(|e| {
        format!(
            "failed to read the component `{path}` from the container's root filesystem `{}`: {e}",
            rootfs.display()
        )
    })?;
    if WasmKind::detect(&wasm).is_none() {
        return Err(format!(
            "`{path}` is not WebAssembly; wasmoci runs Wasm components and modules, not native containers (use another RuntimeClass for those)"
        ));
    }
    let digest = Digest::of(&wasm);
    Ok((name, wasm, digest))
}

/// The largest wasm file read from a root filesystem.
const MAX_WASM_FILE: u64 = 1 << 30;

/// Reads `path` inside `root` as the container would see it: `..` and symlinks, absolute
/// ones included, resolve inside `root` (`openat2` with `RESOLVE_IN_ROOT`), and only a
/// regular file of at most [`MAX_WASM_FILE`] bytes is read (never a fifo or a device).
fn read_in_root(root: &Path, path: &str) -> std::io::Result<Vec<u8>> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
    use std::io::Read;
    let dir = std::fs::File::open(root)?;
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let file = std::fs::File::from(openat2(&dir, relative, how)?);
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if metadata.len() > MAX_WASM_FILE {
        return Err(std::io::Error::other(format!(
            "{} bytes is more than the {MAX_WASM_FILE} a component may have",
            metadata.len()
        )));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_WASM_FILE).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads the wasm a container names and prepares what it runs.
fn prepare(
    service: &Service,
    id: &str,
    spec: &Spec,
    bundle: &Path,
    memory: &Arc<MemoryBudget>,
) -> Result<Work, String> {
    if spec.is_sandbox() {
        return Ok(Work::Hold);
    }
    let (path, wasm, digest) = load_wasm(service, id, spec, bundle)?;
    let path = path.as_str();
    let (engine, cache) = engine()?;
    let (program, _) = cache
        .load(engine, path, &wasm, &digest)
        .map_err(|e| e.to_string())?;
    let entry_points = program.entry_points(engine.engine());
    let env = spec
        .process
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // Mounts in the spec become directories the guest may use; nothing else is visible.
    let dirs = spec
        .mounts
        .iter()
        .filter(|m| m.kind.as_deref() == Some("bind"))
        // What CRI adds for every container (`/dev/shm`, `/dev/termination-log`) is not
        // the pod's volumes.
        .filter(|m| {
            !["/dev", "/proc", "/sys"]
                .iter()
                .any(|d| m.destination == *d || m.destination.starts_with(&format!("{d}/")))
        })
        .filter_map(|m| {
            let source = m.source.clone()?;
            source.is_dir().then(|| DirGrant {
                host: source,
                guest: m.destination.clone(),
                read_only: m.options.iter().any(|o| o == "ro"),
            })
        })
        .collect();
    let timeout = match spec.annotations.get("wasmoci.dev/timeout") {
        Some(text) => Some(
            wasmoci_runtime::units::parse_duration(text)
                .map_err(|e| format!("invalid `wasmoci.dev/timeout`: {e}"))?,
        ),
        None => None,
    };
    let network = match spec
        .annotations
        .get("wasmoci.dev/allow-net")
        .map(String::as_str)
    {
        None | Some("false") => NetworkGrant::None,
        Some("true") => NetworkGrant::All,
        Some(other) => {
            return Err(format!(
                "invalid `wasmoci.dev/allow-net` `{other}`: expected `true` or `false`"
            ));
        }
    };
    let sandbox = Sandbox {
        args: spec.process.args.clone(),
        env,
        dirs,
        network,
        entry: None,
    };
    // The container's memory limit bounds each instance and, through the budget, all of
    // them together (an HTTP server's requests in flight); the budget is also what Stats
    // reports as the container's memory usage.
    let limits = Limits {
        memory: spec.memory_limit(),
        total_memory: Some(memory.clone()),
        timeout,
        cpu: spec.cpu_share(),
        ..Limits::default()
    };
    // `path#func`: a core module's function to call instead of `_start`.
    let func = spec
        .process
        .args
        .first()
        .and_then(|a| a.split_once('#'))
        .map(|(_, f)| f.to_owned())
        .filter(|f| !f.is_empty() && f != "_start");
    if let (Some(func), Program::Module(_)) = (func, &program) {
        return Ok(Work::Command {
            name: path.to_owned(),
            program,
            sandbox: Sandbox {
                entry: Some(func),
                ..sandbox
            },
            limits,
        });
    }
    if entry_points.contains(&EntryPoint::Command) {
        return Ok(Work::Command {
            name: path.to_owned(),
            program,
            sandbox,
            limits,
        });
    }
    let Program::Component(component) = &program else {
        return Err(format!("`{path}` exports no `_start`: nothing to run"));
    };
    if !entry_points.contains(&EntryPoint::Http) {
        return Err(format!(
            "`{path}` exports neither `wasi:cli/run` nor `wasi:http/incoming-handler`: nothing to run"
        ));
    }
    let handler =
        wasmoci_runtime::serve::prepare(engine, component, path).map_err(|e| e.to_string())?;
    let listen = spec
        .annotations
        .get("wasmoci.dev/listen")
        .map_or("0.0.0.0:8080", String::as_str);
    let addr: std::net::SocketAddr = listen.parse().map_err(|e| {
        format!("invalid `wasmoci.dev/listen` `{listen}`: expected `ADDRESS:PORT` ({e})")
    })?;
    let listener = netns::bind_in(spec.network_namespace(), addr)?;
    Ok(Work::Http {
        name: path.to_owned(),
        handler,
        options: ServeOptions {
            sandbox,
            limits,
            ..ServeOptions::default()
        },
        listener,
    })
}

/// Removes a shim socket nobody serves any more (a live shim of the pod keeps its own).
fn remove_socket_if_dead(socket: &str) {
    let path = socket.trim_start_matches("unix://");
    if Path::new(path).exists() && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// Opens the stdin fifo without waiting for its writer (a blocking open would wait until
/// containerd writes, which it may never do), then makes reads block again.
fn open_input(path: &str) -> Input {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::os::unix::fs::OpenOptionsExt;
    if path.is_empty() {
        return Input::Null;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path);
    match file {
        Ok(file) => {
            if let Err(e) = fcntl(&file, FcntlArg::F_SETFL(OFlag::empty())) {
                log::warn!("failed to make `{path}` blocking: {e}");
            }
            Input::File(file)
        }
        Err(e) => {
            log::warn!("failed to open `{path}`: {e}");
            Input::Null
        }
    }
}

/// Writes one line to a task's output, best effort (the reader may be gone).
fn write_line(output: &Output, line: &str) {
    use std::io::Write;
    if let Output::File(file) = output {
        let _ = writeln!(&**file, "{line}");
    }
}

fn open_output(path: &str) -> Output {
    if path.is_empty() {
        return Output::Null;
    }
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => Output::File(Arc::new(file)),
        Err(e) => {
            log::warn!("failed to open `{path}`: {e}");
            Output::Null
        }
    }
}

impl shim::Task for Service {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        let bundle = PathBuf::from(&req.bundle);
        if !req.rootfs.is_empty() {
            let rootfs = bundle.join("rootfs");
            for mount in &req.rootfs {
                shim::mount::mount_rootfs(
                    Some(mount.type_.as_str()),
                    Some(mount.source.as_str()),
                    &mount.options,
                    &rootfs,
                )
                .map_err(|e| invalid(format!("failed to mount the root filesystem: {e}")))?;
            }
        }
        // A task that cannot be created leaves no mount behind (containerd has no task to
        // delete then).
        let unmount = |message: String| {
            let rootfs = bundle.join("rootfs");
            let _ = shim::mount::umount_recursive(rootfs.to_str(), 0);
            invalid(message)
        };
        let spec = Spec::load(&bundle).map_err(unmount)?;
        let memory = MemoryBudget::new(spec.memory_limit().unwrap_or(u64::MAX));
        let work = prepare(self, &req.id, &spec, &bundle, &memory).map_err(unmount)?;
        let holder = if matches!(work, Work::Hold) {
            Some(netns::Holder::spawn(spec.network_namespace()).map_err(unmount)?)
        } else {
            None
        };
        let pid = holder
            .as_ref()
            .map_or_else(std::process::id, netns::Holder::pid);
        let task = Arc::new(Task {
            pid,
            memory_limit: spec.memory_limit().unwrap_or(0),
            memory,
            threads: Arc::default(),
            cpu_seen: std::sync::atomic::AtomicU64::new(0),
            holder: Mutex::new(holder),
            hard_stop: Arc::new(tokio::sync::Notify::new()),
            netns: if spec.is_sandbox() {
                None
            } else {
                spec.network_namespace().map(Path::to_owned)
            },
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
        Ok(response)
    }

    fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        let task = self.task(&req.id)?;
        let work = {
            let mut state = task.state.lock().expect("not poisoned");
            let work = state.work.take();
            match (&state.status, work) {
                (Status::Created, Some(work)) => {
                    state.status = Status::Running;
                    work
                }
                (Status::Stopped { .. }, _) => {
                    return Err(precondition(format!(
                        "task `{}` was stopped before it started",
                        req.id
                    )));
                }
                _ => {
                    return Err(precondition(format!(
                        "task `{}` was already started",
                        req.id
                    )));
                }
            }
        };
        let pid = task.pid;
        // TaskStart goes out before anything can exit.
        let mut event = TaskStart::new();
        event.container_id = req.id.clone();
        event.pid = pid;
        self.publish(topics::TASK_START_EVENT_TOPIC, Box::new(event));
        let service = self.clone();
        let id = req.id.clone();
        let runner = task.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("task-{id}"))
            .spawn(move || {
                let worker =
                    std::panic::AssertUnwindSafe(|| run_work(&service, &id, &runner, work));
                let code = std::panic::catch_unwind(worker).unwrap_or_else(|_| {
                    log::error!("task `{id}`: the shim failed (a panic); reported as exit 139");
                    139
                });
                service.exited(&id, &runner, code);
            });
        if let Err(e) = spawned {
            log::error!("task `{}`: failed to start a thread: {e}", req.id);
            self.exited(&req.id, &task, 1);
        }
        let mut response = api::StartResponse::new();
        response.pid = pid;
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
        task.stop.stop(signal);
        if signal == 9 {
            task.hard_stop.notify_one();
        }
        // Killed before it started: it never will.
        let never_started = {
            let mut state = task.state.lock().expect("not poisoned");
            matches!(state.status, Status::Created) && state.work.take().is_some()
        };
        if never_started {
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
        let task = self.task(&req.id)?;
        let (code, at) = match task.status() {
            Status::Stopped { code, at } => (code, at),
            _ => {
                return Err(precondition(format!(
                    "task `{}` is still running: kill it first",
                    req.id
                )));
            }
        };
        self.tasks.lock().expect("not poisoned").remove(&req.id);
        let rootfs = Path::new(&task.bundle).join("rootfs");
        let _ = shim::mount::umount_recursive(rootfs.to_str(), 0);
        task.holder.lock().expect("not poisoned").take();
        let pid = task.pid;
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
        response.pid = task.pid;
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
        info.pid = task.pid;
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
        // Memory usage is the guests' linear memory (what the limit bounds); CPU usage the
        // time of the threads that run them.
        use containerd_shim::protos::cgroups_v2::metrics::{CPUStat, MemoryStat, Metrics};
        use containerd_shim::protos::protobuf::Message;
        let task = self.task(&req.id)?;
        let mut memory = MemoryStat::new();
        memory.usage_limit = task.memory_limit;
        memory.usage = task.memory.used();
        memory.anon = memory.usage;
        let mut cpu = CPUStat::new();
        cpu.usage_usec = task.cpu_usage_usec();
        let mut metrics = Metrics::new();
        metrics.memory = Some(memory).into();
        metrics.cpu = Some(cpu).into();
        let mut any = containerd_shim::protos::protobuf::well_known_types::any::Any::new();
        any.type_url = "io.containerd.cgroups.v2.Metrics".into();
        any.value = metrics
            .write_to_bytes()
            .map_err(|e| invalid(format!("failed to encode the stats of `{}`: {e}", req.id)))?;
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
        }
        Ok(api::Empty::new())
    }
}

/// Runs a task's work on its own thread to the end: the exit status.
fn run_work(service: &Service, id: &str, runner: &Task, work: Work) -> u32 {
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
        log::error!("task `{id}`: {e}");
        write_line(&stderr, &format!("wasmoci: {e}"));
        return 1;
    }
    match work {
        Work::Hold => {
            // The sandbox holds until it is killed.
            let signal = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(runner.stop.clone().wait_public()))
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
                    log::error!("task `{id}`: {e}");
                    write_line(&stderr, &format!("wasmoci: {e}"));
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
                        rt.block_on(run_command_until(
                            engine,
                            &program,
                            &name,
                            &sandbox,
                            &limits,
                            stdio,
                            &runner.stop,
                        ))
                        .map_err(|e| e.to_string())
                    }),
                Err(e) => Err(e),
            };
            match exit {
                Ok(exit) => {
                    if let Some(why) = exit.describe() {
                        log::warn!("task `{id}`: {why}");
                        // Where `kubectl logs` shows it.
                        write_line(&stderr, &format!("wasmoci: {why}"));
                        if matches!(exit, Exit::MemoryLimit(_)) {
                            let mut event = TaskOOM::new();
                            event.container_id = id.to_owned();
                            service.publish(topics::TASK_OOM_EVENT_TOPIC, Box::new(event));
                        }
                        if let Exit::Trap {
                            backtrace: Some(bt),
                            ..
                        } = &exit
                        {
                            log::warn!("{bt}");
                        }
                    }
                    exit.status() as u32
                }
                Err(e) => {
                    log::error!("task `{id}`: {e}");
                    write_line(&stderr, &format!("wasmoci: {e}"));
                    1
                }
            }
        }
    }
}

fn current_tid() -> u32 {
    u32::try_from(nix::unistd::gettid().as_raw()).unwrap_or_default()
}

impl Task {
    /// CPU time (µs) its guests' threads have run, as far as it can still be read.
    fn cpu_usage_usec(&self) -> u64 {
        use std::sync::atomic::Ordering;
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
                stop.wait_public().await;
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

/// Runs the shim (the binary's `main`).
pub fn main() {
    shim::run::<Service>(RUNTIME_TYPE, None);
}
