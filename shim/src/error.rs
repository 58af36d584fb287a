//! What can go wrong in the shim, and the ttrpc status containerd gets for it.

use containerd_shim::protos::ttrpc;

use crate::bundle::BundleError;
use crate::content::ContentError;
use crate::netns::NetnsError;
use crate::plan::PlanError;

/// An error of a task RPC.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShimError {
    /// No task with this id.
    #[error("no task `{0}` in this shim")]
    NotFound(String),
    /// Start after a kill.
    #[error("task `{0}` was stopped before it started")]
    StoppedBeforeStart(String),
    /// A second start.
    #[error("task `{0}` was already started")]
    AlreadyStarted(String),
    /// Delete of a running task.
    #[error("task `{0}` is still running: kill it first")]
    StillRunning(String),
    /// The rootfs mounts of the create request failed.
    #[error("failed to mount the root filesystem: {0}")]
    Mount(containerd_shim::Error),
    /// A volume the container may not have.
    #[error(transparent)]
    Volume(#[from] crate::mounts::MountError),
    /// `config.json` cannot be read.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The bundle asks for something the shim cannot do.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The wasm cannot be had.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The node policy refuses the container.
    #[error(transparent)]
    Policy(#[from] crate::node_policy::PolicyError),
    /// The pod's network namespace cannot be used.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The engine failed to set up, compile or prepare the program.
    #[error(transparent)]
    Engine(#[from] wasmoci_runtime::Error),
    /// The shim's engine could not be built (the same error for every task).
    #[error("failed to set up the engine: {0}")]
    EngineSetup(std::sync::Arc<wasmoci_runtime::Error>),
    /// The container's cgroup cannot be made or used.
    #[error("failed to {action} the cgroup `{}`: {reason}", path.display())]
    Cgroup {
        action: &'static str,
        path: std::path::PathBuf,
        reason: String,
    },
    /// The worker found the program cannot run as asked (its reason, as the engine gave
    /// it).
    #[error("{reason}")]
    Program { id: String, reason: String },
    /// The worker process that runs a guest cannot be started.
    #[error("failed to start the worker for task `{id}`: {reason}")]
    Worker { id: String, reason: String },
    /// Stats could not be encoded.
    #[error("failed to encode the stats of `{id}`: {error}")]
    Stats {
        id: String,
        error: containerd_shim::protos::protobuf::Error,
    },
}

impl ShimError {
    /// The gRPC code containerd sees.
    fn code(&self) -> ttrpc::Code {
        match self {
            ShimError::NotFound(_) => ttrpc::Code::NOT_FOUND,
            ShimError::StoppedBeforeStart(_)
            | ShimError::AlreadyStarted(_)
            | ShimError::StillRunning(_) => ttrpc::Code::FAILED_PRECONDITION,
            ShimError::Stats { .. } | ShimError::Worker { .. } => ttrpc::Code::INTERNAL,
            ShimError::Policy(_) => ttrpc::Code::PERMISSION_DENIED,
            ShimError::Mount(_)
            | ShimError::Volume(_)
            | ShimError::Bundle(_)
            | ShimError::Plan(_)
            | ShimError::Content(_)
            | ShimError::Netns(_)
            | ShimError::Cgroup { .. }
            | ShimError::Engine(_)
            | ShimError::Program { .. }
            | ShimError::EngineSetup(_) => ttrpc::Code::INVALID_ARGUMENT,
        }
    }
}

impl From<ShimError> for ttrpc::Error {
    fn from(error: ShimError) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(error.code(), shown(&error)))
    }
}

/// The most of one message that goes into a log line, an RPC status or a pod's stderr.
const SHOWN_MAX: usize = 2048;

/// Text that may carry what a registry, an artifact or a guest wrote, for the node's log,
/// containerd (and so `kubectl describe`) or a pod's stderr: one line, control characters
/// escaped, at most 2 KiB.
pub(crate) fn shown(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    let mut line = wasmoci_spec::escape_controls(&text, false).into_owned();
    if line.len() > SHOWN_MAX {
        let mut end = SHOWN_MAX;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_text_is_one_escaped_bounded_line() {
        assert_eq!(shown("a\u{1b}[2J\nb"), "a\\u{1b}[2J\\u{a}b");
        let long = shown("é".repeat(SHOWN_MAX));
        assert!(long.len() <= SHOWN_MAX + '…'.len_utf8() && long.ends_with('…'));
    }

    #[test]
    fn each_kind_of_error_has_its_code() {
        let status = |e: ShimError| match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(status) => (status.code(), status.message),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            status(ShimError::NotFound("a".into())),
            (ttrpc::Code::NOT_FOUND, "no task `a` in this shim".into())
        );
        assert_eq!(
            status(ShimError::StillRunning("a".into())).0,
            ttrpc::Code::FAILED_PRECONDITION
        );
        assert_eq!(
            status(ShimError::Plan(PlanError::NoArgs)).0,
            ttrpc::Code::INVALID_ARGUMENT
        );
    }
}
