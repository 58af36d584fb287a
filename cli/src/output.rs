//! The one place that writes to the terminal: data to stdout, status and errors to stderr.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this module is the printer"
)]

use std::io::{self, Write};

/// Writes data (a reference, a report, JSON) to stdout. A closed pipe ends quietly.
pub(crate) fn data(text: &str) {
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

/// Writes pretty JSON to stdout.
pub(crate) fn json(value: &serde_json::Value) {
    data(&serde_json::to_string_pretty(value).expect("JSON values serialize"));
}

/// A status line on stderr.
pub(crate) fn status(text: &str) {
    eprintln!("{text}");
}

/// A note on stderr.
pub(crate) fn note(text: &str) {
    eprintln!("note: {text}");
}

/// Renders an error and its causes on stderr.
pub(crate) fn error(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
