//! The node policy ([`wasmoci_spec::node_policy`]), enforced at Create before any guest
//! code runs, on every source (containerd's content store, the root filesystem, a direct
//! pull): which repositories, pinned or not, signed by which keys, importing what, how
//! large.
//!
//! The file is `/etc/wasmoci/policy.toml`, or what `WASMOCI_NODE_POLICY` in containerd's
//! environment names, or what the runtime's `ConfigPath` option names
//! (`[…runtimes.wasmoci.options] ConfigPath = "…"`, which wins). It is read once per shim
//! and again when it changes. A named file that is missing, or any file that does not
//! parse, fails every start closed, naming the file and the line. No file at the default
//! path: nothing is refused.
//!
//! Signatures are fetched with the registry client as a direct pull would be (the node's
//! address rules; the node's credentials), verified against the manifest digest containerd
//! resolved, and a success is remembered per digest and key set under the node's home;
//! so is an import check that passed, per wasm digest and deny list.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmoci_fs::Home;
use wasmoci_registry::Reference;
use wasmoci_registry::client::{Client, ClientOptions};
use wasmoci_registry::cosign::VerifyingKey;
use wasmoci_spec::node_policy::{DEFAULT_PATH, MAX_POLICY_FILE, NodePolicy, Subject, Verdict};
use wasmoci_spec::{Digest, WasmKind};

use crate::content::Loaded;
use crate::pull_policy::{PullPolicy, own_addresses};

/// The variable of containerd's environment that names the policy file.
pub(crate) const POLICY_VAR: &str = "WASMOCI_NODE_POLICY";

/// Why a container may not start on this node.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyError {
    /// The policy file cannot be used: every start fails.
    #[error("wasmoci: refused by node policy: the policy file `{}` cannot be used: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    /// A rule refuses it.
    #[error("wasmoci: refused by node policy: {rule} ({digest}): {reason}")]
    Refused {
        rule: &'static str,
        digest: String,
        reason: String,
    },
}

/// The `ConfigPath` of the runtime's options (`[…runtimes.wasmoci.options]`), which CRI
/// sends as `runtimeoptions.v1.Options` for a runtime that is not runc: the node policy's
/// path, when set.
pub(crate) fn runtime_config_path(
    req: &containerd_shim::protos::api::CreateTaskRequest,
) -> Option<String> {
    let options = req.options.as_ref()?;
    if !options.type_url.ends_with("runtimeoptions.v1.Options") {
        return None;
    }
    runtime_options_config_path(&options.value)
}

/// Field 2 (`config_path`, a string) of a `runtimeoptions.v1.Options` message.
fn runtime_options_config_path(bytes: &[u8]) -> Option<String> {
    use containerd_shim::protos::protobuf::CodedInputStream;
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut found = None;
    while !input.eof().ok()? {
        let tag = input.read_raw_varint32().ok()?;
        match (tag >> 3, tag & 7) {
            (2, 2) => found = Some(input.read_string().ok()?),
            (_, wire) => {
                let wire = containerd_shim::protos::protobuf::rt::WireType::new(wire)?;
                input.skip_field(wire).ok()?;
            }
        }
    }
    found
}

/// Where the policy is, and whether it was named (a named file must exist).
fn location(option: Option<&str>) -> (PathBuf, bool) {
    if let Some(path) = option.filter(|p| !p.is_empty()) {
        return (PathBuf::from(path), true);
    }
    match std::env::var_os(POLICY_VAR).filter(|p| !p.is_empty()) {
        Some(path) => (PathBuf::from(path), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    }
}

/// What the file was when it was read: read again when any of it changes.
type Stamp = (u64, u64, i64, i64, u64);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    (
        meta.dev(),
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.size(),
    )
}

