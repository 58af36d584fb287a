//! `WASMOCI_LOG`: what wasmoci says beyond its status lines, for debugging. Its value is a
//! level (`off`, `error`, `warn`, `info`, `debug`, `trace`) for wasmoci's own log records,
//! printed on stderr; other crates' records show up to `warn` (wasmtime's debug log would
//! drown everything else). At `debug` and `trace` an error is followed by the Rust
//! backtrace of where it was made, when one was recorded (`RUST_BACKTRACE=1`). Unset: no
//! log, and never a backtrace, whatever `RUST_BACKTRACE` says.

use std::backtrace::BacktraceStatus;
use std::sync::OnceLock;

use log::{LevelFilter, Log, Metadata, Record};

use crate::output;

/// The environment variable.
pub(crate) const WASMOCI_LOG: &str = "WASMOCI_LOG";

static LEVEL: OnceLock<LevelFilter> = OnceLock::new();

struct Logger(LevelFilter);

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let limit = if metadata.target().starts_with("wasmoci") {
            self.0
        } else {
            self.0.min(LevelFilter::Warn)
        };
        metadata.level() <= limit
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = record.level().as_str().to_ascii_lowercase();
            output::problem(&format!("[{level} {}] {}", record.target(), record.args()));
        }
    }

    fn flush(&self) {}
}

/// Reads `WASMOCI_LOG` and installs the logger it asks for (once, at start).
pub(crate) fn init() {
    let Some(value) = std::env::var_os(WASMOCI_LOG) else {
        return;
    };
    let level = match value
        .to_str()
        .and_then(|v| v.trim().parse::<LevelFilter>().ok())
    {
        Some(level) => level,
        None => {
            output::note(&format!(
                "ignoring `{WASMOCI_LOG}={}`: expected `off`, `error`, `warn`, `info`, `debug` or `trace`",
                value.to_string_lossy()
            ));
            return;
        }
    };
    let _ = LEVEL.set(level);
    if log::set_logger(Box::leak(Box::new(Logger(level)))).is_ok() {
        log::set_max_level(level);
    }
}

/// The Rust backtrace to print after `error`: only at `WASMOCI_LOG=debug` or `trace`, and
/// only when one was recorded.
pub(crate) fn backtrace(error: &anyhow::Error) -> Option<String> {
    backtrace_at(LEVEL.get().copied(), error)
}

fn backtrace_at(level: Option<LevelFilter>, error: &anyhow::Error) -> Option<String> {
    let backtrace = error.backtrace();
    (level? >= LevelFilter::Debug && backtrace.status() == BacktraceStatus::Captured)
        .then(|| format!("backtrace:\n{backtrace}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backtrace_only_at_debug_and_only_when_recorded() {
        let error = anyhow::anyhow!("failed");
        let recorded = error.backtrace().status() == BacktraceStatus::Captured;
        for level in [None, Some(LevelFilter::Off), Some(LevelFilter::Info)] {
            assert_eq!(backtrace_at(level, &error), None, "{level:?}");
        }
        for level in [LevelFilter::Debug, LevelFilter::Trace] {
            assert_eq!(backtrace_at(Some(level), &error).is_some(), recorded);
        }
    }
}
