//! The repository of a package whose project names neither `oci` nor a `[registries]`
//! entry, found as wkg finds it. Its registry, from wkg's config file: the package's
//! `package_registry_overrides` entry, else its namespace's `namespace_registries` entry,
//! else `default_registry`, else wkg's built-in `wasi` → `wasi.dev` and `ba` →
//! `bytecodealliance.org`. An entry is a domain, or a table naming one (`registry`) that
//! may carry the domain's metadata inline (`metadata`). Without inline metadata, the
//! domain's `/.well-known/wasm-pkg/registry.json` gives it (`{"oci": {"registry": R,
//! "namespacePrefix": P}}`, or the older `{"ociRegistry": R, "ociNamespacePrefix": P}`):
//! the package is at `R/P<ns>/<name>`. An error says what was tried.

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmoci_registry::Reference;
use wasmoci_registry::client::Client;

use super::error::DepsError;
use super::manifest::Dependency;

/// What wasmoci reads of wkg's `config.toml`.
#[derive(Debug, Default, Deserialize)]
struct WkgConfig {
    #[serde(default)]
    default_registry: Option<String>,
    #[serde(default)]
    namespace_registries: BTreeMap<String, toml::Value>,
    #[serde(default)]
    package_registry_overrides: BTreeMap<String, toml::Value>,
}

/// wkg's registries for namespaces its config does not map.
const BUILT_IN: [(&str, &str); 2] = [("wasi", "wasi.dev"), ("ba", "bytecodealliance.org")];

/// A registry's metadata (`registry.json`, or inline in wkg's config).
#[derive(Debug, Deserialize)]
struct Metadata {
    oci: Option<Oci>,
    #[serde(rename = "ociRegistry")]
    oci_registry: Option<String>,
    #[serde(default, rename = "ociNamespacePrefix")]
    oci_namespace_prefix: String,
}

#[derive(Debug, Deserialize)]
struct Oci {
    registry: String,
    #[serde(default, rename = "namespacePrefix")]
    namespace_prefix: String,
}

impl Metadata {
    /// The OCI registry and namespace prefix, in the current form or the older one.
    fn oci(self) -> Option<(String, String)> {
        match (self.oci, self.oci_registry) {
            (Some(oci), _) => Some((oci.registry, oci.namespace_prefix)),
            (None, Some(registry)) => Some((registry, self.oci_namespace_prefix)),
            (None, None) => None,
        }
    }
}

/// A config entry: its domain, and its inline metadata if any.
fn entry(value: &toml::Value) -> Option<(String, Option<toml::Value>)> {
    match value {
        toml::Value::String(domain) => Some((domain.clone(), None)),
        toml::Value::Table(table) => Some((
            table.get("registry")?.as_str()?.to_owned(),
            table.get("metadata").cloned(),
        )),
        _ => None,
    }
}

/// Finds `dep`'s repository through wkg's config and the domain's well-known file.
pub(super) fn discover(client: &Client, dep: &Dependency) -> Result<String, DepsError> {
    let (ns, name) = dep.package.split_once(':').unwrap_or((&dep.package, ""));
    let file = crate::env::wkg_config_file();
    let fail = |tried: String| DepsError::Discovery {
        package: dep.package.clone(),
        line: dep.line,
        tried,
    };
    let mut shown = file.as_ref().map_or_else(
        || "wkg's config (no home directory)".to_owned(),
        |f| format!("wkg's config `{}`", f.display()),
    );
    let config: WkgConfig = match file.as_ref().map(std::fs::read_to_string) {
        Some(Ok(text)) => toml::from_str(&text)
            .map_err(|e| fail(format!("{shown}, which does not parse: {e}")))?,
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            shown.push_str(" (not there)");
            WkgConfig::default()
        }
        Some(Err(e)) => return Err(fail(format!("{shown}, which cannot be read: {e}"))),
        None => WkgConfig::default(),
    };
    let built_in = BUILT_IN
        .iter()
        .find(|(namespace, _)| *namespace == ns)
        .map(|(_, domain)| ((*domain).to_owned(), None));
    let configured = config
        .package_registry_overrides
        .get(&dep.package)
        .map(|v| (format!("package_registry_overrides.\"{}\"", dep.package), v))
        .or_else(|| {
            config
                .namespace_registries
                .get(ns)
                .map(|v| (format!("namespace_registries.{ns}"), v))
        });
    let configured = match configured {
        Some((key, value)) => Some(entry(value).ok_or_else(|| {
            fail(format!(
                "{shown}: `{key}` is neither a domain nor a table with `registry`"
            ))
        })?),
        None => None,
    };
    let (domain, inline) = configured
        .or_else(|| config.default_registry.clone().map(|d| (d, None)))
        .or(built_in)
        .ok_or_else(|| {
            fail(format!(
                "{shown} (no `package_registry_overrides.\"{}\"`, no `namespace_registries.{ns}`, no `default_registry`)",
                dep.package
            ))
        })?;
    let (metadata, from): (Metadata, String) = match inline {
        Some(inline) => (
            inline.try_into().map_err(|e| {
                fail(format!(
                    "{shown}, whose metadata for `{domain}` is not wkg's: {e}"
                ))
            })?,
            format!("{shown}, inline metadata for `{domain}`"),
        ),
        None => {
            let at: Reference = format!("{domain}/wasm-pkg").parse().map_err(|e| {
                fail(format!(
                    "{shown}: the registry `{domain}` is not a host name ({e})"
                ))
            })?;
            let url = format!("{shown}, then `{domain}/.well-known/wasm-pkg/registry.json`");
            let bytes = client
                .well_known(&at)
                .map_err(|e| fail(format!("{url}: {e}")))?;
            let metadata = serde_json::from_slice(&bytes)
                .map_err(|e| fail(format!("{url}, which is not wkg's JSON: {e}")))?;
            (metadata, url)
        }
    };
    let (registry, prefix) = metadata
        .oci()
        .ok_or_else(|| fail(format!("{from}, which names no `oci` registry")))?;
    Ok(format!(
        "{}/{prefix}{ns}/{name}",
        registry.trim_end_matches('/')
    ))
}
