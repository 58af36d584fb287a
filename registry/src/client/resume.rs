//! A blob download that picks up where a broken connection left it: a new `GET` with
//! `Range: bytes=N-`, N the bytes already handed on (and so already hashed and written
//! downstream: the hash state is kept), taken only when the registry answers `206` from
//! N. A registry that answers anything else (a `200` with the whole blob) is asked again
//! from the start by the caller. Bounded by the client's retries.

use std::cell::Cell;
use std::io::{self, Read};

use super::Client;
use super::transport::{Method, header};
use crate::reference::Reference;

/// The body of one blob, resumed across broken connections.
pub(super) struct Resuming<'c> {
    pub(super) client: &'c Client,
    pub(super) src: &'c Reference,
    pub(super) url: &'c str,
    pub(super) body: ureq::BodyReader<'static>,
    /// Bytes handed on so far.
    pub(super) offset: u64,
    /// Resumptions left.
    pub(super) tries: u32,
    /// Set when the registry would not resume: the caller starts again from byte 0.
    pub(super) restart: &'c Cell<bool>,
    /// How many times it resumed.
    pub(super) resumed: &'c Cell<u32>,
}

impl Resuming<'_> {
    /// A new body from `offset`, or why not.
    fn reopen(&mut self) -> io::Result<()> {
        let range = format!("bytes={}-", self.offset);
        let response = self
            .client
            .transport
            .send_idempotent(self.src, "pull", Method::GET, self.url, &mut |req| {
                req.header("Range", &range).call()
            })
            .map_err(io::Error::other)?;
        let status = response.status().as_u16();
        let from = header(&response, "content-range").and_then(|r| {
            r.strip_prefix("bytes ")?
                .split('-')
                .next()?
                .parse::<u64>()
                .ok()
        });
        if status != 206 || from != Some(self.offset) {
            self.restart.set(true);
            return Err(io::Error::other(format!(
                "the registry would not resume at byte {} (it answered {status})",
                self.offset
            )));
        }
        self.body = response.into_body().into_reader();
        self.resumed.set(self.resumed.get() + 1);
        Ok(())
    }
}

impl Read for Resuming<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.body.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                // Broken off (reset, cut short, stalled): resumed where it stopped.
                Err(e) if self.tries > 0 => {
                    self.tries -= 1;
                    if let Err(why) = self.reopen() {
                        return Err(io::Error::other(format!("{e}; {why}")));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}
