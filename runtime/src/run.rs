//! Running a command to completion: `wasi:cli/run` components and wasip1 `_start` modules.

use std::time::Duration;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Store, Trap, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::WasmEngine;
use crate::error::wasmtime_message;
use crate::limits::{Limiter, Limits, MemoryLimitExceeded, TimeLimitExceeded, set_deadline};
use crate::program::Program;
use crate::sandbox::Sandbox;
use crate::{Error, Result};

/// Where the guest's standard input comes from.
#[derive(Debug, Default)]
pub enum Input {
    /// Nothing (end of file at once).
    #[default]
    Null,
    /// This process's stdin.
    Inherit,
    /// A file (or fifo).
    File(std::fs::File),
    /// These bytes.
    Bytes(Vec<u8>),
}

/// Where the guest's standard output or error goes.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// Discarded.
    #[default]
    Null,
    /// This process's stdout (or stderr).
    Inherit,
    /// A file (or fifo); each instance writes through its own handle.
    File(std::sync::Arc<std::fs::File>),
    /// A buffer the caller reads afterwards.
    Memory(MemoryOutputPipe),
}

/// The guest's standard streams.
#[derive(Debug, Default)]
pub struct Stdio {
    /// stdin.
    pub stdin: Input,
    /// stdout.
    pub stdout: Output,
    /// stderr.
    pub stderr: Output,
}

/// Stops a running guest from outside: a kill. Cheap to clone; every clone stops the same
/// guest.
#[derive(Debug, Clone)]
pub struct StopHandle(std::sync::Arc<tokio::sync::watch::Sender<Option<i32>>>);

impl Default for StopHandle {
    fn default() -> Self {
        StopHandle(std::sync::Arc::new(tokio::sync::watch::channel(None).0))
    }
}

impl StopHandle {
    /// Asks the guest to stop, as if by `signal` (it stops at once: a guest cannot catch
    /// signals). The first signal wins.
    pub fn stop(&self, signal: i32) {
        self.0.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(signal);
                true
            } else {
                false
            }
        });
    }

    /// The signal it was stopped with, if any.
    pub fn stopped(&self) -> Option<i32> {
        *self.0.borrow()
    }

    /// Waits until it is stopped; returns the signal.
    pub async fn wait_public(self) -> i32 {
        self.wait().await
    }

    async fn wait(&self) -> i32 {
        let mut rx = self.0.subscribe();
        let signal = rx.wait_for(Option::is_some).await;
        signal.ok().and_then(|s| *s).unwrap_or(9)
    }
}

/// A kill, as an error a store can return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stopped by signal {0}")]
pub(crate) struct Killed(pub(crate) i32);

/// How a guest stopped. Each cause is distinct, with its own exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It returned or called `exit` with this code (`wasi:cli/run` returning an error is 1).
    Code(i32),
    /// It trapped.
    Trap {
        /// The trap, e.g. "wasm trap: wasm `unreachable` instruction executed".
        message: String,
        /// The wasm backtrace, when wasmtime recorded one.
        backtrace: Option<String>,
    },
    /// It ran past its time limit.
    Timeout(Duration),
    /// It asked for more memory than its limit.
    MemoryLimit(MemoryLimitExceeded),
    /// It ran out of fuel.
    OutOfFuel,
    /// It was stopped from outside by this signal.
    Killed(i32),
}

impl Exit {
    /// The process exit status to report: the guest's code, 134 for a trap (as an abort),
    /// 124 for a timeout (as `timeout(1)`), 137 for the memory limit (as an OOM kill), 133
    /// for fuel.
    pub fn status(&self) -> i32 {
        match self {
            Exit::Code(code) => *code,
            Exit::Trap { .. } => 134,
            Exit::Timeout(_) => 124,
            Exit::MemoryLimit(_) => 137,
            Exit::OutOfFuel => 133,
            Exit::Killed(signal) => 128 + signal,
        }
    }

    /// A one-line explanation for anything but a clean exit.
    pub fn describe(&self) -> Option<String> {
        match self {
            Exit::Code(_) => None,
            Exit::Trap { message, .. } => Some(format!("the guest trapped: {message}")),
            Exit::Timeout(limit) => Some(format!(
                "the guest was stopped after its time limit of {limit:?}"
            )),
            Exit::MemoryLimit(e) => Some(format!("the guest was stopped: {e}")),
            Exit::OutOfFuel => Some("the guest was stopped: it ran out of fuel".into()),
            Exit::Killed(signal) => Some(format!("the guest was stopped by signal {signal}")),
        }
    }
}

