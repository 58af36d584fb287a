//! `containerd-shim-wasmoci-v1`: the task service containerd talks to (task API v2 over
//! ttrpc, from the `containerd-shim` 0.11 crate, which containerd 1.6, 1.7 and 2.x speak),
//! thin over the wasmoci engine (`wasmoci-runtime`). One shim process per pod.
//!
//! - The pod sandbox (the pause container) runs nothing: a holder thread keeps the pod's
//!   network namespace, and its thread id is the sandbox's pid ([`netns`]).
//! - A container's wasm comes from a direct pull (`wasmoci.dev/image`), containerd's
//!   content store, or the file `process.args[0]` (`path[#func]`) in its root filesystem
//!   ([`content`]). Commands (`wasi:cli/run`, `_start`, `#func`) run to their exit status;
//!   `wasi:http/incoming-handler` components serve inside the pod's network namespace.
//! - Guest stdout/stderr go to the fifos of the create request (and why a guest was
//!   stopped, as a last line on stderr); the exit status goes to `Wait`; `Kill` stops the
//!   guest (SIGTERM drains an HTTP server).

pub mod bundle;
pub mod confine;
mod content;
mod error;
mod mounts;
mod netns;
mod node_policy;
pub mod plan;
mod pull_policy;
mod service;
mod stdio;
mod task;
mod timing;
mod worker;

pub use service::main;
