//! `wasmoci node install`: put the shim next to containerd and add the `wasmoci` runtime
//! to containerd's config (what KWasm's node installer and runtime-class-manager do).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use wasmoci_cli::node::{SHIM_BINARY, patch_containerd_config};

use super::args::write_atomically;
use crate::output;

/// Node set-up commands
#[derive(Debug, clap::Subcommand)]
pub(crate) enum NodeCommand {
    Install(InstallArgs),
    #[command(subcommand)]
    Policy(super::node_policy::PolicyCommand),
}

const INSTALL_HELP: &str = "\
Copies `containerd-shim-wasmoci-v1` into the shim directory and adds the `wasmoci` runtime
to containerd's config (keeping `runc` defined, and every other setting and comment). The
config is backed up before it changes; the diff goes to stdout. A second run changes
nothing. Restart containerd afterwards.
With `--policy FILE`, the node policy is checked (it must parse, its keys must load) and
installed at `--policy-path` (the shim reads it at every container's Create; no restart):
  [images]      allow = [\"registry.example.com/team-a/*\"], require-digest = true
  [signatures]  keys = [\"/etc/wasmoci/keys/team-a.pub\"]
  [components]  deny-imports = [\"wasi:sockets/*\"], max-size = \"64MiB\"
  [direct-pull] allow = [...], credentials = \"node\", insecure-registries = [...]

Examples:
  sudo wasmoci node install --dry-run
  sudo wasmoci node install --containerd-config /etc/containerd/config.toml --shim-dir /usr/local/bin
  sudo wasmoci node install --policy policy.toml";

/// Install the shim and configure containerd on this node
#[derive(Debug, clap::Args)]
#[command(after_help = INSTALL_HELP)]
pub(crate) struct InstallArgs {
    /// containerd's config file
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/containerd/config.toml"
    )]
    containerd_config: PathBuf,
    /// Where to put the shim [default: the directory of `containerd` on PATH]
    #[arg(long, value_name = "DIR")]
    shim_dir: Option<PathBuf>,
    /// The shim binary to install [default: `containerd-shim-wasmoci-v1` next to `wasmoci`]
    #[arg(long, value_name = "PATH")]
    shim: Option<PathBuf>,
    /// Install this node policy (checked first: it must parse and its keys must load)
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Where the shim reads the node policy
    #[arg(long, value_name = "PATH", default_value = wasmoci_spec::node_policy::DEFAULT_PATH)]
    policy_path: PathBuf,
    /// Show what would change, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Print a JSON object (what changed, the backup, the diff) instead of the diff
    #[arg(long)]
    json: bool,
}

/// What `node install` did, or would do (`--json`).
#[derive(serde::Serialize)]
struct Installed {
    shim: PathBuf,
    containerd_config: PathBuf,
    config_version: i64,
    shim_changed: bool,
    config_changed: bool,
    dry_run: bool,
    backup: Option<PathBuf>,
    diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<PathBuf>,
    policy_changed: bool,
}

pub(crate) fn run(command: NodeCommand) -> Result<ExitCode> {
    match command {
        NodeCommand::Install(args) => install(args),
        NodeCommand::Policy(command) => super::node_policy::run(command),
    }
}

fn install(args: InstallArgs) -> Result<ExitCode> {
    // The policy first: one that would refuse every start is not installed.
    let policy = match &args.policy {
        Some(path) => {
            wasmoci_cli::ops::node_policy::load(path, true)?;
            let text = std::fs::read(path)
                .with_context(|| format!("failed to read `{}`", path.display()))?;
            let changed = std::fs::read(&args.policy_path).ok().as_deref() != Some(&text[..]);
            Some((text, changed))
        }
        None => None,
    };
    let shim = match &args.shim {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("failed to find the `wasmoci` executable")?
            .with_file_name(SHIM_BINARY),
    };
    if !shim.is_file() {
        bail!(
            "failed to find the shim `{}`: build it next to `wasmoci`, or pass `--shim PATH`",
            shim.display()
        );
    }
    let shim_dir = match &args.shim_dir {
        Some(dir) => dir.clone(),
        None => containerd_dir().context(
            "failed to find `containerd` on PATH to put the shim beside it; pass `--shim-dir DIR`",
        )?,
    };
    let target = shim_dir.join(SHIM_BINARY);
    let new_shim =
        std::fs::read(&shim).with_context(|| format!("failed to read `{}`", shim.display()))?;
    let shim_changed = std::fs::read(&target).ok().as_deref() != Some(new_shim.as_slice());

    let config = &args.containerd_config;
    // A config that is a symbolic link (config management keeps them) is followed on
    // purpose: its target is rewritten and the link stays.
    let written = config_target(config)?;
    let before = match std::fs::read_to_string(config) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", config.display())),
    };
    let patched = patch_containerd_config(&before)
        .with_context(|| format!("failed to update `{}`", config.display()))?;
    let diff = patched.changed().then(|| {
        similar::TextDiff::from_lines(&patched.before, &patched.after)
            .unified_diff()
            .header(&config.display().to_string(), &config.display().to_string())
            .to_string()
    });
    if let Some(diff) = diff.as_deref().filter(|_| !args.json) {
        output::data(diff);
    }
    let mut installed = Installed {
        shim: target.clone(),
        containerd_config: config.clone(),
        config_version: patched.version,
        shim_changed,
        config_changed: patched.changed(),
        dry_run: args.dry_run,
        backup: None,
        diff,
        policy: policy.as_ref().map(|_| args.policy_path.clone()),
        policy_changed: policy.as_ref().is_some_and(|(_, changed)| *changed),
    };
    let verb = if args.dry_run { "would " } else { "" };
    if args.dry_run {
        output::status(&summary(verb, &patched, shim_changed, config, &target));
        if args.json {
            output::json(&installed);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if shim_changed {
        write_atomically(&target, &new_shim, 0o755)?;
    }
    if let Some((text, true)) = &policy {
        if let Some(dir) = args.policy_path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?;
        }
        write_atomically(&args.policy_path, text, 0o644)?;
        output::status(&format!(
            "installed the node policy `{}`",
            args.policy_path.display()
        ));
    }
    if patched.changed() {
        if !before.is_empty() {
            let backup = config.with_file_name(format!(
                "{}.wasmoci-backup",
                config.file_name().unwrap_or_default().to_string_lossy()
            ));
            write_atomically(&backup, before.as_bytes(), 0o600)?;
            output::note(&format!("the previous config is in `{}`", backup.display()));
            installed.backup = Some(backup);
        }
        if written != *config {
            output::note(&format!(
                "`{}` is a symbolic link: writing its target `{}`",
                config.display(),
                written.display()
            ));
        }
        write_config(&written, patched.after.as_bytes())?;
    }
    output::status(&summary(verb, &patched, shim_changed, config, &target));
    if patched.changed() || shim_changed {
        output::note("restart containerd for it to take effect (`systemctl restart containerd`)");
    }
    if args.json {
        output::json(&installed);
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the config is written: `config`, or the file a symbolic link `config` leads to
/// (a link to nothing is refused: we would not know what it was meant to be).
fn config_target(config: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(config) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(config)
            .with_context(|| {
                format!(
                    "failed to follow `{}`: it is a symbolic link to `{}`, which does not resolve; the link is left as it is",
                    config.display(),
                    std::fs::read_link(config).unwrap_or_default().display()
                )
            }),
        _ => Ok(config.to_owned()),
    }
}

/// Replaces the config at `path` (temp file + rename) keeping its owner, group, mode and
/// extended attributes (it may hold registry passwords: a `0600` config stays `0600`); a
/// new one is `0644`, as containerd's own.
fn write_config(path: &Path, bytes: &[u8]) -> Result<()> {
    let original = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return write_atomically(path, bytes, 0o644);
        }
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", path.display())),
    };
    let write = || {
        let mut file = wasmoci_fs::AtomicFile::create(path)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.commit_like(&original)
    };
    write().with_context(|| {
        format!(
            "failed to write `{}` with the owner, mode and extended attributes it has",
            path.display()
        )
    })
}

fn summary(
    verb: &str,
    patched: &wasmoci_cli::node::Patched,
    shim_changed: bool,
    config: &Path,
    target: &Path,
) -> String {
    match (patched.changed(), shim_changed) {
        (false, false) => format!(
            "already installed: `{}` is current and `{}` has the `wasmoci` runtime",
            target.display(),
            config.display()
        ),
        (config_changed, shim_changed) => {
            let mut parts = Vec::new();
            if shim_changed {
                parts.push(format!("{verb}install `{}`", target.display()));
            }
            if config_changed {
                parts.push(format!(
                    "{verb}add the `wasmoci` runtime to `{}` (config version {})",
                    config.display(),
                    patched.version
                ));
            }
            parts.join("; ")
        }
    }
}

fn containerd_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join("containerd").is_file())
}
