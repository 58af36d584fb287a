//! `wasmoci push` and `wasmoci pull`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_registry::auth::Secret;
use wasmoci_registry::client::{Client, ClientOptions};
use wasmoci_registry::{Layout, LayoutRef, Reference};
use wasmoci_spec::ImageManifest;

use crate::{Outcome, output};

/// Credentials and transport, shared by the commands that talk to registries.
#[derive(Debug, clap::Args)]
pub(crate) struct RegistryArgs {
    /// User name (the password is read from stdin with `--password-stdin`)
    #[arg(short, long, value_name = "USER", requires = "password_stdin")]
    username: Option<String>,
    /// Read the password (or token) from stdin
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Talk plain HTTP to the registry (loopback registries use it anyway)
    #[arg(long)]
    plain_http: bool,
}

impl RegistryArgs {
    fn client(&self) -> Result<Client> {
        let credential = match &self.username {
            Some(user) => {
                let mut password = String::new();
                std::io::stdin()
                    .read_to_string(&mut password)
                    .context("failed to read the password from stdin")?;
                Some((
                    user.clone(),
                    Secret::new(password.trim_end_matches(['\n', '\r'])),
                ))
            }
            None => None,
        };
        Ok(Client::new(ClientOptions {
            plain_http: self.plain_http,
            credential,
        }))
    }
}

const PUSH_HELP: &str = "\
Uploads the blobs the registry lacks (streamed, hashed on the way), then the manifest.
Prints `DEST@sha256:…`. Credentials: `--username` + `--password-stdin`, then
`WASMOCI_REGISTRY_USERNAME`/`WASMOCI_REGISTRY_PASSWORD`, then docker's `config.json`.

Examples:
  wasmoci push hello:0.1.0 ghcr.io/acme/hello:0.1.0
  wasmoci push oci:out:app:1.0.0 localhost:5000/app:1.0.0 --json";

/// Push a stored artifact to a registry
#[derive(Debug, clap::Args)]
#[command(after_help = PUSH_HELP)]
pub(crate) struct PushArgs {
    /// `NAME:TAG` in the store or `oci:DIR[:TAG|@DIGEST]`
    #[arg(value_name = "SOURCE")]
    source: ArtifactRef,
    /// `HOST/REPO[:TAG]`
    #[arg(value_name = "DEST")]
    dest: String,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object with every digest and size
    #[arg(long)]
    json: bool,
}

pub(crate) fn push(args: PushArgs) -> Result<Outcome> {
    let dest: Reference = args.dest.parse()?;
    let dest = if dest.tag.is_none() && dest.digest.is_none() {
        dest.with_tag("latest")
    } else {
        dest
    };
    let (layout, layout_ref) = match &args.source {
        ArtifactRef::Layout { dir, reference } => (Layout::open(dir)?, reference.clone()),
        ArtifactRef::Store(reference) => (super::store_layout()?, reference.clone()),
        ArtifactRef::File(path) => bail!(
            "`{}` is a file: build it into the store first (`wasmoci build {}`), then push `NAME:TAG`",
            path.display(),
            path.display()
        ),
        ArtifactRef::Registry(r) => bail!(
            "`{r}` is in a registry: pushing from a registry (copy) is not supported yet; pull it first"
        ),
    };
    let stored = layout
        .resolve(&layout_ref)
        .with_context(|| format!("failed to read `{}`", args.source))?;
    if !dest.is_loopback() && args.registry.plain_http {
        output::note(&format!("talking plain HTTP to `{}`", dest.registry));
    }
    let client = args.registry.client()?;
    let report = client
        .push(&layout, &stored, &dest)
        .with_context(|| format!("failed to push `{}` to `{dest}`", args.source))?;
    let digest = report.digest.unwrap_or(stored.descriptor.digest);
    let reference = format!(
        "{}@{digest}",
        dest.with_tag(dest.tag.as_deref().unwrap_or("latest"))
    );
    let bytes: u64 = report.uploaded.iter().map(|(_, s)| s).sum();
    if args.json {
        let blobs = |list: &[(wasmoci_spec::Digest, u64)]| {
            list.iter()
                .map(|(d, s)| json!({ "digest": d.to_string(), "size": s }))
                .collect::<Vec<_>>()
        };
        output::json(&json!({
            "reference": reference,
            "digest": digest.to_string(),
            "manifest_size": stored.manifest_bytes.len(),
            "uploaded": blobs(&report.uploaded),
            "skipped": blobs(&report.skipped),
            "uploaded_bytes": bytes,
        }));
    } else {
        output::status(&format!(
            "pushed `{dest}`: {} blob(s) uploaded ({bytes} bytes), {} already there",
            report.uploaded.len(),
            report.skipped.len()
        ));
        output::data(&reference);
    }
    Ok(Outcome::Ok)
}

