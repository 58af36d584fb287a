//! What `run`, `serve` and `compile` share: the artifact (pulled on demand), the grants
//! and limits, the engine and the compile cache.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use wasmoci_cli::env;
use wasmoci_cli::ops::artifact::{Wasm, find_wasm, wasm};
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_cli::units::{parse_duration, parse_size};
use wasmoci_runtime::cache::{CompileCache, Lookup, compile};
use wasmoci_runtime::engine::{EngineSettings, WasmEngine, build_engine};
use wasmoci_runtime::limits::{Limits, MemoryBudget};
use wasmoci_runtime::program::{Program, Shape, Want};
use wasmoci_runtime::sandbox::{DirGrant, NetworkGrant, Sandbox};
use wasmoci_spec::{Digest, WasmKind};

use super::args::PullOnDemand;
use crate::output;

/// What `run` and `serve` share: the artifact, the grants and the limits.
#[derive(Debug, clap::Args)]
pub(crate) struct RunCommon {
    /// `FILE.wasm`, `FILE.wat`, `oci:DIR[:TAG|@DIGEST]`, `NAME:TAG` in the store or
    /// `HOST/REPO:TAG` (pulled into the store first)
    #[arg(value_name = "ARTIFACT")]
    pub(crate) artifact: ArtifactRef,
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
    /// Memory one instance may have, e.g. `64MiB`: all its linear memories and tables
    /// together (8 bytes a table element)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Run with fuel: stop after this many units
    #[arg(long, value_name = "UNITS")]
    pub(crate) fuel: Option<u64>,
    /// Compile in memory instead of using the compile cache
    #[arg(long)]
    pub(crate) no_cache: bool,
    #[command(flatten)]
    pub(crate) pull: PullOnDemand,
}

/// The wasm `artifact` names, pulled into the store first when it names a registry.
pub(crate) fn wasm_of(artifact: &ArtifactRef, pull: &PullOnDemand) -> Result<Wasm> {
    pull.fetch(artifact)?;
    Ok(wasm(artifact)?)
}

/// The engine for one command (`pooling: false`: reserving a pool for one instance costs
/// more than the instance) or for a server (the pool, when the host allows it). Both come
/// from the same `build_engine`, and pooling does not change cache compatibility.
pub(crate) fn engine(common: &RunCommon, serving: bool) -> Result<WasmEngine> {
    let settings = EngineSettings {
        fuel: common.fuel.is_some(),
        pooling: if serving { None } else { Some(false) },
        ..EngineSettings::default()
    };
    Ok(build_engine(&settings)?)
}

pub(crate) fn cache() -> Result<CompileCache> {
    Ok(CompileCache::new(env::home()?.compile_cache()))
}

/// Refuses a program that cannot run as `want`, from its exports read off the bytes:
/// before anything is compiled or cached. Bytes that cannot be read are left to the
/// compiler, which says why.
fn check_target(wasm: &Wasm, want: Want) -> Result<()> {
    if let Some(shape) = Shape::read(&wasm.bytes) {
        shape.target(&wasm.name, None, want)?;
    }
    Ok(())
}

/// A program ready to run as `want`, and its name and digest.
pub(crate) struct Ready {
    pub(crate) name: String,
    pub(crate) digest: Digest,
    pub(crate) program: Program,
}

/// The program `common.artifact` names (pulled into the store first when it names a
/// registry), for `want`. The compile cache is asked by digest first: on a hit nothing
/// of the wasm is read, not even a stored layer (the store checked it when it was
/// written; `wasmoci validate` checks it again); on a miss the wasm is read, checked to
/// be runnable as `want`, compiled and stored.
pub(crate) fn program_of(common: &RunCommon, engine: &WasmEngine, want: Want) -> Result<Ready> {
    common.pull.fetch(&common.artifact)?;
    let found = find_wasm(&common.artifact)?;
    let cache = if common.no_cache {
        None
    } else {
        let cache = cache()?;
        let unsafe_note = |e: &wasmoci_runtime::Error| {
            if matches!(e, wasmoci_runtime::Error::UnsafeCache { .. }) {
                output::note("`--no-cache` runs without the compile cache");
            }
        };
        match cache
            .lookup(engine, &found.digest)
            .inspect_err(unsafe_note)?
        {
            Lookup::Hit(entry) => {
                let ready = Ready {
                    name: found.name,
                    digest: found.digest,
                    program: entry.program,
                };
                ready
                    .program
                    .target(engine.engine(), &ready.name, None, want)?;
                return Ok(ready);
            }
            Lookup::Miss => Some((cache, None)),
            Lookup::Unusable(reason) => Some((cache, Some(reason))),
        }
    };
    let wasm = found.read()?;
    check_target(&wasm, want)?;
    let program = match cache {
        None => {
            let kind = WasmKind::detect(&wasm.bytes).with_context(|| {
                format!("`{}` is not a WebAssembly module or component", wasm.name)
            })?;
            compile(engine, &wasm.name, kind, &wasm.bytes)?
        }
        Some((cache, unusable)) => {
            let (program, not_stored) =
                cache.compile_and_store(engine, &wasm.name, &wasm.bytes, &wasm.digest)?;
            if let Some(e) = not_stored {
                output::note(&format!(
                    "running `{}` without caching its compiled form: {}",
                    wasm.name,
                    output::one_line(&e)
                ));
            }
            if let Some(reason) = unusable {
                output::note(&format!(
                    "the compile cache entry of `{}` was unusable ({reason}); compiled it again",
                    wasm.name
                ));
            }
            program
        }
    };
    program.target(engine.engine(), &wasm.name, None, want)?;
    Ok(Ready {
        name: wasm.name,
        digest: wasm.digest,
        program,
    })
}

pub(crate) fn sandbox(common: &RunCommon, argv0: String, args: Vec<String>) -> Result<Sandbox> {
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

pub(crate) fn limits(common: &RunCommon, total: Option<u64>) -> Limits {
    Limits {
        memory: common.memory,
        total_memory: total.map(MemoryBudget::new),
        timeout: common.timeout,
        fuel: common.fuel,
        cpu: None,
    }
}
