//! `wasmoci run`, `wasmoci serve` and `wasmoci compile`: the engine of `wasmoci-runtime`
//! behind the artifact names every command shares.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use wasmoci_cli::env;
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_cli::units::{parse_duration, parse_size};
use wasmoci_runtime::cache::{CacheOutcome, CompileCache, compile};
use wasmoci_runtime::engine::{EngineSettings, WasmEngine, build_engine};
use wasmoci_runtime::limits::{Limits, MemoryBudget};
use wasmoci_runtime::program::{EntryPoint, Program};
use wasmoci_runtime::run::{Exit, Input, Output, Stdio, run_command};
use wasmoci_runtime::sandbox::{DirGrant, NetworkGrant, Sandbox};
use wasmoci_runtime::serve::{ServeOptions, prepare, serve};
use wasmoci_spec::{Digest, WasmKind};

use super::{Loaded, load};
use crate::output;

/// What `run` and `serve` share: the artifact, the grants and the limits.
#[derive(Debug, clap::Args)]
pub(crate) struct RunCommon {
    /// `FILE.wasm`, `FILE.wat`, `oci:DIR[:TAG|@DIGEST]` or `NAME:TAG` in the store
    #[arg(value_name = "ARTIFACT")]
    artifact: ArtifactRef,
    /// Grant a host directory: `HOST[::GUEST][:ro]` (repeatable); nothing is visible otherwise
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]")]
    dirs: Vec<DirGrant>,
    /// Set an environment variable, or pass `KEY` through from this environment (repeatable)
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Allow outbound sockets: to anything, or with `=IP[:PORT],…` only to those
    #[arg(long, value_name = "ADDRS", num_args = 0..=1, require_equals = true, default_missing_value = "*")]
    allow_net: Option<String>,
    /// Stop the guest after this long (per request for `serve`), e.g. `2s`, `500ms`
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Linear memory one instance may have, e.g. `64MiB`
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Run with fuel: stop after this many units
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Compile in memory instead of using the compile cache
    #[arg(long)]
    no_cache: bool,
}

const RUN_HELP: &str = "\
Exit status: the guest's own exit code; 134 when it traps (the message and the wasm
backtrace go to stderr), 124 when it hits `--timeout`, 137 when it hits `--memory`,
133 when it runs out of `--fuel`; 2 when wasmoci cannot run it at all.

Examples:
  wasmoci run hello:0.1.0
  wasmoci run app.wasm --dir ./data::/data:ro --env RUST_LOG=info -- --verbose input.txt
  wasmoci run oci:out:tool:1.0.0 --timeout 2s --memory 64MiB";

/// Run a command component (`wasi:cli/run`) or a wasip1 module (`_start`)
#[derive(Debug, clap::Args)]
#[command(after_help = RUN_HELP)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    common: RunCommon,
    /// Arguments for the guest (after `--`)
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

const SERVE_HELP: &str = "\
Serves HTTP/1.1 with one instance per request. The first stdout line is the URL it listens
on (useful with port 0). SIGINT or SIGTERM stops accepting, lets requests in flight finish
and exits 0.

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
}

const COMPILE_HELP: &str = "\
Compiles the artifact for this machine into the compile cache, so the next `run` or
`serve` starts without compiling. Prints the cache entry.

Examples:
  wasmoci compile hello:0.1.0
  wasmoci compile app.wasm";

/// Precompile an artifact into the compile cache
#[derive(Debug, clap::Args)]
#[command(after_help = COMPILE_HELP)]
pub(crate) struct CompileArgs {
    /// `FILE.wasm`, `FILE.wat`, `oci:DIR[:TAG|@DIGEST]` or `NAME:TAG` in the store
    #[arg(value_name = "ARTIFACT")]
    artifact: ArtifactRef,
}

/// The wasm of an artifact, its digest and a name for messages.
struct Wasm {
    name: String,
    bytes: Vec<u8>,
    digest: Digest,
}

