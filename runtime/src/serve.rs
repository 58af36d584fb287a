//! Serving a `wasi:http/incoming-handler` component over HTTP/1.1: one instance per
//! request from an `InstancePre`, limits per request, graceful shutdown.
//!
//! No guest outlives its request: each runs in a task bounded by the request timeout
//! (a default one when none is given), which is aborted when the client hangs up, before
//! or after the response head. Admission is bounded ([`Admission`]): connections, requests
//! in flight, requests waiting for a slot (then 503 with `Retry-After`), and the time a
//! client may take to send its headers.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
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

/// A request's time limit when none is given.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How many requests and connections a server takes at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Requests whose guest runs at once (a guest holds its slot until it ends, body
    /// included). 50 by default: the engine's pool holds 1000 core instances, and a
    /// component is several (a componentize-py HTTP component about a dozen); past the
    /// pool, requests are refused with 503.
    pub max_concurrent: usize,
    /// Requests that may wait for a slot; more are refused with 503 at once, and a
    /// request that waits longer than its time limit is refused with 503 too.
    pub max_queued: usize,
    /// Open connections; the server stops accepting while it has this many.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (and how long an idle
    /// kept-alive connection stays open).
    pub header_timeout: Duration,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            max_concurrent: 50,
            max_queued: 1000,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// How a server runs its guests.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// What each request's instance sees.
    pub sandbox: Sandbox,
    /// Limits of each request (`timeout` is per request, [`DEFAULT_REQUEST_TIMEOUT`] when
    /// `None`; `total_memory` is shared).
    pub limits: Limits,
    /// Connections and requests taken at once.
    pub admission: Admission,
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
    /// Requests whose guest failed: answered with an error, or stopped after it sent the
    /// response head (a time limit, a trap).
    pub failures: u64,
    /// Requests refused with 503 because the server was full.
    pub refused: u64,
}

struct State {
    pre: ProxyPre<Host>,
    options: ServeOptions,
    name: String,
    slots: Arc<tokio::sync::Semaphore>,
    queued: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    refused: AtomicU64,
}

impl State {
    fn timeout(&self) -> Duration {
        self.options
            .limits
            .timeout
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }

    fn log(&self, message: &str) {
        self.options.stderr.write_line(&format!(
            "wasmoci: `{}`: {}",
            self.name,
            // A trap's message and backtrace carry the guest's names: escaped, so they
            // cannot drive the terminal (their lines are kept).
            wasmoci_spec::escape_controls(message, true)
        ));
    }
}

/// hyper's clock: tokio's.
#[derive(Debug, Clone, Copy)]
struct TokioTimer;

struct TokioSleep(Pin<Box<tokio::time::Sleep>>);

impl Future for TokioSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for TokioSleep {}

impl hyper::rt::Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(Box::pin(tokio::time::sleep_until(
            deadline.into(),
        ))))
    }
}

/// Aborts a guest's task when dropped, unless disarmed.
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl AbortOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// A guest's response body: when it is dropped before its end (the client hung up, or
/// the connection failed), the guest is stopped; when the guest failed before finishing
/// it, it ends with an error (the connection is cut) rather than looking complete.
struct GuardedBody {
    inner: HyperOutgoingBody,
    guard: AbortOnDrop,
    failed: Arc<AtomicBool>,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = <HyperOutgoingBody as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled
            && self.failed.load(Ordering::Acquire)
        {
            return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                "the guest was stopped before it finished the body".into(),
            )))));
        }
        if let Poll::Ready(None) = polled {
            // The body is complete: the guest may finish what it does after it, within
            // its time limit.
            self.guard.disarm();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

type ResponseBody = http_body_util::combinators::UnsyncBoxBody<
    Bytes,
    <HyperOutgoingBody as hyper::body::Body>::Error,
>;

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
    let admission = options.admission.clone();
    let state = Arc::new(State {
        pre: handler.0,
        options,
        name: name.to_owned(),
        slots: Arc::new(tokio::sync::Semaphore::new(admission.max_concurrent.max(1))),
        queued: AtomicUsize::new(0),
        requests: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let open = Arc::new(tokio::sync::Semaphore::new(
        admission.max_connections.max(1),
    ));
    let (drain, draining) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            (accepted, permit) = accept_within(&listener, &open) => {
                let Ok((stream, _peer)) = accepted else {
                    // Out of file descriptors, say: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let mut draining = draining.clone();
                let header_timeout = admission.header_timeout;
                connections.spawn(async move {
                    let _permit = permit;
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, request).await) }
                    });
                    let connection = http1::Builder::new()
                        .keep_alive(true)
                        .timer(TokioTimer)
                        .header_read_timeout(header_timeout)
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
        refused: state.refused.load(Ordering::Relaxed),
    })
}

/// Accepts a connection once fewer than the most allowed are open.
async fn accept_within(
    listener: &TcpListener,
    open: &Arc<tokio::sync::Semaphore>,
) -> (
    std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>,
    Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let permit = open.clone().acquire_owned().await.ok();
    (listener.accept().await, permit)
}

