//! The shim ends itself when nobody else will. containerd ends a shim with Shutdown after
//! deleting its last task; when that never comes (containerd gave up on a busy shim,
//! crashed, or was removed with its state) the shim would live on with nothing to do,
//! unseen and holding its pod's namespaces. Once a second it looks:
//!
//! - SIGTERM while no task runs: exit (`containerd-shim` 0.11 only logs SIGTERM);
//!   while tasks run it is refused, since only containerd can collect their exits;
//! - no task at all for [`EMPTY_GRACE`]: exit (a Shutdown was lost);
//! - every task stopped and containerd unreachable for [`GRACE`]: exit;
//! - every task's bundle deleted for [`GRACE`] (containerd forgot the pod): end the
//!   tasks, remove their cgroups, exit.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Service;
use crate::task::{Status, Task};

const TICK: Duration = Duration::from_secs(1);
/// How long containerd may be unreachable (a restart takes about a second) or the
/// bundles gone before the shim ends.
pub(crate) const GRACE: Duration = Duration::from_secs(5);
/// How long the shim may hold no task (containerd creates one within milliseconds of
/// starting it, and sends Shutdown after deleting the last).
pub(crate) const EMPTY_GRACE: Duration = Duration::from_secs(10);

/// Starts watching `service` (in the serving shim only).
pub(super) fn spawn(service: Service) {
    let term = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&term)) {
        log::warn!("failed to watch for SIGTERM: {e}");
    }
    let started = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || watch(&service, &term));
    if let Err(e) = started {
        log::warn!("failed to start the watchdog: {e}");
    }
}

/// Since when a condition has held (`None`: it does not hold now).
fn since(was: Option<Instant>, holds: bool, now: Instant) -> Option<Instant> {
    holds.then(|| was.unwrap_or(now))
}

fn held_for(since: Option<Instant>, now: Instant) -> Duration {
    since.map_or(Duration::ZERO, |s| now.duration_since(s))
}

fn containerd_reachable(address: &str) -> bool {
    let path = address.trim_start_matches("unix://");
    path.is_empty() || std::os::unix::net::UnixStream::connect(path).is_ok()
}

fn watch(service: &Service, term: &AtomicBool) {
    let (mut empty, mut unreachable, mut forgotten) = (None, None, None);
    let why = loop {
        std::thread::sleep(TICK);
        let now = Instant::now();
        let tasks: Vec<Arc<Task>> = service
            .tasks
            .lock()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
        let running = tasks
            .iter()
            .filter(|t| !matches!(t.status(), Status::Stopped { .. }))
            .count();
        if term.swap(false, Ordering::SeqCst) {
            if running == 0 {
                break "SIGTERM, and no task runs";
            }
            log::warn!("ignoring SIGTERM: {running} task(s) still run, which containerd ends");
        }
        empty = since(empty, tasks.is_empty(), now);
        unreachable = since(
            unreachable,
            running == 0 && !containerd_reachable(&service.address),
            now,
        );
        forgotten = since(
            forgotten,
            !tasks.is_empty() && tasks.iter().all(|t| !Path::new(&t.bundle).exists()),
            now,
        );
        if tasks.is_empty() && service.shutdown_asked.load(Ordering::SeqCst) {
            break "containerd asked for Shutdown and the last task is deleted";
        }
        if held_for(empty, now) >= EMPTY_GRACE {
            break "no task to serve";
        }
        if held_for(unreachable, now) >= GRACE {
            break "every task stopped and containerd is unreachable";
        }
        if held_for(forgotten, now) >= GRACE {
            end(&tasks);
            break "containerd deleted every task's bundle";
        }
    };
    log::info!("exiting: {why}");
    service.exit.signal();
}

/// Ends tasks containerd forgot: their guests killed, their holders dropped, their
/// cgroups removed.
fn end(tasks: &[Arc<Task>]) {
    for task in tasks {
        task.signal(libc::SIGKILL);
        task.holder.lock().expect("not poisoned").take();
    }
    for task in tasks {
        if let Some(cgroup) = &task.cgroup {
            crate::worker::remove_cgroup(cgroup, Duration::from_secs(2));
        }
    }
}
