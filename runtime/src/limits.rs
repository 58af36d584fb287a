//! Memory and time limits, and the errors that report hitting them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, UpdateDeadline};

use crate::exit::{Killed, MemoryLimitExceeded, StopHandle, TimeLimitExceeded};

/// What a guest may use. `None` means unlimited (up to the engine's maximum memory).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Bytes one instance (one command, one HTTP request) may have: all its linear
    /// memories together, plus its tables at [`TABLE_ELEMENT_BYTES`] an element.
    pub memory: Option<u64>,
    /// Bytes of memories and tables all instances sharing this budget may have together
    /// (an HTTP server's concurrent requests, a pod's containers).
    pub total_memory: Option<Arc<MemoryBudget>>,
    /// Wall-clock time for a command, or for one HTTP request.
    pub timeout: Option<Duration>,
    /// Fuel units (needs an engine built with `fuel`).
    pub fuel: Option<u64>,
    /// A share of one core (a pod's `limits.cpu`: `0.5` is 500m). Below 1, the guest's
    /// wasm runs in a duty cycle: after each epoch tick of running it sleeps long enough
    /// to keep this share. A guest runs on one thread, so 1 or more changes nothing.
    pub cpu: Option<f64>,
}

/// Memory shared by several instances.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes in use now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes a table element is charged: a pointer (funcref and externref slots are one word
/// in wasmtime's tables).
pub const TABLE_ELEMENT_BYTES: u64 = 8;

/// Elements one table may have whatever the memory limit (wasmtime's own ceiling is far
/// higher).
pub const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

/// Core instances one store (one command, one HTTP request) may create. A component is
/// several core instances (its modules, adapters and shims): tens for a big one.
pub const MAX_INSTANCES: usize = 1000;

/// Linear memories one store may create (all of them count against the memory limit
/// too; this bounds the per-memory bookkeeping and address-space reservations).
pub const MAX_MEMORIES: usize = 100;

/// Tables one store may create (their elements count against the memory limit too).
pub const MAX_TABLES: usize = 1000;

/// Host resources (WASI streams, pollables, descriptors, HTTP fields and bodies) one
/// guest may hold at once: like `ulimit -n 1024`. They live on the host's heap, outside
/// the guest's linear memory.
pub const MAX_HOST_RESOURCES: usize = 1024;

/// Bytes of header names and values one `wasi:http` `fields` the guest builds may hold
/// (wasmtime's default is 128 KiB; a reverse proxy such as nginx takes 8 KiB of response
/// headers by default). With [`MAX_HOST_RESOURCES`], a guest's host-side headers stay
/// under 32 MiB.
pub const MAX_FIELDS_BYTES: usize = 32 << 10;

/// The `ResourceLimiter` of one store: every linear memory and every table of the store
/// count against the per-instance limit and the shared budget together.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory: Option<u64>,
    budget: Option<Arc<MemoryBudget>>,
    /// Bytes of memories and tables the store holds.
    used: u64,
    /// What of `used` is reserved in `budget`.
    reserved: u64,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Limiter {
            memory: limits.memory,
            budget: limits.total_memory.clone(),
            used: 0,
            reserved: 0,
        }
    }

    /// Takes `more` bytes, or says which limit they would pass.
    fn charge(&mut self, more: u64) -> Result<(), MemoryLimitExceeded> {
        let requested = self.used.saturating_add(more);
        if let Some(limit) = self.memory
            && requested > limit
        {
            return Err(MemoryLimitExceeded {
                limit,
                requested,
                shared: false,
            });
        }
        if let Some(budget) = &self.budget {
            if !budget.reserve(more) {
                return Err(MemoryLimitExceeded {
                    limit: budget.limit,
                    requested: budget.used().saturating_add(more),
                    shared: true,
                });
            }
            self.reserved += more;
        }
        self.used = requested;
        Ok(())
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.reserved);
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let more = (desired as u64).saturating_sub(current as u64);
        self.charge(more)?;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        let more = (desired as u64).saturating_sub(current as u64) * TABLE_ELEMENT_BYTES;
        self.charge(more)?;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// Sets a store's epoch deadline: yield to the executor every tick (so one guest never
/// starves others) and stop with [`TimeLimitExceeded`] once `timeout` has passed.
pub(crate) fn set_deadline<T: Send>(
    store: &mut wasmtime::Store<T>,
    timeout: Option<Duration>,
    cpu: Option<f64>,
    stop: Option<StopHandle>,
) {
    let started = Instant::now();
    let mut resumed = started;
    let throttle = cpu.filter(|share| *share > 0.0 && *share < 1.0);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if let Some(signal) = stop.as_ref().and_then(|s| s.stopped()) {
            return Err(Killed(signal).into());
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            return Err(TimeLimitExceeded(limit).into());
        }
        let Some(share) = throttle else {
            return Ok(UpdateDeadline::Yield(1));
        };
        // The guest ran (at most) since it last resumed; time spent waiting in host calls
        // counts too, so it is capped at two ticks rather than charged in full.
        let ran = resumed.elapsed().min(2 * crate::engine::EPOCH_TICK);
        let pause = ran.mul_f64((1.0 - share) / share);
        resumed = Instant::now() + pause;
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::time::sleep(pause)),
        ))
    });
}
