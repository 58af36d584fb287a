//! Component dependencies (Helm's and cargo's model): `[dependencies]` by semver range,
//! resolved by `wasmoci_spec::deps::solve` over what registries publish.
//!
//! - [`manifest`]: the `[dependencies]` and `[registries]` entries of `wasmoci.toml`.
//! - [`lock`]: `wasmoci.lock`, and the inputs hash that shows drift.
//! - [`resolve`]: `dependency update` over the registry index (`index`), and the
//!   `dev.wasmoci.dependencies` annotation `build` writes.
//! - [`build`]: fetching what the lock pins (`dependency build`, `--offline`, `vendor`).
//! - [`list`], [`tree`]: what is locked, and how it compares with the registries.

pub mod build;
mod discover;
mod error;
mod index;
pub mod list;
pub mod lock;
pub mod manifest;
pub mod resolve;
pub mod tree;
