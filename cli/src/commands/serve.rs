//! `wasmoci serve`: a `wasi:http/incoming-handler` component over HTTP.

use std::process::ExitCode;

use anyhow::{Context, Result};
use std::time::Duration;

use wasmoci_cli::units::{parse_duration, parse_size};
use wasmoci_runtime::host::Output;
use wasmoci_runtime::program::Program;
use wasmoci_runtime::program::Want;
use wasmoci_runtime::serve::{Admission, ServeOptions, prepare, serve};

use super::guest::{RunCommon, engine, limits, program_of, sandbox};
use crate::output;

const SERVE_HELP: &str = "\
Serves HTTP/1.1 with one instance per request. The first stdout line is the URL it listens
on (useful with port 0). SIGINT or SIGTERM stops accepting, lets requests in flight finish
and exits 0.

No guest outlives its request: it is stopped when its client hangs up or its time limit
passes (`--timeout`, 60s unless given), before or after the response head. At most
`--max-concurrent` guests run at once; up to `--max-queued` more requests wait for one
(as long as their time limit), the rest are answered 503 with `Retry-After`, as is a
request whose guest finds `--total-memory` used up.

`--json`: JSON Lines on stdout instead, the first when it listens, the last when it stops:
  {\"event\": \"listening\", \"url\", \"artifact\", \"digest\"}
  {\"event\": \"stopped\", \"requests\", \"failures\", \"refused\"}

Examples:
  wasmoci serve http:1.0.0
  wasmoci serve app.wasm --listen 127.0.0.1:0 --timeout 5s --memory 64MiB --total-memory 1GiB";

/// Serve a `wasi:http/incoming-handler` component over HTTP
#[derive(Debug, clap::Args)]
#[command(after_help = SERVE_HELP)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    common: RunCommon,
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Linear memory all requests in flight may have together, e.g. `1GiB`
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    total_memory: Option<u64>,
    /// Requests whose guest runs at once
    #[arg(long, value_name = "N", default_value_t = Admission::default().max_concurrent)]
    max_concurrent: usize,
    /// Requests that may wait for a running one to end; more are answered 503
    #[arg(long, value_name = "N", default_value_t = Admission::default().max_queued)]
    max_queued: usize,
    /// Open connections; no more are accepted until one closes
    #[arg(long, value_name = "N", default_value_t = Admission::default().max_connections)]
    max_connections: usize,
    /// How long a client may take to send a request's headers (or stay idle between requests)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    header_timeout: Duration,
    /// Print JSON Lines: one when listening, one when stopped
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: ServeArgs) -> Result<ExitCode> {
    let common = &args.common;
    let engine = engine(common, true)?;
    let wasm = program_of(common, &engine, Want::Http)?;
    let Program::Component(component) = &wasm.program else {
        unreachable!("`Program::target` serves components only");
    };
    // Everything is checked before the socket is bound.
    let handler = prepare(&engine, component, &wasm.name)?;
    let options = ServeOptions {
        sandbox: sandbox(common, wasm.name.clone(), Vec::new())?,
        limits: limits(common, args.total_memory),
        admission: Admission {
            max_concurrent: args.max_concurrent,
            max_queued: args.max_queued,
            max_connections: args.max_connections,
            header_timeout: args.header_timeout,
        },
        stdout: Output::Inherit,
        stderr: Output::Inherit,
        drain_timeout: None,
    };
    raise_open_files(args.max_connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let report = runtime.block_on(async {
        let listener = wasmoci_runtime::serve::listen(&args.listen).await?;
        let addr = listener
            .local_addr()
            .context("failed to read the listening address")?;
        if args.json {
            output::json_line(&serde_json::json!({
                "event": "listening",
                "url": format!("http://{addr}"),
                "artifact": wasm.name,
                "digest": wasm.digest.to_string(),
            }));
        } else {
            output::data(&format!("http://{addr}"));
        }
        output::status(&format!(
            "serving `{}` on http://{addr} (Ctrl-C to stop)",
            wasm.name
        ));
        let report = serve(handler, &wasm.name, listener, options, shutdown_signal()).await?;
        anyhow::Ok(report)
    })?;
    output::status(&format!(
        "stopped: {} requests answered, {} failed, {} refused",
        report.requests, report.failures, report.refused
    ));
    if args.json {
        output::json_line(&serde_json::json!({
            "event": "stopped",
            "requests": report.requests,
            "failures": report.failures,
            "refused": report.refused,
        }));
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Raises the soft limit on open files to the hard one (as Go and nginx do), so that
/// `--max-connections` (1024 by default), not the usual soft limit of 1024, bounds the
/// connections; says so when even the hard limit is lower.
fn raise_open_files(connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    // Connections and what the server itself keeps open (the engine, the listener).
    let wanted = connections as u64 + 64;
    if hard < wanted {
        output::note(&format!(
            "at most {hard} files may be open (`ulimit -Hn`): fewer than `--max-connections {connections}` connections will be accepted at once"
        ));
    }
}
