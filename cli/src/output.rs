//! The one place that writes to the terminal: data to stdout, status and errors to stderr.
//! `--quiet` silences status lines, notes and summaries, never data, problems or errors.
//!
//! Text for people may carry what a registry, an artifact or a guest wrote: every line
//! printed here has its control characters escaped ([`escape_controls`]), and the lines of
//! an error's message or cause after its first are indented under it. `--json` and
//! [`raw`] bytes are exact.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this module is the printer"
)]

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use wasmoci_spec::escape_controls;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences status lines, notes and progress bars (`--quiet`).
pub(crate) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--quiet` is on.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A report of a command: `Serialize` for `--json`, and what people see otherwise.
pub(crate) trait Report: Serialize {
    /// The status line for people, on stderr.
    fn status(&self) -> Option<String> {
        None
    }
    /// The data for people, on stdout.
    fn text(&self) -> Option<String> {
        None
    }
}

/// Shows `report`: as JSON on stdout with `json`, else its status and its text.
pub(crate) fn report(report: &impl Report, json: bool) {
    if json {
        self::json(report);
        return;
    }
    if let Some(line) = report.status() {
        status(&line);
    }
    if let Some(text) = report.text() {
        data(&text);
    }
}

/// Writes data (a reference, a report, JSON) to stdout, control characters escaped. A
/// closed pipe ends quietly.
pub(crate) fn data(text: &str) {
    write_stdout(&escape_controls(text, true));
}

fn write_stdout(text: &str) {
    let mut out = io::stdout().lock();
    let result = out
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush());
    if let Err(e) = result
        && e.kind() == io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Writes bytes to stdout exactly as they are (a manifest, a config).
pub(crate) fn raw(bytes: &[u8]) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush())
        && e.kind() == io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Writes pretty JSON to stdout, keys sorted (the same order whatever the type's).
pub(crate) fn json(value: &impl Serialize) {
    let value = serde_json::to_value(value).expect("reports serialize");
    write_stdout(&serde_json::to_string_pretty(&value).expect("JSON values serialize"));
}

/// Writes one JSON object on one line of stdout: for `run` and `serve`, whose reports
/// share stdout with the guest (JSON Lines: the report is a line of its own).
pub(crate) fn json_line(value: &impl Serialize) {
    let value = serde_json::to_value(value).expect("reports serialize");
    write_stdout(&serde_json::to_string(&value).expect("JSON values serialize"));
}

/// A summary of what a command did, on stdout as `docker rmi` and `docker image prune`
/// print theirs (not with `--quiet`; `--json` gives it as data).
pub(crate) fn summary(text: &str) {
    if !quiet() {
        data(text);
    }
}

/// A status line on stderr (not with `--quiet`).
pub(crate) fn status(text: &str) {
    if !quiet() {
        eprintln!("{}", escape_controls(text, true));
    }
}

/// A note on stderr (not with `--quiet`).
pub(crate) fn note(text: &str) {
    if !quiet() {
        eprintln!("note: {}", escape_controls(text, true));
    }
}

/// A line about what went wrong, on stderr (even with `--quiet`).
pub(crate) fn problem(text: &str) {
    eprintln!("{}", escape_controls(text, true));
}

/// Renders an error and its causes on stderr.
pub(crate) fn error(error: &anyhow::Error) {
    // A message of several lines (a TOML error's snippet) keeps them, indented under it:
    // no line of it can pass for a line of ours.
    let line = |text: String| escape_controls(&text, true).replace('\n', "\n    ");
    eprintln!("error: {}", line(error.to_string()));
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {}", line(cause_text(cause)));
    }
    if let Some(backtrace) = crate::debug::backtrace(error) {
        eprintln!("{backtrace}");
    }
}

/// An error and its causes on one line (`a: b: c`), OS errors as ours read.
pub(crate) fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        parts.push(cause_text(e));
        next = e.source();
    }
    parts.join(": ")
}

/// One cause's text: OS errors as ours read ([`os_error`]), others as they display.
fn cause_text(cause: &(dyn std::error::Error + 'static)) -> String {
    match cause.downcast_ref::<io::Error>() {
        Some(e) => os_error(e),
        None => cause.to_string(),
    }
}

/// An OS error as ours read: `no space left on device`, not `No space left on device
/// (os error 28)` (what a temporary file's error adds, `at path "…"`, stays).
fn os_error(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => {
            let end = text[at..].find(')').map_or(text.len(), |e| at + e + 1);
            format!("{}{}", &text[..at], &text[end..])
        }
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if chars.clone().next().is_some_and(char::is_lowercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text,
    }
}

/// Rows as aligned columns, two spaces apart, each line ending in `\n`.
pub(crate) fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
