//! `wasmoci sign` and `wasmoci verify`: cosign-compatible signatures with a key.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use wasmoci_cli::ops::signatures::{SignReport, VerifyReport, sign, signing_key, verify};
use wasmoci_registry::Reference;

use super::args::RegistryArgs;
use crate::output::{self, Report};

/// The variable cosign reads a private key's password from.
const COSIGN_PASSWORD: &str = "COSIGN_PASSWORD";

const SIGN_HELP: &str = concat!(
    "Signs REF's manifest (a tag is resolved to its digest first) as `cosign sign --key` does:
the simple-signing payload (`docker-reference` REF's repository, `docker-manifest-digest`
its digest), ECDSA P-256 over SHA-256, appended as a layer (the signature in its
`dev.cosignproject.cosign/signature` annotation) to the manifest at tag
`sha256-<hex>.sig`; signatures already there are kept, and signing again with the same key
writes nothing. `cosign verify --key` accepts what this writes, and `wasmoci verify`
accepts what cosign writes.
Offline, like `cosign sign --tlog-upload=false`: no transparency log (Rekor) entry and no
keyless (Fulcio) signing; verify with the public key.
Keys: cosign's encrypted private key (`cosign generate-key-pair`; the password from
`COSIGN_PASSWORD`, else asked for on a terminal), or an unencrypted PKCS#8 or SEC1 P-256
PEM key.
Prints `HOST/REPO:sha256-<hex>.sig@sha256:…`, the signature manifest.

Examples:
  COSIGN_PASSWORD=… wasmoci sign ghcr.io/acme/hello:0.1.0 --key cosign.key
  wasmoci sign localhost:5000/app@sha256:… --key ci-p256.pem --json",
    super::args::registry_exit_status!()
);

const VERIFY_HELP: &str =
    "Verifies REF's manifest (a tag is resolved to its digest first) as `cosign verify --key`
does, without a transparency log (`--insecure-ignore-tlog`): at least one signature at tag
`sha256-<hex>.sig` must verify with one of the keys over its payload, and the payload must
name REF's digest. Prints one line per valid signature: the payload digest, the key and the
repository the payload names.

Examples:
  wasmoci verify ghcr.io/acme/hello:0.1.0 --key cosign.pub
  wasmoci verify localhost:5000/app@sha256:… --key team-a.pub --key team-b.pub --json

Exit status:
  0  at least one valid signature
  1  none: unsigned, signed by other keys, for another digest, or tampered (each listed)
  2  usage error, or something failed here (a key file)
  4  the registry refused us (unauthorized, denied, not found)
  5  the transfer failed (unreachable, TLS, a digest mismatch, rate-limited, another
     registry error)";

/// Sign an artifact in a registry with a key, as cosign does (no transparency log)
#[derive(Debug, clap::Args)]
#[command(after_help = SIGN_HELP)]
pub(crate) struct SignArgs {
    /// `HOST/REPO:TAG` or `HOST/REPO@DIGEST`
    #[arg(value_name = "REF")]
    reference: String,
    /// The private key (cosign's encrypted key, or PKCS#8/SEC1 PEM)
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

/// Verify an artifact's cosign signatures with public keys (no transparency log)
#[derive(Debug, clap::Args)]
#[command(after_help = VERIFY_HELP)]
pub(crate) struct VerifyArgs {
    /// `HOST/REPO:TAG` or `HOST/REPO@DIGEST`
    #[arg(value_name = "REF")]
    reference: String,
    /// A public key (PEM); repeat for several: one valid signature by any of them suffices
    #[arg(long, value_name = "PUB", required = true)]
    key: Vec<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

impl Report for SignReport {
    fn status(&self) -> Option<String> {
        Some(if self.already_signed {
            format!(
                "`{}` is signed by key `{}` already: nothing written",
                self.subject, self.key
            )
        } else {
            format!(
                "signed `{}` with key `{}`: `{}` holds {} signature(s)",
                self.subject, self.key, self.signature_tag, self.signatures
            )
        })
    }
    fn text(&self) -> Option<String> {
        Some(format!(
            "{}@{}",
            self.signature_tag, self.signature_manifest
        ))
    }
}

impl Report for VerifyReport {
    fn status(&self) -> Option<String> {
        Some(format!(
            "verified `{}`: {} valid signature(s)",
            self.subject,
            self.verified.len()
        ))
    }
    fn text(&self) -> Option<String> {
        Some(
            self.verified
                .iter()
                .map(|v| {
                    format!(
                        "{}  key {} ({})  {}",
                        v.payload,
                        v.key,
                        v.key_file.display(),
                        v.docker_reference
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }
}

/// The private key's password: `COSIGN_PASSWORD`, else asked on the terminal (not echoed).
pub(crate) fn password() -> std::io::Result<Vec<u8>> {
    if let Some(value) = std::env::var_os(COSIGN_PASSWORD) {
        return Ok(value.into_encoded_bytes());
    }
    if !std::io::stdin().is_terminal() {
        return Err(std::io::Error::other(format!(
            "the key is encrypted: set `{COSIGN_PASSWORD}` (no terminal to ask on)"
        )));
    }
    super::terminal::read_secret("Enter password for private key: ")
}

pub(crate) fn run_sign(args: SignArgs) -> Result<ExitCode> {
    let subject: Reference = args.reference.parse()?;
    let key = signing_key(&args.key, password)?;
    args.registry.plain_http_note(&subject);
    let client = args.registry.client_writing_to(&subject)?;
    let report = sign(&client, &subject, &key, &args.key)?;
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_verify(args: VerifyArgs) -> Result<ExitCode> {
    let subject: Reference = args.reference.parse()?;
    args.registry.plain_http_note(&subject);
    let client = args.registry.client()?;
    let report = verify(&client, &subject, &args.key)?;
    output::report(&report, args.json);
    Ok(ExitCode::SUCCESS)
}