/// Classifies a guest failure; `None` when it is not a guest stop (a link error, say).
pub(crate) fn classify(error: &wasmtime::Error) -> Option<Exit> {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return Some(Exit::Code(exit.0));
    }
    if let Some(e) = error.downcast_ref::<MemoryLimitExceeded>() {
        return Some(Exit::MemoryLimit(e.clone()));
    }
    if let Some(e) = error.downcast_ref::<TimeLimitExceeded>() {
        return Some(Exit::Timeout(e.0));
    }
    if let Some(e) = error.downcast_ref::<Killed>() {
        return Some(Exit::Killed(e.0));
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        if *trap == Trap::OutOfFuel {
            return Some(Exit::OutOfFuel);
        }
        return Some(Exit::Trap {
            message: trap.to_string(),
            backtrace: error
                .downcast_ref::<WasmBacktrace>()
                .map(|bt| format!("{bt}").trim_end().to_owned()),
        });
    }
    None
}

/// The store data of a component.
pub(crate) struct Host {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) hooks: crate::serve::NoOutgoingHttp,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The store data of a wasip1 module.
struct P1Host {
    wasi: WasiP1Ctx,
    limiter: Limiter,
}

pub(crate) fn apply_stdio(builder: &mut WasiCtxBuilder, stdio: Stdio) {
    match stdio.stdin {
        Input::Null => {}
        Input::Inherit => {
            builder.inherit_stdin();
        }
        Input::File(file) => {
            use std::os::unix::fs::FileTypeExt;
            let fifo = file.metadata().is_ok_and(|m| m.file_type().is_fifo());
            if fifo {
                // Read through tokio, so that a guest waiting for input can still be
                // stopped (a blocking `read(2)` on a worker thread cannot be cancelled).
                match tokio::net::unix::pipe::Receiver::from_file(file) {
                    Ok(pipe) => {
                        builder.stdin(wasmtime_wasi::cli::AsyncStdinStream::new(pipe));
                    }
                    Err(e) => log::warn!("failed to read stdin as a pipe: {e}"),
                }
            } else {
                builder.stdin(wasmtime_wasi::cli::InputFile::new(file));
            }
        }
        Input::Bytes(bytes) => {
            builder.stdin(MemoryInputPipe::new(bytes));
        }
    }
    apply_output(builder, &stdio.stdout, false);
    apply_output(builder, &stdio.stderr, true);
}

pub(crate) fn apply_output(builder: &mut WasiCtxBuilder, output: &Output, stderr: bool) {
    match (output, stderr) {
        (Output::Null, _) => {}
        (Output::Inherit, false) => {
            builder.inherit_stdout();
        }
        (Output::Inherit, true) => {
            builder.inherit_stderr();
        }
        (Output::File(file), _) => {
            // A handle of our own; if it cannot be duplicated the output is dropped.
            if let Ok(file) = file.try_clone() {
                let stream = wasmtime_wasi::cli::OutputFile::new(file);
                if stderr {
                    builder.stderr(stream);
                } else {
                    builder.stdout(stream);
                }
            }
        }
        (Output::Memory(pipe), false) => {
            builder.stdout(pipe.clone());
        }
        (Output::Memory(pipe), true) => {
            builder.stderr(pipe.clone());
        }
    }
}

/// WASI 0.2, plus `wasi:http` when `http` (an HTTP handler, or a command that imports it).
pub(crate) fn component_linker(engine: &WasmEngine, http: bool) -> Result<Linker<Host>> {
    let mut linker = Linker::new(engine.engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| Error::Engine(wasmtime_message(&e)))?;
    if http {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| Error::Engine(wasmtime_message(&e)))?;
    }
    Ok(linker)
}

fn instantiate_error(name: &str, e: &wasmtime::Error) -> Error {
    Error::Instantiate {
        name: name.to_owned(),
        reason: wasmtime_message(e),
    }
}

