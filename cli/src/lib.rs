//! The work behind the `wasmoci` commands, as a library the binary stays thin over:
//! [`ops`] does the work (load, build, check, convert, copy), over the project file
//! ([`project`]), how artifacts are named ([`reference`]), import policies ([`policy`]),
//! the node set-up ([`node`]) and the environment ([`env`]). Nothing here prints.

pub mod env;
pub mod node;
pub mod ops;
pub use wasmoci_spec::policy;
pub mod project;
pub mod reference;
/// Durations and sizes as people write them (shared with the shim's annotations).
pub use wasmoci_runtime::units;
