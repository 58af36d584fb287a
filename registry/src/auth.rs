//! Credentials, the way docker users already have them.
//!
//! Looked up in order: what the caller passes (`--username`/`--password-stdin`),
//! `WASMOCI_REGISTRY_<HOST>_USERNAME`/`_PASSWORD` (the host upper-cased, other characters
//! `_`), `WASMOCI_REGISTRY_USERNAME`/`WASMOCI_REGISTRY_PASSWORD`, docker's `config.json`
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
    // The per-host form first: `WASMOCI_REGISTRY_<HOST>_USERNAME`, the host upper-cased
    // with everything but letters and digits as `_` (`ghcr.io` → `GHCR_IO`).
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
    let per_host = (
        std::env::var(format!("WASMOCI_REGISTRY_{host}_USERNAME")),
        std::env::var(format!("WASMOCI_REGISTRY_{host}_PASSWORD")),
    );
    if let (Ok(username), Ok(password)) = per_host {
        return (
            Credential::Basic {
                username,
                password: Secret::new(password),
            },
            CredentialSource::Environment,
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

/// Writing docker's `config.json` for `login`/`logout`.
pub mod docker_config {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use base64::Engine as _;

    use super::Secret;

    /// A `config.json` that cannot be read or written.
    #[derive(Debug, thiserror::Error)]
    pub enum ConfigError {
        /// No home directory and no `DOCKER_CONFIG`.
        #[error("failed to find docker's `config.json`: set `DOCKER_CONFIG`")]
        NoHome,
        /// Reading or writing failed.
        #[error("failed to {action} `{}`", path.display())]
        Io {
            /// What we were doing.
            action: &'static str,
            /// The file.
            path: PathBuf,
            /// Why.
            #[source]
            source: std::io::Error,
        },
        /// Not JSON.
        #[error("failed to parse `{}`: {reason}", path.display())]
        Json {
            /// The file.
            path: PathBuf,
            /// Why.
            reason: String,
        },
    }

    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn path() -> Result<PathBuf, ConfigError> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Ok(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
            .ok_or(ConfigError::NoHome)
    }

    /// The `auths` key docker uses for a registry (Docker Hub's is its v1 URL).
    pub fn key_for(registry: &str) -> String {
        if registry == crate::reference::DOCKER_HUB || registry == "docker.io" {
            "https://index.docker.io/v1/".into()
        } else {
            registry.into()
        }
    }

    fn read(path: &Path) -> Result<serde_json::Value, ConfigError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ConfigError::Json {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
            Err(source) => Err(ConfigError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn write(path: &Path, value: &serde_json::Value) -> Result<(), ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |action, source| ConfigError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        let mut temp =
            tempfile::NamedTempFile::with_prefix_in(".tmp-", dir).map_err(|e| io("write", e))?;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("write", e))?;
        let mut text = serde_json::to_vec_pretty(value).expect("JSON serializes");
        text.push(b'\n');
        temp.write_all(&text).map_err(|e| io("write", e))?;
        temp.persist(path).map_err(|e| io("write", e.error))?;
        Ok(())
    }

    /// Saves a login the way `docker login` does without a credential store:
    /// `auths.<registry>.auth = base64(user:password)`. Other entries are kept.
    pub fn save(registry: &str, username: &str, password: &Secret) -> Result<PathBuf, ConfigError> {
        let path = path()?;
        let mut config = read(&path)?;
        if !config.is_object() {
            config = serde_json::json!({});
        }
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()));
        let auths = config
            .as_object_mut()
            .expect("an object")
            .entry("auths")
            .or_insert_with(|| serde_json::json!({}));
        if !auths.is_object() {
            *auths = serde_json::json!({});
        }
        auths
            .as_object_mut()
            .expect("an object")
            .insert(key_for(registry), serde_json::json!({ "auth": auth }));
        write(&path, &config)?;
        Ok(path)
    }

    /// Removes a saved login; `false` when there was none.
    pub fn remove(registry: &str) -> Result<bool, ConfigError> {
        let path = path()?;
        let mut config = read(&path)?;
        let removed = config
            .get_mut("auths")
            .and_then(|a| a.as_object_mut())
            .and_then(|a| a.remove(&key_for(registry)))
            .is_some();
        if removed {
            write(&path, &config)?;
        }
        Ok(removed)
    }
}
