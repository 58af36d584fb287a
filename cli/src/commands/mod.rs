//! One module per subcommand: its clap `Args` and `run(args) -> Result<ExitCode>`, which
//! calls one operation of `wasmoci_cli::ops` and prints its report.

pub(crate) mod args;
pub(crate) mod attach;
pub(crate) mod build;
pub(crate) mod built;
pub(crate) mod compile;
pub(crate) mod completions;
pub(crate) mod compose;
pub(crate) mod convert;
pub(crate) mod copy;
pub(crate) mod dependency;
pub(crate) mod discover;
pub(crate) mod doctor;
pub(crate) mod gc;
pub(crate) mod guest;
pub(crate) mod inspect;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod ls;
pub(crate) mod manifest;
pub(crate) mod node;
pub(crate) mod node_policy;
pub(crate) mod publish;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod rm;
pub(crate) mod run;
pub(crate) mod semver_check;
pub(crate) mod serve;
pub(crate) mod sign;
pub(crate) mod store;
pub(crate) mod tag;
pub(crate) mod tags;
pub(crate) mod terminal;
pub(crate) mod validate;
