//! Memory and time limits, and the errors that report hitting them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, UpdateDeadline};

use crate::exit::{Killed, MemoryLimitExceeded, StopHandle, TimeLimitExceeded};

/// What a guest may use. `None` means unlimited (up to the engine's maximum memory).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Bytes of linear memory one instance may have (each of its memories counted).
    pub memory: Option<u64>,
    /// Bytes of linear memory all instances sharing this budget may have together
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

/// The `ResourceLimiter` of one store.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory: Option<u64>,
    budget: Option<Arc<MemoryBudget>>,
    reserved: u64,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Limiter {
            memory: limits.memory,
            budget: limits.total_memory.clone(),
            reserved: 0,
        }
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
        let (current, desired) = (current as u64, desired as u64);
        if let Some(limit) = self.memory
            && desired > limit
        {
            return Err(MemoryLimitExceeded {
                limit,
                requested: desired,
                shared: false,
            }
            .into());
        }
        if let Some(budget) = &self.budget {
            let more = desired.saturating_sub(current);
            if !budget.reserve(more) {
                return Err(MemoryLimitExceeded {
                    limit: budget.limit,
                    requested: budget.used() + more,
                    shared: true,
                }
                .into());
            }
            self.reserved += more;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 10_000_000)
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
