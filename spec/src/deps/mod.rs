//! Component dependencies, pure: version requirements as the solver's ranges, the solver
//! over an index of published versions, tags read as versions. Fetching and the lock's
//! file live in the CLI.

pub mod requirement;
pub mod solve;
pub mod tags;