fn wasm_of(reference: &ArtifactRef) -> Result<Wasm> {
    match load(reference)? {
        Loaded::File { path, bytes } => Ok(Wasm {
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            digest: Digest::of(&bytes),
            bytes,
        }),
        Loaded::Stored(parts) => {
            parts.manifest()?;
            let Some((_, layer, bytes)) = parts.wasm_layer() else {
                bail!(
                    "`{}` does not have exactly one wasm layer (run `wasmoci validate` on it)",
                    parts.display
                );
            };
            Ok(Wasm {
                name: parts
                    .stored
                    .tag
                    .clone()
                    .unwrap_or_else(|| parts.display.clone()),
                digest: layer.digest,
                bytes: bytes.to_vec(),
            })
        }
    }
}

/// The engine for one command (`pooling: false`: reserving a pool for one instance costs
/// more than the instance) or for a server (the pool, when the host allows it). Both come
/// from the same `build_engine`, and pooling does not change cache compatibility.
fn engine(common: &RunCommon, serving: bool) -> Result<WasmEngine> {
    let settings = EngineSettings {
        fuel: common.fuel.is_some(),
        pooling: if serving { None } else { Some(false) },
        ..EngineSettings::default()
    };
    Ok(build_engine(&settings)?)
}

fn cache() -> Result<CompileCache> {
    Ok(CompileCache::new(env::home()?.compile_cache()))
}

fn load_program(engine: &WasmEngine, wasm: &Wasm, no_cache: bool) -> Result<Program> {
    if no_cache {
        let kind = WasmKind::detect(&wasm.bytes)
            .with_context(|| format!("`{}` is not a WebAssembly module or component", wasm.name))?;
        return Ok(compile(engine, &wasm.name, kind, &wasm.bytes)?);
    }
    let (program, outcome) = cache()?.load(engine, &wasm.name, &wasm.bytes, &wasm.digest)?;
    if let CacheOutcome::Replaced(reason) = outcome {
        output::note(&format!(
            "the compile cache entry of `{}` was unusable ({reason}); compiled it again",
            wasm.name
        ));
    }
    Ok(program)
}

fn sandbox(common: &RunCommon, argv0: String, args: Vec<String>) -> Result<Sandbox> {
    let mut env_vars = Vec::new();
    for entry in &common.env {
        match entry.split_once('=') {
            Some((key, value)) => env_vars.push((key.to_owned(), value.to_owned())),
            None => {
                if let Ok(value) = std::env::var(entry) {
                    env_vars.push((entry.clone(), value));
                }
            }
        }
    }
    let network = match common.allow_net.as_deref() {
        None => NetworkGrant::None,
        Some("*") => NetworkGrant::All,
        Some(list) => NetworkGrant::Allow(
            list.split(',')
                .map(|item| parse_addr(item.trim()))
                .collect::<Result<_>>()?,
        ),
    };
    for dir in &common.dirs {
        if !dir.host.is_dir() {
            bail!(
                "invalid `--dir`: `{}` is not a directory",
                dir.host.display()
            );
        }
    }
    Ok(Sandbox {
        args: std::iter::once(argv0).chain(args).collect(),
        env: env_vars,
        dirs: common.dirs.clone(),
        network,
        entry: None,
    })
}

fn parse_addr(item: &str) -> Result<(IpAddr, Option<u16>)> {
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    match item.parse::<std::net::SocketAddr>() {
        Ok(addr) => Ok((addr.ip(), Some(addr.port()))),
        Err(_) => bail!("invalid `--allow-net` entry `{item}`: expected `IP` or `IP:PORT`"),
    }
}

fn limits(common: &RunCommon, total: Option<u64>) -> Limits {
    Limits {
        memory: common.memory,
        total_memory: total.map(MemoryBudget::new),
        timeout: common.timeout,
        fuel: common.fuel,
        cpu: None,
    }
}

fn tokio() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// One command on the current thread: no worker threads to start for a single guest.
fn tokio_single() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

