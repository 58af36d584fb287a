//! Credentials, the way docker users already have them.
//!
//! Looked up in order: what the caller passes (`--username`/`--password-stdin`),
//! `WASMOCI_REGISTRY_USERNAME`/`WASMOCI_REGISTRY_PASSWORD`, docker's `config.json`
//! (`$DOCKER_CONFIG` or `~/.docker`: `auths`, `identitytoken`, `credsStore`, `credHelpers`,
//! running the real `docker-credential-<name>` helper), then anonymous.

use std::fmt;

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
        })
    }
}

/// Finds the credential for `registry`, following the order in the module docs.
/// `explicit` is what the command line gave.
pub fn credential_for(
    registry: &str,
    explicit: Option<(String, Secret)>,
) -> (Credential, CredentialSource) {
    if let Some((username, password)) = explicit {
        return (
            Credential::Basic { username, password },
            CredentialSource::Flags,
        );
    }
    if let (Ok(username), Ok(password)) = (std::env::var(USERNAME_ENV), std::env::var(PASSWORD_ENV))
    {
        return (
            Credential::Basic {
                username,
                password: Secret::new(password),
            },
            CredentialSource::Environment,
        );
    }
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
    for key in keys {
        match docker_credential::get_credential(key) {
            Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
                return (
                    Credential::Basic {
                        username,
                        password: Secret::new(password),
                    },
                    CredentialSource::DockerConfig,
                );
            }
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
                return (
                    Credential::IdentityToken(Secret::new(token)),
                    CredentialSource::DockerConfig,
                );
            }
            Err(_) => {}
        }
    }
    (Credential::Anonymous, CredentialSource::Anonymous)
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
}
