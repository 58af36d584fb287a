//! Progress bars for blob transfers: on a terminal only, never with `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use wasmoci_registry::client::Progress;
use wasmoci_spec::Digest;

/// One bar per blob, on stderr.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, digest: &Digest, size: u64, what: &'static str) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(format!("{what} {}", &digest.hex()[..12]));
        self.bars.lock().expect("not poisoned").insert(*digest, bar);
    }

    fn advance(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = self.bars.lock().expect("not poisoned").get(digest) {
            bar.inc(bytes);
        }
    }

    fn finish(&self, digest: &Digest) {
        if let Some(bar) = self.bars.lock().expect("not poisoned").remove(digest) {
            bar.finish_and_clear();
        }
    }
}

/// Bars when stderr is a terminal and `--quiet` is off; otherwise nothing.
pub(crate) fn bars() -> Option<Arc<dyn Progress>> {
    if crate::output::quiet() || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(Arc::new(Bars {
        multi: MultiProgress::new(),
        bars: Mutex::new(HashMap::new()),
    }))
}
