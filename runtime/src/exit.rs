//! How a guest stops: every cause its own [`Exit`] with its own status, the errors a
//! store returns to stop a guest (a kill, a limit), and [`StopHandle`], a kill from outside.
//! A leaf: it uses no other module of the engine.

use std::time::Duration;

use wasmtime::{Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

/// The guest tried to grow its memory past a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("memory limit exceeded: the guest asked for {requested} bytes, the limit is {limit} bytes{}", if *.shared { " (shared)" } else { "" })]
pub struct MemoryLimitExceeded {
    /// The limit.
    pub limit: u64,
    /// What the guest asked for.
    pub requested: u64,
    /// Whether it was the shared budget.
    pub shared: bool,
}

/// The guest ran past its deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time limit exceeded: stopped after {0:?}")]
pub struct TimeLimitExceeded(pub Duration);

/// A kill, as an error a store can return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stopped by signal {0}")]
pub(crate) struct Killed(pub(crate) i32);

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
    pub async fn wait(&self) -> i32 {
        let mut rx = self.0.subscribe();
        let signal = rx.wait_for(Option::is_some).await;
        signal.ok().and_then(|s| *s).unwrap_or(9)
    }
}

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
