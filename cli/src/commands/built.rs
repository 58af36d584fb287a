//! How a build is reported, for the commands that build: `build`, and `push`, `convert`
//! and `publish` when they are given a file or a project.

use std::path::Path;

use anyhow::Result;
use wasmoci_cli::ops::artifact::{Source, source_artifact};
use wasmoci_cli::ops::build::Refused;
use wasmoci_cli::project::PROJECT_FILE;
use wasmoci_registry::{Layout, StoredArtifact};

use crate::failure::Problems;
use crate::output::{self, Report};

/// Says that a project's `build.command` runs (its output follows on stderr).
pub(crate) fn running(command: &str, dir: &Path) {
    output::status(&format!("running `{command}` in `{}`", dir.display()));
}

pub(crate) fn notes(notes: &[String]) {
    for note in notes {
        output::note(note);
    }
}

/// A build the project's policy refused, as the error the command ends with (exit 1).
pub(crate) fn refusal(refused: &Refused) -> anyhow::Error {
    notes(&refused.notes);
    Problems {
        header: format!(
            "`{}` imports what the `[policy]` of `{PROJECT_FILE}` refuses; nothing was stored",
            refused.path.display()
        ),
        problems: refused
            .refusals
            .iter()
            .map(|r| format!("[policy-import] `{}`: {}", r.import, r.reason))
            .collect(),
    }
    .into()
}

/// The artifact `push` and `convert` start from (a file or project is built into
/// `scratch`, and said so); an error (exit 1) when the project's policy refused it.
pub(crate) fn source(text: &str, scratch: &Path) -> Result<(Layout, StoredArtifact)> {
    match source_artifact(text, scratch, &mut running)? {
        Source::Ready {
            layout,
            stored,
            built,
        } => {
            if let Some(report) = built {
                notes(&report.notes);
                if let Some(line) = report.status() {
                    output::status(&line);
                }
            }
            Ok((layout, stored))
        }
        Source::Refused(refused) => Err(refusal(&refused)),
    }
}
