//! Component dependencies (Helm's and cargo's model): `[dependencies]` by semver range,
//! resolved by `wasmoci_spec::deps::solve` over what registries publish.
//!
//! - [`manifest`]: the `[dependencies]` and `[registries]` entries of `wasmoci.toml`.
//! - [`lock`]: `wasmoci.lock`, and the inputs hash that shows drift.

pub mod build;
mod error;
mod index;
pub mod list;
pub mod lock;
pub mod manifest;
pub mod resolve;
pub mod tree;
