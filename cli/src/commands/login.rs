//! `wasmoci login`: check credentials, then save them where docker does (the credential
//! helper `config.json` names, else `config.json` itself).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use wasmoci_registry::Reference;
use wasmoci_registry::auth::{Secret, docker_config};
use wasmoci_registry::client::{Client, ClientOptions};

use crate::output::{self, Report};

/// Log in to a registry: check the credentials, then save them where docker keeps them
#[derive(Debug, clap::Args)]
#[command(
    after_help = concat!("Examples:\n  echo \"$TOKEN\" | wasmoci login ghcr.io -u me --password-stdin", super::args::registry_exit_status!())
)]
pub(crate) struct LoginArgs {
    /// The registry host, e.g. `ghcr.io` or `localhost:5000`
    #[arg(value_name = "HOST")]
    host: String,
    /// User name
    #[arg(short, long, value_name = "USER")]
    username: String,
    /// Read the password (or token) from stdin
    #[arg(long, required = true)]
    password_stdin: bool,
    /// Talk plain HTTP to the registry (loopback registries use it anyway)
    #[arg(long)]
    plain_http: bool,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

/// A login.
#[derive(Serialize)]
struct LoggedIn {
    host: String,
    config: PathBuf,
    /// The credential helper that keeps the secret (`docker-credential-<name>`), when
    /// `config.json` names one; else the secret is in `config`.
    helper: Option<String>,
    /// Whether the registry checked the credentials (it asks for none: unchecked).
    checked: bool,
}

impl Report for LoggedIn {
    fn status(&self) -> Option<String> {
        Some(match &self.helper {
            Some(helper) => format!(
                "logged in to `{}`; credentials saved with `{helper}` (named in `{}`)",
                self.host,
                self.config.display()
            ),
            None => format!(
                "logged in to `{}`; credentials saved in `{}`",
                self.host,
                self.config.display()
            ),
        })
    }
}

/// The reference login and logout use to name a registry host.
pub(crate) fn probe(host: &str) -> Result<Reference> {
    format!("{host}/library/x")
        .parse()
        .with_context(|| format!("invalid registry host `{host}`"))
}

pub(crate) fn run(args: LoginArgs) -> Result<ExitCode> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("failed to read the password from stdin")?;
    let password = Secret::new(password.trim_end_matches(['\n', '\r']));
    let probe = probe(&args.host)?;
    let client = Client::new(ClientOptions {
        plain_http: args.plain_http,
        credential: Some((args.username.clone(), password.clone())),
        env_credentials_for: Some(probe.registry.clone()),
        ..ClientOptions::default()
    })?;
    let checked = client
        .check_login(&probe)
        .with_context(|| format!("failed to log in to `{}`", args.host))?;
    if !checked {
        output::note(&format!(
            "`{}` asks for no credentials: they are saved unchecked",
            args.host
        ));
    }
    let saved = docker_config::save(&probe.registry, &args.username, &password)
        .with_context(|| format!("failed to save the login to `{}`", args.host))?;
    let report = LoggedIn {
        host: args.host,
        config: saved.config,
        helper: saved.helper,
        checked,
    };
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}