pub(crate) fn run(args: RunArgs) -> Result<ExitCode> {
    let common = &args.common;
    let wasm = wasm_of(&common.artifact)?;
    let engine = engine(common, false)?;
    let program = load_program(&engine, &wasm, common.no_cache)?;
    let entries = program.entry_points(engine.engine());
    if !entries.contains(&EntryPoint::Command) {
        if entries.contains(&EntryPoint::Http) {
            bail!(
                "`{}` is an HTTP handler (`wasi:http/incoming-handler`): use `wasmoci serve`",
                wasm.name
            );
        }
        bail!(
            "`{}` has nothing to run: it exports neither `wasi:cli/run` nor `_start` (it exports {})",
            wasm.name,
            list(&program.exports(engine.engine()))
        );
    }
    let sandbox = sandbox(common, wasm.name.clone(), args.args.clone())?;
    let limits = limits(common, None);
    let stdio = Stdio {
        stdin: Input::Inherit,
        stdout: Output::Inherit,
        stderr: Output::Inherit,
    };
    let exit = tokio_single()?.block_on(run_command(
        &engine, &program, &wasm.name, &sandbox, &limits, stdio,
    ))?;
    if let Some(description) = exit.describe() {
        output::status(&format!("error: `{}`: {description}", wasm.name));
        if let Exit::Trap {
            backtrace: Some(backtrace),
            ..
        } = &exit
        {
            output::status(backtrace);
        }
    }
    // A status outside 0..=255 cannot be an exit code; never let it wrap to success.
    Ok(ExitCode::from(u8::try_from(exit.status()).unwrap_or(1)))
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "nothing".into();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn serve_command(args: ServeArgs) -> Result<ExitCode> {
    let common = &args.common;
    let wasm = wasm_of(&common.artifact)?;
    let engine = engine(common, true)?;
    let program = load_program(&engine, &wasm, common.no_cache)?;
    let Program::Component(component) = &program else {
        bail!(
            "`{}` is a core module; only components can serve `wasi:http`",
            wasm.name
        );
    };
    // Everything is checked before the socket is bound.
    let handler = prepare(&engine, component, &wasm.name)?;
    let options = ServeOptions {
        sandbox: sandbox(common, wasm.name.clone(), Vec::new())?,
        limits: limits(common, args.total_memory),
        stdout: Output::Inherit,
        stderr: Output::Inherit,
        drain_timeout: None,
    };
    let runtime = tokio()?;
    let report = runtime.block_on(async {
        let listener = wasmoci_runtime::serve::listen(&args.listen).await?;
        let addr = listener
            .local_addr()
            .context("failed to read the listening address")?;
        output::data(&format!("http://{addr}"));
        output::status(&format!(
            "serving `{}` on http://{addr} (Ctrl-C to stop)",
            wasm.name
        ));
        let report = serve(handler, &wasm.name, listener, options, shutdown_signal()).await?;
        anyhow::Ok(report)
    })?;
    output::status(&format!(
        "stopped: {} requests answered, {} failed",
        report.requests, report.failures
    ));
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

pub(crate) fn compile_command(args: CompileArgs) -> Result<ExitCode> {
    let wasm = wasm_of(&args.artifact)?;
    let engine = build_engine(&EngineSettings {
        pooling: Some(false),
        ..EngineSettings::default()
    })?;
    let cache = cache()?;
    let (_, outcome) = cache.load(&engine, &wasm.name, &wasm.bytes, &wasm.digest)?;
    let what = match outcome {
        CacheOutcome::Hit => "already compiled".to_owned(),
        CacheOutcome::Miss | CacheOutcome::Uncached => "compiled".to_owned(),
        CacheOutcome::Replaced(reason) => format!("compiled again ({reason})"),
    };
    output::status(&format!("`{}`: {what}", wasm.name));
    output::data(
        &cache
            .entry_path(&engine, &wasm.digest)
            .display()
            .to_string(),
    );
    Ok(ExitCode::SUCCESS)
}