/// A slot for a guest: at once, after waiting in the queue, or `None` (refuse).
async fn slot(state: &State) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(permit) = state.slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    let max = state.options.admission.max_queued;
    let queued = state
        .queued
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        });
    queued.ok()?;
    let waited = tokio::time::timeout(state.timeout(), state.slots.clone().acquire_owned()).await;
    state.queued.fetch_sub(1, Ordering::AcqRel);
    waited.ok()?.ok()
}

async fn handle(
    state: Arc<State>,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<ResponseBody> {
    let Some(slot) = slot(&state).await else {
        state.refused.fetch_add(1, Ordering::Relaxed);
        return error_response(503, "the server is busy, try again");
    };
    match run_guest(&state, request, slot).await {
        Ok(response) => {
            state.requests.fetch_add(1, Ordering::Relaxed);
            response
        }
        Err((503, message)) => {
            // The shared memory ran out: the server is full, not the guest broken.
            state.refused.fetch_add(1, Ordering::Relaxed);
            state.log(&message);
            error_response(503, "the server is busy, try again")
        }
        Err((status, message)) => {
            state.failures.fetch_add(1, Ordering::Relaxed);
            // The details (a trap and its backtrace) go to the operator, not the client.
            state.log(&message);
            let public = match status {
                504 => "the request timed out",
                _ => "the handler failed",
            };
            error_response(status, public)
        }
    }
}

fn error_response(status: u16, message: &str) -> hyper::Response<ResponseBody> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if status == 503 {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    response
}

/// Why a guest failed, for the operator: 503 when the server is full (the shared memory
/// or the engine's instance pool used up), not the guest broken.
fn failure(e: &wasmtime::Error) -> (u16, String) {
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return (
            503,
            format!(
                "the engine's instance pool is full ({}): lower `--max-concurrent`",
                wasmtime_message(e)
            ),
        );
    }
    match classify(e) {
        Some(exit @ Exit::Timeout(_)) => (504, exit.describe().unwrap_or_default()),
        Some(Exit::MemoryLimit(limit)) if limit.shared => {
            (503, Exit::MemoryLimit(limit).describe().unwrap_or_default())
        }
        Some(exit) => (
            500,
            exit.describe()
                .map(|d| match &exit {
                    Exit::Trap {
                        backtrace: Some(bt),
                        ..
                    } => format!("{d}\n{bt}"),
                    _ => d,
                })
                .unwrap_or_else(|| "the guest exited".into()),
        ),
        None => (500, wasmtime_message(e)),
    }
}

async fn run_guest(
    state: &Arc<State>,
    request: hyper::Request<hyper::body::Incoming>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> std::result::Result<hyper::Response<ResponseBody>, (u16, String)> {
    let options = &state.options;
    let limit = state.timeout();
    let mut limits = options.limits.clone();
    limits.timeout = Some(limit);
    let mut builder = options.sandbox.wasi().map_err(|e| (500, e.to_string()))?;
    apply_output(&mut builder, &options.stdout, false);
    apply_output(&mut builder, &options.stderr, true);
    let host = Host::new(builder.build(), &limits);
    let mut store = Store::new(state.pre.engine(), host);
    store.limiter(|h| &mut h.limiter);
    configure(&mut store, &limits, None).map_err(|e| (500, e.to_string()))?;
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
    let failed = Arc::new(AtomicBool::new(false));
    let failing = failed.clone();
    // The guest runs in its own task (it may keep writing the body after the response
    // head has gone out), bounded by the time limit while it waits in a host call too,
    // holding its slot until it ends.
    let mut task = tokio::task::spawn(async move {
        let _slot = slot;
        let guest = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        };
        let result = match tokio::time::timeout(limit, guest).await {
            Ok(result) => result,
            Err(_) => Err(crate::exit::TimeLimitExceeded(limit).into()),
        };
        // Before the store (and the body's writer with it) is dropped.
        failing.store(result.is_err(), Ordering::Release);
        result
    });
    // Dropped with this future (the client hung up before the head): the guest stops.
    let guard = AbortOnDrop(Some(task.abort_handle()));
    let response = match receiver.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => {
            return Err((500, format!("the guest answered with an error: {code:?}")));
        }
        Err(_) => {
            return Err(match (&mut task).await {
                Ok(Ok(())) => (
                    500,
                    "the guest returned without setting a response".to_owned(),
                ),
                Ok(Err(e)) => failure(&e),
                Err(e) => (500, format!("the guest task failed: {e}")),
            });
        }
    };
    // The head is out; the guest may still fail (or be stopped) while it writes the body.
    let watcher = state.clone();
    tokio::spawn(async move {
        if let Ok(Err(e)) = task.await {
            watcher.failures.fetch_add(1, Ordering::Relaxed);
            let (_, message) = failure(&e);
            watcher.log(&format!("after the response head was sent: {message}"));
        }
    });
    Ok(response.map(|inner| {
        GuardedBody {
            inner,
            guard,
            failed,
        }
        .boxed_unsync()
    }))
}
