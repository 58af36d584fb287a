//! `wasmoci ls`: what the embedded store holds.

use anyhow::Result;
use wasmoci_cli::env;
use wasmoci_cli::ops::store::{self, StoredEntry, human_size};

use crate::output;

const EXAMPLES: &str = "\
Artifacts stored by digest only (a pull by digest, the shim's direct pulls) read `<none>`.
Sizes add up the manifest, config and layers of each artifact; artifacts share blobs.
With `-q` (`--quiet`) only the references are printed (the digest of an untagged one).

Examples:
  wasmoci ls
  wasmoci images --json
  wasmoci ls --quiet | xargs wasmoci rm";

/// List the artifacts in the embedded store: reference, digest, kind, os, size, created
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct LsArgs {
    /// Print a JSON array
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: LsArgs) -> Result<std::process::ExitCode> {
    let entries = store::list(&env::home()?)?;
    if args.json {
        output::json(&serde_json::to_value(&entries)?);
    } else if output::quiet() {
        // `-q`: only the references (the digest of an untagged one), as `docker images -q`.
        for entry in &entries {
            output::data(entry.reference.as_deref().unwrap_or(&entry.digest));
        }
    } else {
        output::data(&table(&entries));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn table(entries: &[StoredEntry]) -> String {
    let mut rows =
        vec![["REFERENCE", "DIGEST", "KIND", "OS", "SIZE", "CREATED"].map(str::to_owned)];
    for e in entries {
        let short = e.digest.get(..19).unwrap_or(&e.digest);
        rows.push([
            e.reference.clone().unwrap_or_else(|| "<none>".into()),
            short.to_owned(),
            e.kind.to_owned(),
            e.os.clone().unwrap_or_else(|| "-".into()),
            human_size(e.size),
            e.created.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    output::columns(&rows)
}
