//! Where wasmoci keeps its files, and how it writes them.
//!
//! - [`Home`]: `$WASMOCI_HOME` and its sub-paths (the embedded store, the compile cache),
//!   for a user and for a node, read in one place.
//! - [`write_atomic`] and [`AtomicFile`]: a temporary file in the target's directory,
//!   fsync, rename. Readers see the old file or the new one, never a part; a failed or
//!   abandoned write leaves nothing behind.

mod atomic;
mod home;

pub use atomic::{AtomicFile, write_atomic};
pub use home::{Home, WASMOCI_HOME};
