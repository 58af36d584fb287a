//! The work behind the `wasmoci` commands, as library modules the binary stays thin over:
//! the project file, turning a module into a component with its metadata, naming
//! artifacts, import policies and the embedded store.

pub mod build;
pub mod env;
pub mod node;
pub mod ops;
pub mod policy;
pub mod project;
pub mod reference;
/// Durations and sizes as people write them (shared with the shim's annotations).
pub use wasmoci_runtime::units;
