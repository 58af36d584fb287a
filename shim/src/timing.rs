//! Where a start's time goes, at debug level (`RUST_LOG=debug` in containerd's
//! environment): `timing `ID` PHASE at=SECONDS` lines, wall-clock seconds since the epoch,
//! so that one start can be laid out across the client, containerd, the shim and the
//! worker (`benches/cold_start.sh --breakdown` reads them from containerd's log).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::shown;

/// Logs that task `id` reached `phase` now, when debug logging is on.
pub(crate) fn mark(id: &str, phase: &str) {
    if log::log_enabled!(log::Level::Debug) {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        log::debug!(
            "timing `{}` {phase} at={}.{:06}",
            shown(id),
            at.as_secs(),
            at.subsec_micros()
        );
    }
}
