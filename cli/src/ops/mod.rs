//! The work behind the commands, as library code: no printing, typed errors, reports the
//! commands render.

pub mod store;
