//! Running a command to completion: `wasi:cli/run` components, wasip1 `_start` modules
//! and a core module's chosen function.

use wasmtime::Store;
use wasmtime_wasi::p2::bindings::Command;

use crate::engine::WasmEngine;
use crate::error::wasmtime_message;
use crate::exit::{Exit, StopHandle, classify};
use crate::host::{Host, P1Host, Stdio, apply_stdio, component_linker, configure};
use crate::limits::{Limiter, Limits};
use crate::program::Program;
use crate::sandbox::Sandbox;
use crate::special::ModuleGuard;
use crate::{Error, Result};

/// A command ready to run: the compiled program, what it may touch and its limits.
#[derive(Debug, Clone, Copy)]
pub struct Guest<'a> {
    /// The engine the program was compiled with.
    pub engine: &'a WasmEngine,
    /// The program.
    pub program: &'a Program,
    /// Its name, for messages.
    pub name: &'a str,
    /// Arguments, environment, directories, network; `entry` for a core module.
    pub sandbox: &'a Sandbox,
    /// Memory, time, CPU and fuel.
    pub limits: &'a Limits,
}

impl Guest<'_> {
    /// Runs the command to completion, or until `stop` is signalled, and reports how it
    /// stopped.
    ///
    /// The time limit holds while the guest waits in a host call too (a sleep, a blocking
    /// read): the epoch deadline stops running wasm, and the whole call is cancelled when
    /// the limit passes.
    pub async fn run(&self, stdio: Stdio, stop: &StopHandle) -> Result<Exit> {
        let run = self.run_to_end(stdio, stop);
        let bounded = async {
            match self.limits.timeout {
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

    async fn run_to_end(&self, stdio: Stdio, stop: &StopHandle) -> Result<Exit> {
        let Guest {
            engine,
            program,
            name,
            sandbox,
            limits,
        } = *self;
        let mut builder = sandbox.wasi()?;
        apply_stdio(&mut builder, stdio);
        match program {
            Program::Component(component) => {
                let imports_http = component
                    .component_type()
                    .imports(engine.engine())
                    .any(|(name, _)| name.starts_with("wasi:http/"));
                let linker = component_linker(engine, imports_http)?;
                let host = Host::new(builder.build(), limits);
                let mut store = Store::new(engine.engine(), host);
                store.limiter(|h| &mut h.limiter);
                configure(&mut store, limits, Some(stop.clone()))?;
                let command = match Command::instantiate_async(&mut store, component, &linker).await
                {
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
                crate::special::guard_module(&mut linker)?;
                let host = P1Host {
                    wasi: builder.build_p1(),
                    limiter: Limiter::new(limits),
                    guard: ModuleGuard::new(engine.p1_guard()),
                };
                let mut store = Store::new(engine.engine(), host);
                store.limiter(|h| &mut h.limiter);
                ModuleGuard::prepare(&mut store)?;
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
}

fn instantiate_error(name: &str, e: &wasmtime::Error) -> Error {
    Error::Instantiate {
        name: name.to_owned(),
        reason: wasmtime_message(e),
    }
}