/// The node's policy, for the runtime option `option` (its `ConfigPath`).
pub(crate) fn current(option: Option<&str>) -> Result<Arc<NodePolicy>, PolicyError> {
    type Cached = (PathBuf, Option<Stamp>, Arc<NodePolicy>);
    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);
    let (path, named) = location(option);
    let file_error = |reason: String| PolicyError::File {
        path: path.clone(),
        reason,
    };
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => None,
        Err(e) => return Err(file_error(e.to_string())),
    };
    let stamp = meta.as_ref().map(stamp);
    let mut cache = CACHE.lock().expect("not poisoned");
    if let Some((cached_path, cached_stamp, policy)) = cache.as_ref()
        && *cached_path == path
        && *cached_stamp == stamp
    {
        return Ok(policy.clone());
    }
    let policy = match &meta {
        None => NodePolicy::open(),
        Some(meta) if !meta.is_file() => return Err(file_error("not a regular file".into())),
        Some(meta) if meta.len() > MAX_POLICY_FILE => {
            return Err(file_error(format!(
                "it is {} bytes, more than {MAX_POLICY_FILE}",
                meta.len()
            )));
        }
        Some(_) => {
            let text = std::fs::read_to_string(&path).map_err(|e| file_error(e.to_string()))?;
            NodePolicy::parse(&text).map_err(|e| file_error(e.to_string()))?
        }
    };
    let policy = Arc::new(policy);
    *cache = Some((path, stamp, policy.clone()));
    Ok(policy)
}

/// The digest a refusal names: the manifest's when known, else the wasm's.
fn named(loaded: &Loaded) -> String {
    loaded.origin.manifest.unwrap_or(loaded.digest).to_string()
}

fn refused(rule: &'static str, loaded: &Loaded, reason: impl Into<String>) -> PolicyError {
    PolicyError::Refused {
        rule,
        digest: named(loaded),
        reason: reason.into(),
    }
}

/// Checks `loaded` against `policy`: the rules that need no I/O, then the signatures,
/// then the imports (reading the wasm only when no earlier check of this digest passed).
pub(crate) fn enforce(policy: &NodePolicy, loaded: &mut Loaded) -> Result<(), PolicyError> {
    let mut repositories: Vec<String> = Vec::new();
    for reference in &loaded.origin.references {
        let repository = reference.repository_path();
        if !repositories.contains(&repository) {
            repositories.push(repository);
        }
    }
    let subject = Subject {
        repositories: &repositories,
        pinned: loaded.origin.pinned,
        manifest: loaded.origin.manifest,
        size: loaded.size,
    };
    for checked in policy.check(&subject) {
        if let Verdict::Refused(reason) = checked.verdict {
            return Err(refused(checked.rule, loaded, reason));
        }
    }
    if !policy.keys.is_empty() {
        signatures(policy, loaded)?;
    }
    if policy.checks_imports() {
        imports(policy, loaded)?;
    }
    Ok(())
}

/// Where a passed check is remembered: `<node home>/policy/<what>/<hash of the rule's
/// inputs>/<digest hex>`.
fn remembered(what: &str, inputs: &[u8], digest: &Digest) -> PathBuf {
    let key = Digest::of(inputs).to_string();
    let digest = digest.to_string();
    Home::node()
        .root()
        .join("policy")
        .join(what)
        .join(key.trim_start_matches("sha256:"))
        .join(digest.trim_start_matches("sha256:"))
}

fn remember(path: &Path, note: &str) {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| wasmoci_fs::write_atomic(path, note.as_bytes(), 0o600));
    if let Err(e) = written {
        log::warn!(
            "failed to remember a policy check in `{}`: {e}",
            path.display()
        );
    }
}