/// Runs a command to completion and reports how it stopped.
///
/// The time limit holds while the guest waits in a host call too (a sleep, a blocking
/// read): the epoch deadline stops running wasm, and the whole call is cancelled when the
/// limit passes.
pub async fn run_command(
    engine: &WasmEngine,
    program: &Program,
    name: &str,
    sandbox: &Sandbox,
    limits: &Limits,
    stdio: Stdio,
) -> Result<Exit> {
    run_command_until(
        engine,
        program,
        name,
        sandbox,
        limits,
        stdio,
        &StopHandle::default(),
    )
    .await
}

/// [`run_command`], stopping the guest when `stop` is signalled.
pub async fn run_command_until(
    engine: &WasmEngine,
    program: &Program,
    name: &str,
    sandbox: &Sandbox,
    limits: &Limits,
    stdio: Stdio,
    stop: &StopHandle,
) -> Result<Exit> {
    let run = run_to_end(engine, program, name, sandbox, limits, stdio, stop);
    let bounded = async {
        match limits.timeout {
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(result) => result,
                Err(_) => Ok(Exit::Timeout(limit)),
            },
            None => run.await,
        }
    };
    tokio::select! {
        result = bounded => result,
        signal = stop.wait() => Ok(Exit::Killed(signal)),
    }
}

async fn run_to_end(
    engine: &WasmEngine,
    program: &Program,
    name: &str,
    sandbox: &Sandbox,
    limits: &Limits,
    stdio: Stdio,
    stop: &StopHandle,
) -> Result<Exit> {
    let mut builder = sandbox.wasi()?;
    apply_stdio(&mut builder, stdio);
    match program {
        Program::Component(component) => {
            let imports_http = component
                .component_type()
                .imports(engine.engine())
                .any(|(name, _)| name.starts_with("wasi:http/"));
            let linker = component_linker(engine, imports_http)?;
            let host = Host {
                wasi: builder.build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                limiter: Limiter::new(limits),
                hooks: crate::serve::NoOutgoingHttp,
            };
            let mut store = Store::new(engine.engine(), host);
            store.limiter(|h| &mut h.limiter);
            configure(&mut store, limits, Some(stop.clone()))?;
            let command = match Command::instantiate_async(&mut store, component, &linker).await {
                Ok(command) => command,
                Err(e) => return classify(&e).ok_or_else(|| instantiate_error(name, &e)),
            };
            match command.wasi_cli_run().call_run(&mut store).await {
                Ok(Ok(())) => Ok(Exit::Code(0)),
                Ok(Err(())) => Ok(Exit::Code(1)),
                Err(e) => classify(&e).ok_or_else(|| instantiate_error(name, &e)),
            }
        }
        Program::Module(module) => {
            let mut linker = wasmtime::Linker::<P1Host>::new(engine.engine());
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |h| &mut h.wasi)
                .map_err(|e| Error::Engine(wasmtime_message(&e)))?;
            let host = P1Host {
                wasi: builder.build_p1(),
                limiter: Limiter::new(limits),
            };
            let mut store = Store::new(engine.engine(), host);
            store.limiter(|h| &mut h.limiter);
            configure(&mut store, limits, Some(stop.clone()))?;
            let instance = match linker.instantiate_async(&mut store, module).await {
                Ok(instance) => instance,
                Err(e) => return classify(&e).ok_or_else(|| instantiate_error(name, &e)),
            };
            let entry = sandbox.entry.as_deref().unwrap_or("_start");
            let start = instance
                .get_typed_func::<(), ()>(&mut store, entry)
                .map_err(|_| Error::NoEntryPoint {
                    name: name.to_owned(),
                    reason: format!(
                        "the module exports no function `{entry}` taking and returning nothing"
                    ),
                })?;
            match start.call_async(&mut store, ()).await {
                Ok(()) => Ok(Exit::Code(0)),
                Err(e) => classify(&e).ok_or_else(|| instantiate_error(name, &e)),
            }
        }
    }
}

pub(crate) fn configure<T: Send>(
    store: &mut Store<T>,
    limits: &Limits,
    stop: Option<StopHandle>,
) -> Result<()> {
    set_deadline(store, limits.timeout, limits.cpu, stop);
    if let Some(fuel) = limits.fuel {
        store.set_fuel(fuel).map_err(|e| {
            Error::Engine(format!(
                "fuel needs an engine built with fuel: {}",
                wasmtime_message(&e)
            ))
        })?;
    }
    Ok(())
}
