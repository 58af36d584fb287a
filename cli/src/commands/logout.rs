//! `wasmoci logout`: remove a registry's saved credentials.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use wasmoci_registry::auth::docker_config;

use super::login::probe;
use crate::output::{self, Report};

/// Log out of a registry: remove its credentials from where docker keeps them
#[derive(Debug, clap::Args)]
pub(crate) struct LogoutArgs {
    /// The registry host
    #[arg(value_name = "HOST")]
    host: String,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

/// A logout.
#[derive(Serialize)]
struct LoggedOut {
    host: String,
    removed: bool,
}

impl Report for LoggedOut {
    fn status(&self) -> Option<String> {
        Some(if self.removed {
            format!("logged out of `{}`", self.host)
        } else {
            format!("no saved login for `{}`", self.host)
        })
    }
}

pub(crate) fn run(args: LogoutArgs) -> Result<ExitCode> {
    let removed = docker_config::remove(&probe(&args.host)?.registry)?;
    let report = LoggedOut {
        host: args.host,
        removed,
    };
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}
