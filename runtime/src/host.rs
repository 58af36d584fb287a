//! What a guest's store holds and how it is linked: the WASI context with its stdio
//! ([`Stdio`]), the `wasi:http` context (outgoing requests refused), the resource limiter,
//! and the linkers. `run` and `serve` both build on it.

use std::future::Future;
use std::io::Write as _;

use wasmtime::Store;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::engine::WasmEngine;
use crate::error::wasmtime_message;
use crate::exit::StopHandle;
use crate::limits::{Limiter, Limits, MAX_FIELDS_BYTES, MAX_HOST_RESOURCES, set_deadline};
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

impl Output {
    /// Writes one line for people (why a request failed, say), best effort: a reader may
    /// be gone. Nothing goes to a [`Output::Memory`] buffer, which holds the guest's own
    /// output only.
    pub fn write_line(&self, line: &str) {
        let line = format!("{line}\n");
        match self {
            Output::Null | Output::Memory(_) => {}
            Output::Inherit => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            Output::File(file) => {
                let _ = (&**file).write_all(line.as_bytes());
            }
        }
    }
}

/// Outgoing `wasi:http` requests are not granted (yet): every one is refused.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NoOutgoingHttp;

impl WasiHttpHooks for NoOutgoingHttp {
    fn send_request(
        &mut self,
        _request: hyper::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = std::result::Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = OutgoingResult> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

type OutgoingResult = std::result::Result<
    (
        hyper::Response<wasmtime_wasi_http::WasiBody>,
        Box<dyn Future<Output = std::result::Result<(), wasmtime_wasi_http::Error>> + Send>,
    ),
    wasmtime_wasi_http::Error,
>;

/// The store data of a component.
pub(crate) struct Host {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) hooks: NoOutgoingHttp,
}

impl Host {
    /// A component's store data: `wasi` from its sandbox, host resources and header
    /// fields bounded ([`MAX_HOST_RESOURCES`], [`MAX_FIELDS_BYTES`]), memory by `limits`.
    pub(crate) fn new(wasi: WasiCtx, limits: &Limits) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_RESOURCES);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELDS_BYTES);
        Host {
            wasi,
            http,
            table,
            limiter: Limiter::new(limits),
            hooks: NoOutgoingHttp,
        }
    }
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
pub(crate) struct P1Host {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: Limiter,
    pub(crate) guard: crate::special::ModuleGuard,
}

impl crate::special::GuardedModule for P1Host {
    fn guard(&mut self) -> &mut crate::special::ModuleGuard {
        &mut self.guard
    }
    fn wasi(&mut self) -> &mut WasiP1Ctx {
        &mut self.wasi
    }
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
    crate::special::guard_component(&mut linker)?;
    if http {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| Error::Engine(wasmtime_message(&e)))?;
    }
    Ok(linker)
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