const PULL_HELP: &str = "\
Fetches the manifest (checked against its digest), then each blob the store lacks,
streamed to a temporary file while hashed and kept only when it matches. The artifact is
stored under its full reference, so `wasmoci run HOST/REPO:TAG` finds it afterwards.

Examples:
  wasmoci pull ghcr.io/acme/hello:0.1.0
  wasmoci pull localhost:5000/app@sha256:… -o app.wasm
  wasmoci pull localhost:5000/app:1.0.0 --layout out";

/// Pull an artifact from a registry into the store (or a layout)
#[derive(Debug, clap::Args)]
#[command(after_help = PULL_HELP)]
pub(crate) struct PullArgs {
    /// `HOST/REPO[:TAG|@DIGEST]`
    #[arg(value_name = "REF")]
    reference: String,
    /// Store into this OCI image layout directory instead of the embedded store
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Also write the wasm layer to FILE
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

/// The tag a pulled artifact gets in a layout: its full reference.
pub(crate) fn store_tag(reference: &Reference) -> String {
    reference.to_string()
}

pub(crate) fn pull(args: PullArgs) -> Result<Outcome> {
    let source: Reference = args.reference.parse()?;
    let layout = match &args.layout {
        Some(dir) => Layout::at(dir),
        None => super::store_layout()?,
    };
    let client = args.registry.client()?;
    let tag = store_tag(&source);
    let report = client
        .pull(&source, &layout, &tag)
        .with_context(|| format!("failed to pull `{source}`"))?;
    if let Some(path) = &args.output {
        let stored = layout.resolve(&LayoutRef::Digest(report.manifest.digest))?;
        let manifest: ImageManifest = stored.manifest()?;
        let (_, layer) = manifest
            .wasm_layers()
            .next()
            .context("the artifact has no wasm layer")?;
        let bytes = layout.read_blob(&layer.digest)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut temp = tempfile::NamedTempFile::with_prefix_in(".wasmoci-", &dir)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
        temp.write_all(&bytes)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
        temp.persist(path)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    let reference = format!("{tag}@{}", report.manifest.digest);
    let bytes: u64 = report.downloaded.iter().map(|(_, s)| s).sum();
    if args.json {
        output::json(&json!({
            "reference": reference,
            "digest": report.manifest.digest.to_string(),
            "layout": layout.root(),
            "downloaded_bytes": bytes,
            "downloaded": report.downloaded.iter().map(|(d, s)| json!({"digest": d.to_string(), "size": s})).collect::<Vec<_>>(),
            "reused": report.reused.iter().map(|(d, s)| json!({"digest": d.to_string(), "size": s})).collect::<Vec<_>>(),
            "output": args.output,
        }));
    } else {
        output::status(&format!(
            "pulled `{source}`: {} blob(s) downloaded ({bytes} bytes), {} already here",
            report.downloaded.len(),
            report.reused.len()
        ));
        output::data(&reference);
    }
    Ok(Outcome::Ok)
}
