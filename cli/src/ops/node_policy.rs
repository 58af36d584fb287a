//! `wasmoci node policy check`: the node policy's rules on an artifact in a registry,
//! evaluated from a workstation as the shim would evaluate them on a node, each with its
//! verdict.

use std::path::{Path, PathBuf};

use serde::Serialize;
use wasmoci_registry::client::Client;
use wasmoci_registry::cosign::VerifyingKey;
use wasmoci_registry::{Layout, LayoutRef, Reference};
use wasmoci_spec::node_policy::{NodePolicy, Subject, Verdict};
use wasmoci_spec::{Digest, WasmKind};

use super::{Error, Result};

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("failed to read the node policy `{}`: {reason}", path.display())]
pub struct PolicyFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Reads and parses a policy file; with `keys`, each key it names must load too (a key
/// that cannot be read refuses every image on a node).
pub fn load(path: &Path, keys: bool) -> Result<NodePolicy> {
    let fail = |reason: String| {
        Error::from(PolicyFileError {
            path: path.to_owned(),
            reason,
        })
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.len() > wasmoci_spec::node_policy::MAX_POLICY_FILE {
        return Err(fail(format!("it is {} bytes", meta.len())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let policy = NodePolicy::parse(&text).map_err(|e| fail(e.to_string()))?;
    if keys {
        for key in &policy.keys {
            public_key(key).map_err(fail)?;
        }
    }
    Ok(policy)
}

/// A key the policy names, read as `verify --key` reads one (bounded, the file named);
/// why not, as one line.
fn public_key(path: &str) -> std::result::Result<VerifyingKey, String> {
    super::signatures::verifying_key(Path::new(path)).map_err(|e| {
        let mut text = format!("`signatures.keys`: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    })
}

/// One rule's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct RuleVerdict {
    /// `images.allow`, `signatures.keys`, …
    pub rule: &'static str,
    /// `pass`, `refused` or `not-set`.
    pub verdict: &'static str,
    /// Why it refused, or what passed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What `node policy check` found.
#[derive(Debug, Serialize)]
pub struct PolicyReport {
    /// The reference checked, at its digest.
    pub reference: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Whether every rule passes (or is not set).
    pub allowed: bool,
    /// Each rule.
    pub rules: Vec<RuleVerdict>,
}

fn verdict(rule: &'static str, verdict: Verdict) -> RuleVerdict {
    let (verdict, detail) = match verdict {
        Verdict::Pass => ("pass", String::new()),
        Verdict::NotSet => ("not-set", String::new()),
        Verdict::Refused(reason) => ("refused", reason),
    };
    RuleVerdict {
        rule,
        verdict,
        detail,
    }
}

/// Evaluates every rule of `policy` on `reference`: pulled into a scratch layout (never
/// the store), its imports read from the wasm, its signatures verified at the registry.
pub fn check(client: &Client, reference: &Reference, policy: &NodePolicy) -> Result<PolicyReport> {
    let scratch = tempfile::tempdir().map_err(Error::TempDir)?;
    let layout = Layout::at(scratch.path().join("layout"));
    let pulled = super::artifact::pull(client, reference, &layout)?;
    let stored = layout.resolve(&LayoutRef::Digest(pulled.digest))?;
    let manifest = stored.manifest()?;
    let (_, layer) = manifest
        .wasm_layers()
        .next()
        .ok_or_else(|| Error::NotOneWasmLayer(reference.to_string()))?;
    let repositories = [reference.repository_path()];
    let subject = Subject {
        repositories: &repositories,
        pinned: reference.digest.is_some(),
        manifest: Some(pulled.digest),
        size: layer.size,
    };
    let mut rules: Vec<RuleVerdict> = policy
        .check(&subject)
        .into_iter()
        .map(|c| verdict(c.rule, c.verdict))
        .collect();
    let signatures = if policy.keys.is_empty() {
        Verdict::NotSet
    } else {
        let keys: std::result::Result<Vec<_>, String> =
            policy.keys.iter().map(|k| public_key(k)).collect();
        match keys {
            Err(reason) => Verdict::Refused(reason),
            Ok(keys) => match client.verify(reference, &pulled.digest, &keys) {
                Ok(_) => Verdict::Pass,
                Err(e) => Verdict::Refused(e.to_string()),
            },
        }
    };
    rules.push(verdict("signatures.keys", signatures));
    let imports = if policy.checks_imports() {
        let wasm = layout.read_blob(&layer.digest)?;
        let kind = WasmKind::detect(&wasm).unwrap_or(WasmKind::Module);
        match wasmoci_spec::policy::imports(&wasm, kind) {
            Ok(names) => {
                policy
                    .imports_verdict(names.iter().map(String::as_str))
                    .verdict
            }
            Err(e) => Verdict::Refused(format!("failed to read its imports: {e}")),
        }
    } else {
        Verdict::NotSet
    };
    rules.push(verdict("components.deny-imports", imports));
    Ok(PolicyReport {
        reference: reference.with_digest(pulled.digest).to_string(),
        digest: pulled.digest,
        allowed: rules.iter().all(|r| r.verdict != "refused"),
        rules,
    })
}
