//! Asking a person for a secret on the terminal, without echoing it.

use std::io::{BufRead, Write};
use std::os::fd::AsFd;

use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

/// Prints `prompt` on stderr and reads one line from the terminal with echo off; echo is
/// restored whatever happens.
pub(crate) fn read_secret(prompt: &str) -> std::io::Result<Vec<u8>> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = tcgetattr(tty.as_fd()).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    let mut err = std::io::stderr().lock();
    err.write_all(prompt.as_bytes())?;
    err.flush()?;
    tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &quiet).map_err(std::io::Error::from)?;
    let mut line = Vec::new();
    let read = std::io::BufReader::new(&tty).read_until(b'\n', &mut line);
    let restored = tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &saved);
    read?;
    restored.map_err(std::io::Error::from)?;
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(line)
}
