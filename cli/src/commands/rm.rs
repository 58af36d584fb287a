//! `wasmoci rm`: untag artifacts in the embedded store.

use anyhow::{Result, bail};
use wasmoci_cli::env;
use wasmoci_cli::ops::store;
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_registry::LayoutRef;
use wasmoci_spec::Digest;

use crate::output;

const HELP: &str = "\
A tag goes from the store's index; the manifest goes with its last tag. A digest
(`sha256:…`, `NAME@sha256:…`) removes the manifest with every tag it has. Blobs stay until
`wasmoci gc` frees those no manifest reaches. All or nothing: when one reference is not in
the store, nothing is removed.

Exit status:
  0  removed
  2  a reference is not in the store (named), or the store could not be changed

Examples:
  wasmoci rm hello:0.1.0
  wasmoci rm localhost:5000/demo/hello:0.1.0 hello@sha256:4f1c…
  wasmoci rm hello:0.1.0 --json && wasmoci gc";

/// Remove artifacts from the embedded store (untag; the manifest goes with its last tag)
#[derive(Debug, clap::Args)]
#[command(after_help = HELP)]
pub(crate) struct RmArgs {
    /// `NAME[:TAG]`, `NAME@sha256:…`, `sha256:…`, or a pulled `HOST/REPO[:TAG|@DIGEST]`
    #[arg(value_name = "REF", required = true)]
    references: Vec<String>,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: RmArgs) -> Result<std::process::ExitCode> {
    let references = args
        .references
        .iter()
        .map(|text| Ok((text.clone(), in_store(text)?)))
        .collect::<Result<Vec<_>>>()?;
    let report = store::remove(&env::home()?, &references)?;
    if args.json {
        output::json(&serde_json::to_value(&report)?);
    } else {
        for tag in &report.untagged {
            output::summary(&format!("untagged: {tag}"));
        }
        for digest in &report.deleted {
            output::summary(&format!("deleted: {digest}"));
        }
        if !report.deleted.is_empty() {
            output::note("`wasmoci gc` frees the blobs no artifact uses any more");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// What `text` names in the store: the store's own names, a digest, or a pulled
/// artifact under the name `pull` gave it.
fn in_store(text: &str) -> Result<LayoutRef> {
    if text.starts_with("sha256:") {
        return Ok(LayoutRef::Digest(text.parse::<Digest>()?));
    }
    Ok(match text.parse::<ArtifactRef>()? {
        ArtifactRef::Store(reference) => reference,
        ArtifactRef::Registry(reference) => wasmoci_registry::store::locate(&reference),
        ArtifactRef::File(_) | ArtifactRef::Layout { .. } => bail!(
            "`{text}` is not an artifact in the store: `rm` takes `NAME:TAG`, `NAME@sha256:…`, `sha256:…` or a pulled `HOST/REPO:TAG`"
        ),
    })
}
