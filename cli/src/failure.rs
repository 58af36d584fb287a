//! How a command that failed ends, the same in every command: its exit status comes from
//! what is in the error's chain, and the error is shown on stderr and, when the command
//! was asked for `--json`, as one JSON object on stdout.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use wasmoci_registry::client::{RegistryError, SignatureError};

use crate::output;

/// What went wrong, as scripts tell it apart: the exit status of each class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Class {
    /// 1: the artifact was checked and has problems (validation, policy, no valid
    /// signature).
    Invalid,
    /// 2: a usage error, or something failed here (I/O, a missing file or tag).
    Failed,
    /// 3: the build failed (`publish`).
    Build,
    /// 4: the registry refused us: unauthorized, denied, not found.
    Refused,
    /// 5: the transfer failed: unreachable, TLS, a digest mismatch, rate-limited, another
    /// registry error.
    Transfer,
}

impl Class {
    /// The class of `error`: the first registry error or build failure in its chain.
    pub(crate) fn of(error: &anyhow::Error) -> Class {
        if error.downcast_ref::<Problems>().is_some() {
            return Class::Invalid;
        }
        if error.downcast_ref::<BuildFailed>().is_some() {
            return Class::Build;
        }
        for cause in error.chain() {
            let registry = cause
                .downcast_ref::<RegistryError>()
                .or_else(|| cause.downcast_ref::<Box<RegistryError>>().map(|b| &**b));
            if let Some(registry) = registry {
                return Class::of_registry(registry);
            }
            let signature = cause
                .downcast_ref::<SignatureError>()
                .or_else(|| cause.downcast_ref::<Box<SignatureError>>().map(|b| &**b));
            if let Some(signature) = signature {
                return match signature {
                    SignatureError::Registry(registry) => Class::of_registry(registry),
                    // Checked, and not signed as asked: the artifact has a problem.
                    SignatureError::Unsigned { .. } | SignatureError::NoValidSignature { .. } => {
                        Class::Invalid
                    }
                    SignatureError::Contended { .. } => Class::Transfer,
                    _ => Class::Failed,
                };
            }
        }
        Class::Failed
    }

    fn of_registry(registry: &RegistryError) -> Class {
        match registry {
            RegistryError::Unauthorized { .. }
            | RegistryError::Denied { .. }
            | RegistryError::NotFound { .. } => Class::Refused,
            // Local: the layout, a file to upload, what the artifact is.
            RegistryError::Layout(_)
            | RegistryError::Read { .. }
            | RegistryError::Unsupported { .. } => Class::Failed,
            _ => Class::Transfer,
        }
    }

    /// The exit status.
    pub(crate) fn code(self) -> u8 {
        match self {
            Class::Invalid => 1,
            Class::Failed => 2,
            Class::Build => 3,
            Class::Refused => 4,
            Class::Transfer => 5,
        }
    }
}

/// The context of an error from building what `publish` was to push: exit status 3.
#[derive(Debug, thiserror::Error)]
#[error("failed to build `{}`", .0.display())]
pub(crate) struct BuildFailed(pub(crate) PathBuf);

/// A check found problems (exit status 1): a header, then one line per problem.
#[derive(Debug, thiserror::Error)]
#[error("{header}")]
pub(crate) struct Problems {
    /// What was refused, and why in a word.
    pub(crate) header: String,
    /// Each problem, as `[rule] what`.
    pub(crate) problems: Vec<String>,
}

/// The JSON form of a failure (`--json`): what people read on stderr, as data.
#[derive(Serialize)]
struct JsonError<'a> {
    error: JsonErrorBody<'a>,
}

#[derive(Serialize)]
struct JsonErrorBody<'a> {
    message: String,
    causes: Vec<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    problems: &'a [String],
    class: Class,
    exit_code: u8,
    command: &'a str,
}

/// Shows `error` (on stdout as JSON too with `json`) and gives the exit status of its class.
pub(crate) fn fail(command: &str, error: &anyhow::Error, json: bool) -> ExitCode {
    let class = Class::of(error);
    let problems = error
        .downcast_ref::<Problems>()
        .map_or(&[][..], |p| &p.problems);
    output::error(error);
    for problem in problems {
        // One line each, whatever the artifact put in it.
        output::problem(&format!(
            "  {}",
            wasmoci_spec::escape_controls(problem, false)
        ));
    }
    if json {
        let error = JsonError {
            error: JsonErrorBody {
                message: error.to_string(),
                causes: error.chain().skip(1).map(ToString::to_string).collect(),
                problems,
                class,
                exit_code: class.code(),
                command,
            },
        };
        // `run` and `serve` print JSON Lines (stdout is the guest's too).
        if matches!(command, "run" | "serve") {
            output::json_line(&error);
        } else {
            output::json(&error);
        }
    }
    ExitCode::from(class.code())
}

/// The subcommand `matches` ran (`node install`), and whether it was given `--json`.
pub(crate) fn invoked(matches: &clap::ArgMatches) -> (String, bool) {
    let mut names = Vec::new();
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        names.push(name);
        current = sub;
    }
    let json = current
        .try_get_one::<bool>("json")
        .ok()
        .flatten()
        .copied()
        .unwrap_or(false);
    (names.join(" "), json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(error: RegistryError) -> anyhow::Error {
        anyhow::Error::new(error).context("failed to push to `r.example/a:1`")
    }

    #[test]
    fn classes_come_from_the_chain() {
        let missing = RegistryError::NotFound {
            reference: "r.example/a:1".into(),
            what: "manifest unknown".into(),
        };
        assert_eq!(Class::of(&registry(missing)), Class::Refused);
        let unreachable = RegistryError::Unreachable {
            registry: "r.example".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(Class::of(&registry(unreachable)), Class::Transfer);
        // Behind a `Box<dyn Error>` source, as `ops` keeps causes of any kind.
        let read = wasmoci_cli::ops::Error::Read {
            name: "r.example/a:1".into(),
            source: Box::new(RegistryError::NotFound {
                reference: "r.example/a:1".into(),
                what: "manifest unknown".into(),
            }),
        };
        assert_eq!(
            Class::of(&anyhow::Error::new(read).context("outer")),
            Class::Refused
        );
        let build = anyhow::anyhow!("no such file").context(BuildFailed("app".into()));
        assert_eq!(Class::of(&build).code(), 3);
        assert_eq!(Class::of(&anyhow::anyhow!("plain")), Class::Failed);
    }
}
