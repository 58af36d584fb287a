//! The one function that makes a `wasmtime::Engine`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::error::wasmtime_message;
use crate::{Error, Result};

/// The wasm features the engine accepts, as a `--features` list: wasmtime 48's defaults
/// (Wasm 3.0 and the component model) without what this build leaves out (the `gc`,
/// `threads` and `component-model-async` crate features). So a validation with these
/// refuses what `run` would refuse (`compose` checks its output with them).
pub const ENGINE_FEATURES: &str =
    "wasm3,component-model,-gc,-gc-types,-exceptions,-threads,-shared-everything-threads,-cm-async";

/// How often the epoch advances: the granularity of every deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine settings a caller may choose. Anything not here is fixed, so two engines
/// with equal settings compile identical code (and share cache entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// Use the pooling allocator: `None` tries it and falls back to on-demand allocation
    /// when the host cannot reserve the address space.
    pub pooling: Option<bool>,
    /// Concurrent instances the pool holds (component and core instances each).
    pub pool_instances: u32,
    /// Largest linear memory any instance may have, in bytes (also the pool's slot size).
    pub max_memory: u64,
    /// Count fuel (changes the generated code, so it is part of the cache key).
    pub fuel: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            pooling: None,
            pool_instances: 1000,
            max_memory: 4 << 30,
            fuel: false,
        }
    }
}

/// An engine and the thread that advances its epoch.
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    pooling: bool,
    /// The wasip1 open guard's helper, compiled on first use ([`crate::special`]).
    p1_guard: Arc<std::sync::OnceLock<wasmtime::Module>>,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

impl WasmEngine {
    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The cell holding the wasip1 open guard's helper module.
    pub(crate) fn p1_guard(&self) -> Arc<std::sync::OnceLock<wasmtime::Module>> {
        self.p1_guard.clone()
    }
}

struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The `wasmtime::Config` for `settings`, with or without the pooling allocator.
fn config(settings: &EngineSettings, pooling: bool) -> Config {
    let mut config = Config::new();
    config
        .strategy(wasmtime::Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(settings.fuel)
        .parallel_compilation(true)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64));
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(settings.pool_instances)
            .total_core_instances(settings.pool_instances)
            .total_memories(settings.pool_instances)
            .total_tables(settings.pool_instances)
            .total_stacks(settings.pool_instances)
            .max_memory_size(settings.max_memory as usize);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Builds the engine every path uses, and starts its epoch ticker.
pub fn build_engine(settings: &EngineSettings) -> Result<WasmEngine> {
    let (engine, pooling) = match settings.pooling {
        Some(pooling) => (
            Engine::new(&config(settings, pooling))
                .map_err(|e| Error::Engine(wasmtime_message(&e)))?,
            pooling,
        ),
        None => match Engine::new(&config(settings, true)) {
            Ok(engine) => (engine, true),
            Err(_) => (
                Engine::new(&config(settings, false))
                    .map_err(|e| Error::Engine(wasmtime_message(&e)))?,
                false,
            ),
        },
    };
    let stop = Arc::new(AtomicBool::new(false));
    let weak = engine.weak();
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("wasmoci-epoch".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map_err(|e| Error::Engine(format!("failed to start the epoch thread: {e}")))?;
    Ok(WasmEngine {
        engine,
        pooling,
        p1_guard: Default::default(),
        _ticker: Arc::new(Ticker { stop }),
    })
}

/// A stable identifier of what this engine's compiled code is compatible with
/// (`Engine::precompile_compatibility_hash`), as hex: the cache directory name.
pub fn compatibility_key(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_does_not_change_what_compiled_code_is_compatible_with() {
        let pooled = build_engine(&EngineSettings {
            pooling: Some(true),
            ..EngineSettings::default()
        })
        .unwrap();
        let on_demand = build_engine(&EngineSettings {
            pooling: Some(false),
            ..EngineSettings::default()
        })
        .unwrap();
        assert_eq!(
            compatibility_key(pooled.engine()),
            compatibility_key(on_demand.engine())
        );
    }
}