fn signatures(policy: &NodePolicy, loaded: &Loaded) -> Result<(), PolicyError> {
    const RULE: &str = "signatures.keys";
    // The names the policy allows: a signature is looked for in each repository in turn.
    let mut names: Vec<&Reference> = Vec::new();
    for reference in &loaded.origin.references {
        let repository = reference.repository_path();
        if policy.allows(&repository) && !names.iter().any(|n| n.repository_path() == repository) {
            names.push(reference);
        }
    }
    let (false, Some(digest)) = (names.is_empty(), loaded.origin.manifest) else {
        return Err(refused(
            RULE,
            loaded,
            "the image's repository and manifest digest are not known, so no signature can be checked",
        ));
    };
    // The keys as they are now: a key replaced on the node is a new key set.
    let mut texts = Vec::new();
    let mut keys = Vec::new();
    for path in &policy.keys {
        // Bounded: a key is a few hundred bytes (`from_pem` refuses more than the limit).
        let mut text = String::new();
        let read = std::fs::File::open(path).and_then(|f| {
            std::io::Read::read_to_string(
                &mut std::io::Read::take(f, wasmoci_registry::cosign::MAX_KEY_LEN as u64 + 1),
                &mut text,
            )
        });
        read.map_err(|e| {
            refused(
                RULE,
                loaded,
                format!("failed to read the key `{path}`: {e}"),
            )
        })?;
        let key = VerifyingKey::from_pem(&text).map_err(|e| {
            refused(
                RULE,
                loaded,
                format!("failed to load the key `{path}`: {e}"),
            )
        })?;
        texts.extend_from_slice(text.as_bytes());
        keys.push(key);
    }
    let note = remembered("signatures", &texts, &digest);
    if note.is_file() {
        return Ok(());
    }
    let pulls = PullPolicy::from_env_and(policy);
    let own = own_addresses();
    let mut failures = Vec::new();
    for reference in names {
        match verify_at(&pulls, &own, reference, &digest, &keys) {
            Ok(by) => {
                remember(&note, &by.join("\n"));
                return Ok(());
            }
            Err(reason) => failures.push(reason),
        }
    }
    Err(refused(RULE, loaded, failures.join("; ")))
}

/// The fingerprints of the keys of the valid signatures of `digest` in `reference`'s
/// repository, fetched as a direct pull would be.
fn verify_at(
    pulls: &PullPolicy,
    own: &[std::net::IpAddr],
    reference: &Reference,
    digest: &Digest,
    keys: &[VerifyingKey],
) -> Result<Vec<String>, String> {
    pulls.check(reference, own).map_err(|e| e.to_string())?;
    let client = Client::new(ClientOptions {
        https_only: !pulls.insecure(reference),
        only_addresses: pulls.address_filter(reference, own.to_vec()),
        ..ClientOptions::default()
    })
    .map_err(|e| e.to_string())?
    .with_notes(|note| log::warn!("{}", crate::error::shown(note)));
    let verified = client
        .verify(reference, digest, keys)
        .map_err(|e| e.to_string())?;
    Ok(verified.into_iter().map(|v| v.key).collect())
}

fn imports(policy: &NodePolicy, loaded: &mut Loaded) -> Result<(), PolicyError> {
    const RULE: &str = "components.deny-imports";
    let note = remembered(
        "imports",
        policy.deny_imports().join("\n").as_bytes(),
        &loaded.digest,
    );
    if note.is_file() {
        return Ok(());
    }
    let digest = named(loaded);
    let refuse = |reason: String| PolicyError::Refused {
        rule: RULE,
        digest: digest.clone(),
        reason,
    };
    let bytes = loaded.bytes().map_err(|e| refuse(e.to_string()))?;
    let kind = WasmKind::detect(bytes).unwrap_or(WasmKind::Module);
    let names = wasmoci_spec::policy::imports(bytes, kind)
        .map_err(|e| refuse(format!("failed to read its imports: {e}")))?;
    let checked = policy.imports_verdict(names.iter().map(String::as_str));
    if let Verdict::Refused(reason) = checked.verdict {
        return Err(refuse(reason));
    }
    remember(&note, "pass");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_path_of_runtime_options() {
        // `runtimeoptions.v1.Options { type_url: "x", config_path: "/etc/p.toml" }`, and an
        // unknown varint field before it.
        let mut bytes = vec![0x18, 0x05, 0x0a, 0x01, b'x', 0x12, 11];
        bytes.extend_from_slice(b"/etc/p.toml");
        assert_eq!(
            runtime_options_config_path(&bytes).as_deref(),
            Some("/etc/p.toml")
        );
        assert_eq!(runtime_options_config_path(&[0x0a, 0x01, b'x']), None);
        assert_eq!(
            runtime_options_config_path(&[0x12, 0x30]),
            None,
            "truncated"
        );
    }
}
