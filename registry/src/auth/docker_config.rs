//! Saving and removing a login the way `docker login`/`docker logout` do: through the
//! credential helper `config.json` names for the registry (`credHelpers`, else
//! `credsStore`), which keeps the secret, with only an empty `auths.<registry>` entry in
//! `config.json`; without one, `auths.<registry>.auth` (base64 of `user:password`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use super::Secret;

/// A `config.json` that cannot be read or written, or a helper that failed.
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
    /// The credential helper `config.json` names failed.
    #[error("failed to {action} the credentials for `{registry}` with `{helper}` (named in `{}`): {reason}", config.display())]
    Helper {
        /// `store` or `erase`.
        action: &'static str,
        /// The registry.
        registry: String,
        /// The helper program (`docker-credential-<name>`).
        helper: String,
        /// The `config.json` that names it.
        config: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Where a login was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// docker's `config.json`.
    pub config: PathBuf,
    /// The credential helper that keeps the secret (`docker-credential-<name>`), when
    /// `config.json` names one; else the secret is in `config.json`.
    pub helper: Option<String>,
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
    let config = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ConfigError::Json {
            path: path.to_owned(),
            reason: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(source) => {
            return Err(ConfigError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    Ok(if config.is_object() {
        config
    } else {
        serde_json::json!({})
    })
}

/// Replaces `config.json` whole (the temporary file is private from the start: it
/// holds secrets).
fn write(path: &Path, value: &serde_json::Value) -> Result<(), ConfigError> {
    let io = |action, source| ConfigError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    let mut text = serde_json::to_vec_pretty(value).expect("JSON serializes");
    text.push(b'\n');
    wasmoci_fs::write_atomic(path, &text, 0o600).map_err(|e| io("write", e))
}

/// The helper `config` names for the registry of `key` (an `auths` key): its
/// `credHelpers` entry, which docker keys by host name (`index.docker.io` for
/// `https://index.docker.io/v1/`), else its `credsStore`; `None` when it names none. The
/// one rule for reading, saving and erasing.
pub(crate) fn helper_name(config: &serde_json::Value, key: &str) -> Option<String> {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or(key);
    [&config["credHelpers"][host], &config["credHelpers"][key]]
        .into_iter()
        .find_map(|v| v.as_str().filter(|name| !name.is_empty()))
        .or(config["credsStore"]
            .as_str()
            .filter(|name| !name.is_empty()))
        .map(|name| format!("docker-credential-{name}"))
}

/// `config.auths`, made an object if it is not one.
fn auths(config: &mut serde_json::Value) -> &mut serde_json::Map<String, serde_json::Value> {
    let auths = config
        .as_object_mut()
        .expect("an object")
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    auths.as_object_mut().expect("an object")
}

/// Runs `helper action` with `input` on stdin; what it said when it fails.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<(), String> {
    let mut child = Command::new(helper)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("it could not be run (is it on `PATH`?): {e}"))?;
    // A helper that exits without reading its input closes the pipe: its status says more.
    let _ = child.stdin.take().expect("piped").write_all(input);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("it could not be run: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = [out.stderr, out.stdout]
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
        .find(|text| !text.is_empty())
        .unwrap_or_else(|| "no output".into());
    let status = out
        .status
        .code()
        .map_or_else(|| out.status.to_string(), |code| format!("status {code}"));
    Err(format!(
        "it exited with {status}: {}",
        super::first_line(&said)
    ))
}

/// Saves a login the way `docker login` does: with the credential helper `config.json`
/// names for `registry` (`store`, reading `{"ServerURL", "Username", "Secret"}`),
/// leaving an empty `auths.<registry>` entry; without one, as
/// `auths.<registry>.auth = base64(user:password)`. Other entries are kept.
pub fn save(registry: &str, username: &str, password: &Secret) -> Result<Saved, ConfigError> {
    let path = path()?;
    let mut config = read(&path)?;
    let key = key_for(registry);
    let helper = helper_name(&config, &key);
    let entry = match &helper {
        Some(helper) => {
            let input = serde_json::json!({
                "ServerURL": key,
                "Username": username,
                "Secret": password.expose(),
            });
            run_helper(helper, "store", input.to_string().as_bytes()).map_err(|reason| {
                ConfigError::Helper {
                    action: "store",
                    registry: registry.to_owned(),
                    helper: helper.clone(),
                    config: path.clone(),
                    reason,
                }
            })?;
            serde_json::json!({})
        }
        None => {
            let auth = base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose()));
            serde_json::json!({ "auth": auth })
        }
    };
    auths(&mut config).insert(key, entry);
    write(&path, &config)?;
    Ok(Saved {
        config: path,
        helper,
    })
}

/// Removes a saved login: `erase` with the credential helper `config.json` names (the
/// server URL on stdin), and the `auths.<registry>` entry. `false` when there was none.
pub fn remove(registry: &str) -> Result<bool, ConfigError> {
    let path = path()?;
    let mut config = read(&path)?;
    let key = key_for(registry);
    let mut removed = false;
    if let Some(helper) = helper_name(&config, &key) {
        match run_helper(&helper, "erase", key.as_bytes()) {
            Ok(()) => removed = true,
            // What every docker helper answers for a registry it holds nothing for.
            Err(reason) if reason.contains("credentials not found") => {}
            Err(reason) => {
                return Err(ConfigError::Helper {
                    action: "erase",
                    registry: registry.to_owned(),
                    helper,
                    config: path,
                    reason,
                });
            }
        }
    }
    if auths(&mut config).remove(&key).is_some() {
        removed = true;
        write(&path, &config)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::helper_name;

    #[test]
    fn one_rule_names_the_helper() {
        let config = serde_json::json!({
            "credsStore": "desktop",
            "credHelpers": { "index.docker.io": "hub", "ghcr.io": "", "r.example:5000": "r" },
        });
        let helper = |key| helper_name(&config, key);
        assert_eq!(
            helper("https://index.docker.io/v1/").as_deref(),
            Some("docker-credential-hub")
        );
        assert_eq!(
            helper("r.example:5000").as_deref(),
            Some("docker-credential-r")
        );
        // An empty entry is no entry: the store applies, as when reading.
        assert_eq!(
            helper("ghcr.io").as_deref(),
            Some("docker-credential-desktop")
        );
        assert_eq!(helper_name(&serde_json::json!({}), "ghcr.io"), None);
    }
}
