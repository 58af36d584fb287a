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

/// Writes one line to the container's log (its stderr fifo): why a container did not
/// start, where `kubectl logs` shows it. The fifo is opened read-write (which never waits
/// for a reader), and the line is waited on (at most 5 s) until containerd has taken it:
/// containerd closes its end as soon as the task fails, and what it has not read is lost.
/// (containerd also stops reading when the last writer closes: the refused container's
/// worker keeps its stderr open until this is written.)
pub(crate) fn note(path: &str, line: &str) {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    if path.is_empty() {
        return;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path);
    let Ok(mut file) = file else {
        return;
    };
    if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
        log::warn!("failed to write to `{path}`: {e}");
        return;
    }
    let unread = || {
        let mut count: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int, the bytes a pipe holds, through the pointer.
        #[allow(unsafe_code, reason = "FIONREAD has no safe wrapper")]
        let result = unsafe { libc::ioctl(file.as_raw_fd(), libc::FIONREAD, &mut count) };
        result == 0 && count > 0
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while unread() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // What containerd read, it hands on to the log file on its own time, and drops if
    // it closes the log first (as it does as soon as a task fails): a moment for that.
    std::thread::sleep(std::time::Duration::from_millis(100));
}
