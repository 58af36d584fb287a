//! Credentials, the way docker users already have them.
//!
//! Looked up in order: what the caller passes (`--username`/`--password-stdin`),
//! `WASMOCI_REGISTRY_<HOST>_USERNAME`/`_PASSWORD` (the host upper-cased, other characters
//! `_`), `WASMOCI_REGISTRY_USERNAME`/`WASMOCI_REGISTRY_PASSWORD` (only for the registry a
//! command writes to or logs in to: never for a source, which may be anyone's), docker's `config.json`
//! (`$DOCKER_CONFIG` or `~/.docker`: `auths`, `identitytoken`, `credsStore`, `credHelpers`,
//! running the real `docker-credential-<name>` helper), then anonymous. When docker's
//! credentials are there but cannot be read (a `config.json` that does not parse, a
//! `$DOCKER_CONFIG` that is not a directory, a helper that fails), the lookup still goes
//! on anonymously, but says why: [`CredentialSource::Unreadable`].

use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable for the registry user name.
pub const USERNAME_ENV: &str = "WASMOCI_REGISTRY_USERNAME";
/// Environment variable for the registry password or token.
pub const PASSWORD_ENV: &str = "WASMOCI_REGISTRY_PASSWORD";

/// A secret string: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What to authenticate with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// No credentials.
    Anonymous,
    /// A user name and password (or token used as a password).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// A docker `identitytoken` (an OAuth2 refresh token for the token service).
    IdentityToken(Secret),
}

/// Where a credential came from, for error messages ("denied with credentials from …").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// None was found.
    Anonymous,
    /// Command-line flags.
    Flags,
    /// `WASMOCI_REGISTRY_USERNAME`/`WASMOCI_REGISTRY_PASSWORD`.
    Environment,
    /// docker's `config.json` (or a credential helper it names).
    DockerConfig,
    /// None: docker's credentials could not be read (so we went on anonymously).
    Unreadable(Box<CredentialError>),
}

/// Why docker's credentials for a registry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// docker's `config.json` cannot be read, does not parse, or holds an `auth` that does
    /// not decode.
    #[error("credentials for `{registry}` could not be read: `{}`: {reason}", path.display())]
    Config {
        /// The registry whose credentials we looked for.
        registry: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The credential helper `config.json` names failed.
    #[error("credentials for `{registry}` could not be read: `{helper}` (named in `{}`) {reason}", config.display())]
    Helper {
        /// The registry whose credentials we looked for.
        registry: String,
        /// The helper program (`docker-credential-<name>`).
        helper: String,
        /// The `config.json` that names it.
        config: PathBuf,
        /// What went wrong (`exited with an error: …`).
        reason: String,
    },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialSource::Anonymous => "no credentials (anonymous)",
            CredentialSource::Flags => "the command-line credentials",
            CredentialSource::Environment => {
                "the credentials in `WASMOCI_REGISTRY_USERNAME`/`WASMOCI_REGISTRY_PASSWORD`"
            }
            CredentialSource::DockerConfig => "the credentials in docker's `config.json`",
            CredentialSource::Unreadable(_) => "no credentials (anonymous)",
        })
    }
}

/// Finds the credential for `registry`, following the order in the module docs.
/// `explicit` is what the command line gave; `generic` whether the generic
/// `WASMOCI_REGISTRY_USERNAME`/`_PASSWORD` apply (`registry` is the one the command
/// writes to or logs in to).
pub fn credential_for(
    registry: &str,
    explicit: Option<(String, Secret)>,
    generic: bool,
) -> (Credential, CredentialSource) {
    if let Some((username, password)) = explicit {
        return (
            Credential::Basic { username, password },
            CredentialSource::Flags,
        );
    }
    let (user_var, password_var) = host_env(registry);
    let per_host = (std::env::var(user_var), std::env::var(password_var));
    if let (Ok(username), Ok(password)) = per_host {
        return (
            Credential::Basic {
                username,
                password: Secret::new(password),
            },
            CredentialSource::Environment,
        );
    }
    if let (true, Ok(username), Ok(password)) = (
        generic,
        std::env::var(USERNAME_ENV),
        std::env::var(PASSWORD_ENV),
    ) {
        return (
            Credential::Basic {
                username,
                password: Secret::new(password),
            },
            CredentialSource::Environment,
        );
    }
    match from_docker_config(registry) {
        Ok(Some(credential)) => (credential, CredentialSource::DockerConfig),
        Ok(None) => (Credential::Anonymous, CredentialSource::Anonymous),
        Err(e) => (
            Credential::Anonymous,
            CredentialSource::Unreadable(Box::new(e)),
        ),
    }
}

/// The per-host variables for `registry`: `WASMOCI_REGISTRY_<HOST>_USERNAME` and
/// `_PASSWORD`, the host upper-cased with everything but letters and digits as `_`
/// (`ghcr.io` → `GHCR_IO`).
pub fn host_env(registry: &str) -> (String, String) {
    let host: String = registry
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    (
        format!("WASMOCI_REGISTRY_{host}_USERNAME"),
        format!("WASMOCI_REGISTRY_{host}_PASSWORD"),
    )
}

