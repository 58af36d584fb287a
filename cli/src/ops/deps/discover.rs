//! The repository of a package whose project names neither `oci` nor a `[registries]`
//! entry, found as wkg finds it: the namespace's registry domain from wkg's config file
//! (`namespace_registries.<ns>`, else `default_registry`), then that domain's
//! `/.well-known/wasm-pkg/registry.json` (`{"oci": {"registry": R, "namespacePrefix":
//! P}}`): the package is at `R/P<ns>/<name>`. An error says what was tried.

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
}

/// `registry.json`'s OCI part.
#[derive(Debug, Deserialize)]
struct WellKnown {
    oci: Option<WellKnownOci>,
}

#[derive(Debug, Deserialize)]
struct WellKnownOci {
    registry: String,
    #[serde(default, rename = "namespacePrefix")]
    namespace_prefix: String,
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
    let shown = file.as_ref().map_or_else(
        || "wkg's config (no home directory)".to_owned(),
        |f| format!("wkg's config `{}`", f.display()),
    );
    let config: WkgConfig = match file.as_ref().map(std::fs::read_to_string) {
        Some(Ok(text)) => toml::from_str(&text)
            .map_err(|e| fail(format!("{shown}, which does not parse: {e}")))?,
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(format!("{shown} (not there)")));
        }
        Some(Err(e)) => return Err(fail(format!("{shown}, which cannot be read: {e}"))),
        None => return Err(fail(shown)),
    };
    // A namespace entry is a domain, or a table naming one (`{ registry = "…" }`).
    let domain = match config.namespace_registries.get(ns) {
        Some(toml::Value::String(domain)) => Some(domain.clone()),
        Some(toml::Value::Table(table)) => table
            .get("registry")
            .and_then(toml::Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
    .or(config.default_registry)
    .ok_or_else(|| {
        fail(format!(
            "{shown} (no `namespace_registries.{ns}`, no `default_registry`)"
        ))
    })?;
    let at: Reference = format!("{domain}/wasm-pkg").parse().map_err(|e| {
        fail(format!(
            "{shown}: the registry `{domain}` is not a host name ({e})"
        ))
    })?;
    let url = format!("`{domain}/.well-known/wasm-pkg/registry.json`");
    let bytes = client
        .well_known(&at)
        .map_err(|e| fail(format!("{shown}, then {url}: {e}")))?;
    let known: WellKnown = serde_json::from_slice(&bytes)
        .map_err(|e| fail(format!("{shown}, then {url}, which is not wkg's JSON: {e}")))?;
    let oci = known.oci.ok_or_else(|| {
        fail(format!(
            "{shown}, then {url}, which names no `oci` registry"
        ))
    })?;
    Ok(format!(
        "{}/{}{ns}/{name}",
        oci.registry.trim_end_matches('/'),
        oci.namespace_prefix
    ))
}
