//! Arguments several commands share: how to reach a registry, pulling on demand, and how
//! a build makes its artifact.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wasmoci_cli::ops::artifact::{PullPolicy, needs_pull, pull, store_layout};
use wasmoci_cli::ops::build::BuildRequest;
use wasmoci_cli::reference::ArtifactRef;
use wasmoci_cli::units::parse_size;
use wasmoci_registry::Reference;
use wasmoci_registry::auth::Secret;
use wasmoci_registry::client::{Client, ClientOptions};

use crate::output;

/// How a build makes its artifact, shared by `build` and `publish`.
#[derive(Debug, clap::Args)]
pub(crate) struct BuildFlags {
    /// Add or override a manifest annotation (repeatable)
    #[arg(short, long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Keep a wasip1 core module a module instead of adapting it into a component
    #[arg(long, conflicts_with = "wit")]
    module: bool,
    /// WIT directory giving a core module its world (with `deps/`)
    #[arg(long, value_name = "DIR")]
    wit: Option<PathBuf>,
    /// World in `--wit` [default: the package's only world]
    #[arg(long, value_name = "NAME", requires = "wit")]
    world: Option<String>,
    /// Source control revision to record
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Do not embed package metadata into the wasm (a component is stored byte for byte;
    /// the annotations still carry it)
    #[arg(long)]
    no_metadata: bool,
    #[command(flatten)]
    strictness: Strictness,
}

/// `--locked`, `--offline`, `--frozen`: cargo's, on the `dependency` commands, `build`
/// and `publish` (which check the lock and never fetch dependencies).
#[derive(Debug, clap::Args)]
pub(crate) struct Strictness {
    /// Fail if wasmoci.lock is out of sync, or would change
    #[arg(long)]
    locked: bool,
    /// No network for dependencies: the store (and vendor/) only
    #[arg(long)]
    offline: bool,
    /// Both `--locked` and `--offline`
    #[arg(long)]
    frozen: bool,
}

impl Strictness {
    pub(crate) fn locked(&self) -> bool {
        self.locked || self.frozen
    }
    pub(crate) fn offline(&self) -> bool {
        self.offline || self.frozen
    }
}

impl BuildFlags {
    /// The build of `path` these flags ask for; the caller says where it goes.
    pub(crate) fn request(self, path: PathBuf) -> BuildRequest {
        BuildRequest {
            path,
            annotations: self.annotations,
            module: self.module,
            wit: self.wit,
            world: self.world,
            revision: self.revision,
            no_metadata: self.no_metadata,
            locked: self.strictness.locked(),
            ..BuildRequest::default()
        }
    }
}

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
    /// Skip TLS certificate verification
    #[arg(long)]
    insecure: bool,
    /// Trust the PEM certificates in FILE (a private CA)
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

impl RegistryArgs {
    /// A client with these credentials and this transport, with progress bars on a
    /// terminal and its notes on stderr.
    pub(crate) fn client(&self) -> Result<Client> {
        self.client_with(|_| {})
    }

    /// [`RegistryArgs::client`] for a command that writes to `dest`'s registry: the
    /// generic `WASMOCI_REGISTRY_USERNAME`/`_PASSWORD` go there (and nowhere else).
    pub(crate) fn client_writing_to(&self, dest: &Reference) -> Result<Client> {
        self.client_with(|o| o.env_credentials_for = Some(dest.registry.clone()))
    }

    /// [`RegistryArgs::client`], with `tune` changing its options first.
    pub(crate) fn client_with(&self, tune: impl FnOnce(&mut ClientOptions)) -> Result<Client> {
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
        let mut options = ClientOptions {
            plain_http: self.plain_http,
            credential,
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            ..ClientOptions::default()
        };
        tune(&mut options);
        let client = Client::new(options)?
            // Credentials that could not be read are said, not silently replaced by none.
            .with_notes(crate::output::note);
        Ok(match crate::progress::bars() {
            Some(bars) => client.with_progress(bars),
            None => client,
        })
    }

    /// Says on stderr when `r`'s registry is reached without TLS though nobody asked.
    pub(crate) fn plain_http_note(&self, r: &Reference) {
        // Only when we chose it: `--plain-http` says so already.
        let tls_asked = self.insecure || self.ca_file.is_some();
        if !self.plain_http && r.is_loopback() && !tls_asked {
            output::note(&format!("talking plain HTTP to `{}`", r.registry));
        }
    }
}

/// How much a pull downloads, shared by the commands that pull.
#[derive(Debug, clap::Args)]
pub(crate) struct DownloadLimits {
    /// Refuse to download a blob larger than SIZE
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1GiB")]
    max_blob_size: u64,
}

impl DownloadLimits {
    /// Sets these limits on `options`.
    pub(crate) fn apply(&self, options: &mut ClientOptions) {
        options.max_blob_size = self.max_blob_size;
    }
}

/// Pulling a registry artifact the store lacks before using it, like `docker run`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Pulling a `HOST/REPO:TAG` artifact")]
pub(crate) struct PullOnDemand {
    /// Pull it into the store first: when the store lacks it, every time, or never
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = PullPolicy::Missing)]
    pull: PullPolicy,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    limits: DownloadLimits,
}

impl PullOnDemand {
    /// Makes sure the store has `artifact` when it names a registry (other names are
    /// read where they are).
    pub(crate) fn fetch(&self, artifact: &ArtifactRef) -> Result<()> {
        let ArtifactRef::Registry(reference) = artifact else {
            return Ok(());
        };
        let store = store_layout()?;
        if needs_pull(reference, self.pull, &store)? {
            self.registry.plain_http_note(reference);
            let client = self.registry.client_with(|o| self.limits.apply(o))?;
            let pulled = pull(&client, reference, &store)?;
            output::status(&super::pull::summary(&pulled));
        }
        Ok(())
    }
}

/// [`wasmoci_fs::write_atomic`], with the path in the error.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
    }
    wasmoci_fs::write_atomic(path, bytes, mode)
        .with_context(|| format!("failed to write `{}`", path.display()))
}

/// The exit status of every command that talks to a registry, for the end of its help
/// (the classes of `cli/src/failure.rs`, the same in every command).
macro_rules! registry_exit_status {
    () => {
        "\n\nExit status:
  0  done
  2  usage error, or something failed here (a file, the store)
  4  the registry refused us (unauthorized, denied, not found)
  5  the transfer failed (unreachable, TLS, a digest mismatch, rate-limited, another
     registry error)"
    };
}
pub(crate) use registry_exit_status;
