//! Where Wasm OCI artifacts live outside a registry: an OCI image layout directory
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) that skopeo, oras and containerd can
//! read too. wasmoci's embedded store is one such layout.
//!
//! Every write is atomic: blobs are streamed to a temporary file in the layout while
//! being hashed, checked against their expected digest, and renamed into place;
//! `index.json` is replaced by rename under a lock. A write that fails midway removes
//! what it added and leaves the layout as it was. Every read checks the blob against
//! its digest.
//!
//! [`client`] talks to OCI registries: push and pull, streamed and digest-checked, with
//! the credentials docker users already have ([`auth`]).

pub mod auth;
pub mod client;
pub mod cosign;
mod error;
mod layout;
pub mod reference;
pub mod store;

pub use error::{Error, Result};
pub use layout::{
    ArtifactKind, Damage, Garbage, GcReport, Layout, LayoutRef, Listing, Removal, StoredArtifact,
    VerifyReport, name_of,
};
pub use reference::Reference;
