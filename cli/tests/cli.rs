//! The one integration-test binary of the CLI crate (linking is slow; keep it one).
//!
//! - `cases`: every `testdata/cli/*.case` file: commands and their expected exit code,
//!   stdout and stderr side by side. `WASMOCI_BLESS=1` rewrites them.
//! - `compose`: Python components (componentize-py) composed with the WAT fixtures, run.
//! - `deps`: dependencies against a registry that counts requests (zero when warm).
//! - `graph`: dependencies over a generated 30 × 20 graph on a real registry; auth, HTTPS
//!   discovery.
//! - `build`: reproducibility, atomicity and interop with real tools (skopeo).
//! - `registry`: push and pull against a real registry (docker-registry), with skopeo.
//! - `pull`: pulling on demand (`run HOST/REPO:TAG`, `--pull`), and failed pulls.
//! - `store`: `ls`, `rm`, `gc` with a pull in flight and skopeo; shell completions.
//! - `serve`: `wasmoci serve` as a process, over real HTTP on loopback.
//! - `limits`: `--memory` against memories, tables and host resources, as peak RSS.
//! - `workspace`: the dependency rules of ARCHITECTURE.md.

#![allow(clippy::print_stderr, reason = "tests say what they skip")]

mod build;
mod cases;
mod compose;
mod deps;
mod doctor;
mod graph;
mod kills;
mod limits;
mod load;
mod policy;
mod pull;
mod referrers;
mod registry;
mod serve;
mod signatures;
mod store;
mod support;
mod workspace;
