//! Serving a `wasi:http/incoming-handler` component over HTTP/1.1: one instance per
//! request from an `InstancePre`, limits per request, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use wasmtime::Store;
use wasmtime::component::Component;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::engine::WasmEngine;
use crate::error::wasmtime_message;
use crate::exit::{Exit, classify};
use crate::host::{Host, Output, apply_output, component_linker, configure};
use crate::limits::Limits;
use crate::sandbox::Sandbox;
use crate::{Error, Result};

/// How a server runs its guests.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// What each request's instance sees.
    pub sandbox: Sandbox,
    /// Limits of each request (`timeout` is per request; `total_memory` is shared).
    pub limits: Limits,
    /// Where the guests' stdout goes.
    pub stdout: Output,
    /// Where the guests' stderr goes.
    pub stderr: Output,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Option<Duration>,
}

/// What a server did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Requests answered by the guest.
    pub requests: u64,
    /// Requests answered with an error because the guest failed.
    pub failures: u64,
}

struct State {
    pre: ProxyPre<Host>,
    options: ServeOptions,
    name: String,
    requests: AtomicU64,
    failures: AtomicU64,
}

/// A linked HTTP handler, ready to instantiate per request.
#[derive(Clone)]
pub struct HttpHandler(ProxyPre<Host>);

impl std::fmt::Debug for HttpHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpHandler")
    }
}

/// Checks that `component` is an HTTP handler and links it, before any socket is bound.
pub fn prepare(engine: &WasmEngine, component: &Component, name: &str) -> Result<HttpHandler> {
    let linker = component_linker(engine, true)?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| Error::Instantiate {
            name: name.to_owned(),
            reason: wasmtime_message(&e),
        })?;
    ProxyPre::new(pre)
        .map(HttpHandler)
        .map_err(|e| Error::NoEntryPoint {
            name: name.to_owned(),
            reason: format!(
                "it does not export `wasi:http/incoming-handler` ({})",
                wasmtime_message(&e)
            ),
        })
}

/// Binds `addr`.
pub async fn listen(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen {
            addr: addr.to_owned(),
            source,
        })
}

/// Serves requests on `listener` until `shutdown` resolves, then stops accepting, lets
/// requests in flight finish (up to `drain_timeout`) and returns what it did.
pub async fn serve(
    handler: HttpHandler,
    name: &str,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<ServeReport> {
    let drain_timeout = options.drain_timeout.unwrap_or(Duration::from_secs(30));
    let state = Arc::new(State {
        pre: handler.0,
        options,
        name: name.to_owned(),
        requests: AtomicU64::new(0),
        failures: AtomicU64::new(0),
    });
    let (drain, draining) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    // Out of file descriptors, say: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let mut draining = draining.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, request).await) }
                    });
                    let connection = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        _ = draining.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = drain.send(true);
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    Ok(ServeReport {
        requests: state.requests.load(Ordering::Relaxed),
        failures: state.failures.load(Ordering::Relaxed),
    })
}

async fn handle(
    state: Arc<State>,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<HyperOutgoingBody> {
    match run_guest(&state, request).await {
        Ok(response) => {
            state.requests.fetch_add(1, Ordering::Relaxed);
            response
        }
        Err((status, message)) => {
            state.failures.fetch_add(1, Ordering::Relaxed);
            // The details (a trap and its backtrace) go to the operator, not the client.
            state
                .options
                .stderr
                .write_line(&format!("wasmoci: `{}`: {message}", state.name));
            let public = match status {
                504 => "the request timed out",
                _ => "the handler failed",
            };
            error_response(status, public)
        }
    }
}

fn error_response(status: u16, message: &str) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

async fn run_guest(
    state: &Arc<State>,
    request: hyper::Request<hyper::body::Incoming>,
) -> std::result::Result<hyper::Response<HyperOutgoingBody>, (u16, String)> {
    let options = &state.options;
    let mut builder = options.sandbox.wasi().map_err(|e| (500, e.to_string()))?;
    apply_output(&mut builder, &options.stdout, false);
    apply_output(&mut builder, &options.stderr, true);
    let host = Host::new(builder.build(), &options.limits);
    let mut store = Store::new(state.pre.engine(), host);
    store.limiter(|h| &mut h.limiter);
    configure(&mut store, &options.limits, None).map_err(|e| (500, e.to_string()))?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let (incoming, outparam) = {
        let mut http = wasmtime_wasi_http::WasiHttpView::http(store.data_mut());
        let incoming = http
            .new_incoming_request(Scheme::Http, request)
            .map_err(|e| (500, wasmtime_message(&e)))?;
        let outparam = http
            .new_response_outparam(sender)
            .map_err(|e| (500, wasmtime_message(&e)))?;
        (incoming, outparam)
    };
    let pre = state.pre.clone();
    // The guest runs in its own task: it may keep writing the body after the response
    // head has gone out.
    let task = tokio::task::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, outparam)
            .await
    });
    // The time limit holds while the guest waits in a host call too.
    let receiver = match options.limits.timeout {
        Some(limit) => match tokio::time::timeout(limit, receiver).await {
            Ok(received) => received,
            Err(_) => {
                task.abort();
                return Err((504, Exit::Timeout(limit).describe().unwrap_or_default()));
            }
        },
        None => receiver.await,
    };
    match receiver {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err((500, format!("the guest answered with an error: {code:?}"))),
        Err(_) => {
            let failure = match task.await {
                Ok(Ok(())) => "the guest returned without setting a response".to_owned(),
                Ok(Err(e)) => match classify(&e) {
                    Some(exit @ Exit::Timeout(_)) => {
                        return Err((504, exit.describe().unwrap_or_default()));
                    }
                    Some(exit) => exit
                        .describe()
                        .map(|d| match &exit {
                            Exit::Trap {
                                backtrace: Some(bt),
                                ..
                            } => format!("{d}\n{bt}"),
                            _ => d,
                        })
                        .unwrap_or_else(|| "the guest exited".into()),
                    None => wasmtime_message(&e),
                },
                Err(e) => format!("the guest task failed: {e}"),
            };
            Err((500, failure))
        }
    }
}
