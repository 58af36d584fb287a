//! Setting a node up for wasmoci: the containerd runtime entry behind the `wasmoci`
//! RuntimeClass, patched into containerd's config idempotently.

use toml_edit::{Array, DocumentMut, Item, Table, value};

/// The names containerd knows wasmoci by, defined once for the shim and this.
pub use wasmoci_runtime::containerd::{RUNTIME_NAME, RUNTIME_TYPE, SHIM_BINARY};

/// A config that cannot be patched.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Not TOML.
    #[error("failed to parse the containerd config: {0}")]
    Parse(String),
    /// A config version we do not write.
    #[error(
        "containerd config `version = {0}` is not supported: use version 2 (containerd 1.6/1.7) or 3 (containerd 2.x); `containerd config migrate` converts older ones"
    )]
    Version(i64),
    /// A key that should be a table is something else.
    #[error("`{0}` in the containerd config is not a table")]
    NotATable(String),
}

/// The config before and after.
#[derive(Debug, Clone)]
pub struct Patched {
    /// The config version it has.
    pub version: i64,
    /// The text before.
    pub before: String,
    /// The text after.
    pub after: String,
}

impl Patched {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

fn table<'a>(parent: &'a mut Table, key: &str, path: &str) -> Result<&'a mut Table, NodeError> {
    let item = parent.entry(key).or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    item.as_table_mut()
        .ok_or_else(|| NodeError::NotATable(format!("{path}.{key}")))
}

fn strings(items: &[&str]) -> Array {
    items.iter().copied().collect()
}

/// Adds the `wasmoci` runtime (and keeps `runc` defined: defining any runtime drops
/// containerd's implicit one, and the CRI plugin then refuses to load). Existing
/// settings and comments are kept; a second run changes nothing.
pub fn patch_containerd_config(text: &str) -> Result<Patched, NodeError> {
    let mut doc: DocumentMut = if text.trim().is_empty() {
        "version = 2\n".parse().expect("valid TOML")
    } else {
        text.parse()
            .map_err(|e: toml_edit::TomlError| NodeError::Parse(e.to_string()))?
    };
    let version = doc.get("version").and_then(Item::as_integer).unwrap_or(1);
    let plugin = match version {
        2 => "io.containerd.grpc.v1.cri",
        3 => "io.containerd.cri.v1.runtime",
        other => return Err(NodeError::Version(other)),
    };
    let root = doc.as_table_mut();
    let plugins = table(root, "plugins", "")?;
    let cri = table(plugins, plugin, "plugins")?;
    let containerd = table(cri, "containerd", &format!("plugins.\"{plugin}\""))?;
    let default_runtime = containerd
        .get("default_runtime_name")
        .and_then(Item::as_str)
        .unwrap_or("runc")
        .to_owned();
    let path = format!("plugins.\"{plugin}\".containerd.runtimes");
    let runtimes = table(containerd, "runtimes", &path)?;
    if default_runtime == "runc" && !runtimes.contains_key("runc") {
        let runc = table(runtimes, "runc", &path)?;
        runc.set_implicit(false);
        runc.insert("runtime_type", value("io.containerd.runc.v2"));
    }
    let ours = table(runtimes, RUNTIME_NAME, &path)?;
    ours.set_implicit(false);
    let wanted: [(&str, Item); 3] = [
        ("runtime_type", value(RUNTIME_TYPE)),
        ("pod_annotations", value(strings(&["wasmoci.dev/*"]))),
        ("container_annotations", value(strings(&["wasmoci.dev/*"]))),
    ];
    for (key, item) in wanted {
        let same = ours.get(key).map(|i| i.to_string().trim().to_owned())
            == Some(item.to_string().trim().to_owned());
        if !same {
            ours.insert(key, item);
        }
    }
    if version == 3 && ours.get("sandboxer").and_then(Item::as_str) != Some("podsandbox") {
        ours.insert("sandboxer", value("podsandbox"));
    }
    Ok(Patched {
        version,
        before: text.to_owned(),
        after: doc.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_config_gets_runc_and_wasmoci() {
        let p = patch_containerd_config("").unwrap();
        assert!(p.changed());
        let doc: DocumentMut = p.after.parse().unwrap();
        let runtimes = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        assert_eq!(
            runtimes["runc"]["runtime_type"].as_str(),
            Some("io.containerd.runc.v2")
        );
        assert_eq!(
            runtimes[RUNTIME_NAME]["runtime_type"].as_str(),
            Some(RUNTIME_TYPE)
        );
        // Idempotent.
        let again = patch_containerd_config(&p.after).unwrap();
        assert!(!again.changed(), "{}", again.after);
    }

    #[test]
    fn existing_settings_and_comments_stay() {
        let text = r#"# node config
version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
"#;
        let p = patch_containerd_config(text).unwrap();
        assert!(
            p.after.starts_with("# node config\nversion = 2\n"),
            "{}",
            p.after
        );
        assert!(p.after.contains("SystemdCgroup = true"));
        assert!(
            p.after
                .contains("sandbox_image = \"registry.k8s.io/pause:3.9\"")
        );
        assert!(
            p.after
                .contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmoci]")
        );
        assert_eq!(p.after.matches("runtimes.runc]").count(), 1, "{}", p.after);
        assert!(!patch_containerd_config(&p.after).unwrap().changed());
    }

    #[test]
    fn containerd_2_and_old_versions() {
        let p = patch_containerd_config("version = 3\n").unwrap();
        assert!(
            p.after
                .contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.wasmoci]")
        );
        assert!(p.after.contains("sandboxer = \"podsandbox\""));
        assert!(!patch_containerd_config(&p.after).unwrap().changed());
        let err = patch_containerd_config("[plugins.cri]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`version = 1` is not supported"), "{err}");
    }
}
