//! A task's stdio: the fifos containerd names in the create request.

use std::sync::Arc;

use wasmoci_runtime::host::{Input, Output};

/// Opens the stdin fifo without waiting for its writer (a blocking open would wait until
/// containerd writes, which it may never do), then makes reads block again.
pub(crate) fn open_input(path: &str) -> Input {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::os::unix::fs::OpenOptionsExt;
    if path.is_empty() {
        return Input::Null;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path);
    match file {
        Ok(file) => {
            if let Err(e) = fcntl(&file, FcntlArg::F_SETFL(OFlag::empty())) {
                log::warn!("failed to make `{path}` blocking: {e}");
            }
            Input::File(file)
        }
        Err(e) => {
            log::warn!("failed to open `{path}`: {e}");
            Input::Null
        }
    }
}

/// Opens an output fifo (stdout or stderr); `Null` when none is named or it cannot be opened.
pub(crate) fn open_output(path: &str) -> Output {
    if path.is_empty() {
        return Output::Null;
    }
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => Output::File(Arc::new(file)),
        Err(e) => {
            log::warn!("failed to open `{path}`: {e}");
            Output::Null
        }
    }
}

/// Writes one line to the container's log (its stderr fifo), when something reads it: why
/// a container did not start, where `kubectl logs` shows it. Never waits for a reader.
pub(crate) fn note(path: &str, line: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.is_empty() {
        return;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path);
    if let Ok(mut file) = file
        && let Err(e) = file.write_all(format!("{line}\n").as_bytes())
    {
        log::warn!("failed to write to `{path}`: {e}");
    }
}
