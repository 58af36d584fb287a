//! The wasmoci engine: runs WebAssembly components and wasip1 modules with wasmtime 48,
//! inside limits the caller sets.
//!
//! - [`engine::build_engine`] is the **one** place a `wasmtime::Config` is made (Cranelift,
//!   component model, pooling allocator when the host allows it, epoch interruption): every
//!   path, precompilation included, goes through it, so compiled artifacts and behaviour
//!   never diverge.
//! - [`cache::CompileCache`] keeps compiled artifacts keyed by (content digest, engine
//!   compatibility hash), written atomically and read-only, tagged with an HMAC of the
//!   entry file's identity; a hit ([`cache::CompileCache::lookup`], by digest alone) is an
//!   `fstat` and a map (`deserialize_file`); a written-into, truncated or mismatched entry
//!   is recompiled.
//! - [`program::Program::target`] decides once what a program runs as (a command, a core
//!   module's `#func`, or an HTTP handler), for `wasmoci run`, `wasmoci serve` and the shim.
//! - [`run::Guest::run`] runs `wasi:cli/run` components and wasip1 `_start` modules;
//!   [`serve::serve`] serves `wasi:http/incoming-handler` components over HTTP/1.1, one
//!   instance per request.
//! - [`sandbox::Sandbox`] is everything the guest may touch: arguments, environment,
//!   directories, network. Nothing is granted by default. [`limits::Limits`] bounds memory and
//!   time; each stop is reported as its own [`exit::Exit`] variant.
//!
//! Modules form no cycle: `run` and `serve` sit on `host` (store data, stdio, linkers),
//! which sits on `limits`, which sits on `exit` (how a guest stops); a test checks it.

pub mod cache;
pub mod containerd;
pub mod engine;
mod error;
pub mod exit;
pub mod host;
pub mod limits;
pub mod program;
pub mod run;
pub mod sandbox;
pub mod serve;
mod special;
pub use wasmoci_spec::units;

pub use error::{Error, Result};