/// Whether the generic `WASMOCI_REGISTRY_USERNAME`/`_PASSWORD` are both set.
pub fn generic_env_set() -> bool {
    std::env::var_os(USERNAME_ENV).is_some() && std::env::var_os(PASSWORD_ENV).is_some()
}

/// The credential docker's `config.json` holds for `registry` (itself or through the
/// helper it names); `None` when there is no `config.json` or it names none.
fn from_docker_config(registry: &str) -> Result<Option<Credential>, CredentialError> {
    // No `$DOCKER_CONFIG` and no home: there is nothing to read.
    match docker_config::path() {
        Ok(path) => read_docker_config(registry, &path),
        Err(_) => Ok(None),
    }
}

/// [`from_docker_config`] with the `config.json` at `path`.
fn read_docker_config(registry: &str, path: &Path) -> Result<Option<Credential>, CredentialError> {
    let broken = |reason: String| CredentialError::Config {
        registry: registry.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(broken(e.to_string())),
    };
    let config: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| broken(e.to_string()))?;
    // Docker Hub's credentials live under its v1 URL.
    let keys: Vec<&str> = if registry == crate::reference::DOCKER_HUB {
        vec![
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
        ]
    } else {
        vec![registry]
    };
    let mut failure = None;
    for key in keys {
        use docker_credential::{CredentialRetrievalError as E, DockerCredential};
        let helper = |reason: String| CredentialError::Helper {
            registry: registry.to_owned(),
            helper: docker_config::helper_name(&config, key).unwrap_or_default(),
            config: path.to_owned(),
            reason,
        };
        let error = match docker_credential::get_credential_from_reader(&bytes[..], key) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                return Ok(Some(Credential::Basic {
                    username,
                    password: Secret::new(password),
                }));
            }
            Ok(DockerCredential::IdentityToken(token)) => {
                return Ok(Some(Credential::IdentityToken(Secret::new(token))));
            }
            Err(E::NoCredentialConfigured | E::ConfigNotFound) => continue,
            Err(E::HelperFailure { stdout, stderr, .. }) => {
                let said = if stderr.trim().is_empty() {
                    stdout
                } else {
                    stderr
                };
                // What every docker helper answers for a registry it holds nothing for.
                if said.contains("credentials not found") {
                    continue;
                }
                helper(format!("exited with an error: {}", first_line(&said)))
            }
            Err(E::HelperCommunicationError) => {
                helper("could not be run (is it on `PATH`?)".into())
            }
            Err(E::MalformedHelperResponse) => {
                helper("answered something that is not JSON with `Username` and `Secret`".into())
            }
            Err(E::CredentialDecodingError) => broken(format!(
                "the `auth` of `{key}` is not the base64 of `user:password`"
            )),
            Err(E::CredentialMismatchError) => broken(format!(
                "the `auth` of `{key}` does not match its `username` and `password`"
            )),
            Err(E::ConfigReadError) => broken(
                "its `auths`, `credsStore` or `credHelpers` is not what docker writes".into(),
            ),
        };
        failure.get_or_insert(error);
    }
    failure.map_or(Ok(None), Err)
}

/// The first non-empty line of what a helper said, cut short (it goes into one message).
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output");
    match line.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let c = Credential::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    /// A `config.json` in a fresh directory.
    fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn no_config_json_is_no_credential_and_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let found = read_docker_config("r.example", &dir.path().join("config.json"));
        assert_eq!(found, Ok(None));
        let (_dir, path) = config(r#"{"auths":{"other.example":{"auth":"dTpw"}}}"#);
        assert_eq!(read_docker_config("r.example", &path), Ok(None));
    }

    #[test]
    fn a_config_json_that_cannot_be_read_names_the_file() {
        let (_dir, path) = config("{ not json");
        let err = read_docker_config("r.example", &path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("credentials for `r.example` could not be read: `")
                && text.contains(&format!("`{}`: key must be a string", path.display())),
            "{text}"
        );
        // `$DOCKER_CONFIG` naming a file, not a directory.
        let below_a_file = path.join("config.json");
        let err = read_docker_config("r.example", &below_a_file).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("`{}`: Not a directory", below_a_file.display())),
            "{err}"
        );
        let (_dir, path) = config(r#"{"auths":{"r.example":{"auth":"%%%"}}}"#);
        let err = read_docker_config("r.example", &path).unwrap_err();
        assert!(
            err.to_string()
                .contains("the `auth` of `r.example` is not the base64"),
            "{err}"
        );
    }

    #[test]
    fn a_helper_that_cannot_run_is_named() {
        let (_dir, path) =
            config(r#"{"credsStore":"desktop","credHelpers":{"r.example":"wasmoci-test-absent"}}"#);
        let err = read_docker_config("r.example", &path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "credentials for `r.example` could not be read: `docker-credential-wasmoci-test-absent` (named in `{}`) could not be run (is it on `PATH`?)",
                path.display()
            )
        );
    }

    #[test]
    fn found_credentials_are_read() {
        let (_dir, path) = config(r#"{"auths":{"r.example":{"auth":"dTpw"}}}"#);
        assert_eq!(
            read_docker_config("r.example", &path),
            Ok(Some(Credential::Basic {
                username: "u".into(),
                password: Secret::new("p"),
            }))
        );
    }
}

/// Writing docker's `config.json` for `login`/`logout`.
pub mod docker_config;
