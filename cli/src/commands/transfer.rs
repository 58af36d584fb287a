//! `wasmoci push` and `wasmoci pull`.

use std::io::Read;
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
    /// Skip TLS certificate verification
    #[arg(long)]
    insecure: bool,
    /// Trust the PEM certificates in FILE (a private CA)
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// No progress bars (there are none when stderr is not a terminal either)
    #[arg(short, long)]
    quiet: bool,
}

impl RegistryArgs {
    pub(crate) fn client(&self) -> Result<Client> {
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
        let client = Client::new(ClientOptions {
            plain_http: self.plain_http,
            credential,
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            ..ClientOptions::default()
        })?;
        Ok(match crate::progress::bars(self.quiet) {
            Some(bars) => client.with_progress(bars),
            None => client,
        })
    }
}

const PUSH_HELP: &str = "\
Uploads the blobs the registry lacks (streamed, hashed on the way), then the manifest. A
file or project directory is built first, exactly as `wasmoci build` would.
Prints `DEST@sha256:…`. Credentials: `--username` + `--password-stdin`, then
`WASMOCI_REGISTRY_USERNAME`/`WASMOCI_REGISTRY_PASSWORD`, then docker's `config.json`.

Examples:
  wasmoci push hello:0.1.0 ghcr.io/acme/hello:0.1.0
  wasmoci push oci:out:app:1.0.0 localhost:5000/app:1.0.0 --json
  wasmoci push . ghcr.io/acme/app:1.0.0";

/// Push a stored artifact to a registry
#[derive(Debug, clap::Args)]
#[command(after_help = PUSH_HELP)]
pub(crate) struct PushArgs {
    /// `NAME:TAG` in the store, `oci:DIR[:TAG|@DIGEST]`, a `.wasm`/`.wat` file or a
    /// project directory (files and projects are built on the fly, as `wasmoci build`)
    #[arg(value_name = "SOURCE")]
    source: String,
    /// `HOST/REPO[:TAG]`
    #[arg(value_name = "DEST")]
    dest: String,
    /// Push the image-compat format instead: the wasm as a file in an ordinary container
    /// image, for containerd before 1.6.25/1.7.7 (as `wasmoci convert`)
    #[arg(long)]
    as_image: bool,
    /// With `--as-image`: where the wasm goes in the image [default: `/` + the layer's
    /// title, or `/app.wasm`]
    #[arg(long, value_name = "PATH", requires = "as_image")]
    path: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object with every digest and size
    #[arg(long)]
    json: bool,
}

pub(crate) fn push(args: PushArgs) -> Result<Outcome> {
    let dest: Reference = args.dest.parse()?;
    if dest.digest.is_some() {
        bail!(
            "invalid push destination `{dest}`: name a tag (`HOST/REPO:TAG`); a digest names content already in the registry"
        );
    }
    let dest = if dest.tag.is_none() {
        dest.with_tag("latest")
    } else {
        dest
    };
    let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
    let Some((layout, stored)) = source_artifact(&args.source, scratch.path())? else {
        return Ok(Outcome::Problems);
    };
    let (layout, stored) = if args.as_image {
        let converted = Layout::at(scratch.path().join("image"));
        let stored = convert_into(
            &layout,
            &stored,
            &args.source,
            args.path.as_deref(),
            &converted,
            "image",
        )?;
        (converted, stored)
    } else {
        (layout, stored)
    };
    plain_http_note(&dest, &args.registry);
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
            "mounted": blobs(&report.mounted),
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

/// The artifact to push: a stored one, or one built from a file or project into
/// `scratch` (`None` when the project's policy refused it).
fn source_artifact(
    text: &str,
    scratch: &std::path::Path,
) -> Result<Option<(Layout, wasmoci_registry::StoredArtifact)>> {
    let path = std::path::Path::new(text);
    let buildable =
        path.is_dir() || matches!(text.parse::<ArtifactRef>(), Ok(ArtifactRef::File(_)));
    let (layout, reference) = if buildable {
        let args = super::build::BuildArgs::for_path(path.to_owned(), Some(scratch.join("layout")));
        let Some(built) = super::build::build(&args)? else {
            return Ok(None);
        };
        output::status(&built.summary);
        (built.layout, LayoutRef::Tag(built.tag))
    } else {
        match text.parse::<ArtifactRef>()? {
            ArtifactRef::Layout { dir, reference } => (Layout::open(dir)?, reference),
            ArtifactRef::Store(reference) => (super::store_layout()?, reference),
            ArtifactRef::File(_) => unreachable!("files are built above"),
            ArtifactRef::Registry(r) => bail!(
                "`{r}` is in a registry: pushing from a registry is `wasmoci copy`, which is not supported yet; pull it first"
            ),
        }
    };
    let stored = layout
        .resolve(&reference)
        .with_context(|| format!("failed to read `{text}`"))?;
    Ok(Some((layout, stored)))
}

/// Streams a blob of `layout` to `path` (readable by all), checking its digest on the way;
/// nothing is left at `path` unless it matches.
fn write_blob_to(
    layout: &Layout,
    digest: &wasmoci_spec::Digest,
    path: &std::path::Path,
) -> Result<()> {
    let fail = || format!("failed to write `{}`", path.display());
    let source = std::fs::File::open(layout.blob_path(digest))
        .with_context(|| format!("failed to read blob `{digest}`"))?;
    let mut file = wasmoci_fs::AtomicFile::create(path).with_context(fail)?;
    let mut reader = wasmoci_spec::HashingReader::new(source);
    std::io::copy(&mut reader, &mut file).with_context(fail)?;
    let (actual, _) = reader.finish();
    if actual != *digest {
        bail!(
            "blob `{digest}` in `{}` is corrupt: it hashes to `{actual}`",
            layout.root().display()
        );
    }
    file.commit(0o644).with_context(fail)?;
    Ok(())
}

/// Says on stderr when a registry is reached without TLS.
pub(crate) fn plain_http_note(r: &Reference, args: &RegistryArgs) {
    let tls_asked = args.insecure || args.ca_file.is_some();
    if args.plain_http || (r.is_loopback() && !tls_asked) {
        output::note(&format!("talking plain HTTP to `{}`", r.registry));
    }
}

/// The tag a pulled artifact gets in a layout: its full reference, without a digest
/// (one pulled by digest alone is found by its digest, untagged).
pub(crate) fn store_tag(reference: &Reference) -> Option<String> {
    if reference.digest.is_some() && reference.tag.is_none() {
        return None;
    }
    let tag = reference.tag.clone().unwrap_or_else(|| "latest".into());
    Some(reference.with_tag(&tag).to_string())
}

pub(crate) fn pull(args: PullArgs) -> Result<Outcome> {
    let source: Reference = args.reference.parse()?;
    plain_http_note(&source, &args.registry);
    let layout = match &args.layout {
        Some(dir) => Layout::at(dir),
        None => super::store_layout()?,
    };
    let client = args.registry.client()?;
    let tag = store_tag(&source);
    let report = client
        .pull(&source, &layout, tag.as_deref())
        .with_context(|| format!("failed to pull `{source}`"))?;
    if let Some(path) = &args.output {
        let stored = layout.resolve(&LayoutRef::Digest(report.manifest.digest))?;
        let manifest: ImageManifest = stored.manifest()?;
        let (_, layer) = manifest
            .wasm_layers()
            .next()
            .context("the artifact has no wasm layer")?;
        write_blob_to(&layout, &layer.digest, path)?;
    }
    let name = tag.unwrap_or_else(|| {
        Reference {
            tag: None,
            digest: None,
            ..source.clone()
        }
        .to_string()
    });
    let reference = format!("{name}@{}", report.manifest.digest);
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

/// Log in to a registry: check the credentials, then save them in docker's `config.json`
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  echo \"$TOKEN\" | wasmoci login ghcr.io -u me --password-stdin"
)]
pub(crate) struct LoginArgs {
    /// The registry host, e.g. `ghcr.io` or `localhost:5000`
    #[arg(value_name = "HOST")]
    host: String,
    /// User name
    #[arg(short, long, value_name = "USER")]
    username: String,
    /// Read the password (or token) from stdin
    #[arg(long, required = true)]
    password_stdin: bool,
    /// Talk plain HTTP to the registry (loopback registries use it anyway)
    #[arg(long)]
    plain_http: bool,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

pub(crate) fn login(args: LoginArgs) -> Result<Outcome> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("failed to read the password from stdin")?;
    let password = Secret::new(password.trim_end_matches(['\n', '\r']));
    let probe: Reference = format!("{}/library/x", args.host)
        .parse()
        .with_context(|| format!("invalid registry host `{}`", args.host))?;
    let client = Client::new(ClientOptions {
        plain_http: args.plain_http,
        credential: Some((args.username.clone(), password.clone())),
        ..ClientOptions::default()
    })?;
    client
        .check_login(&probe)
        .with_context(|| format!("failed to log in to `{}`", args.host))?;
    let path =
        wasmoci_registry::auth::docker_config::save(&probe.registry, &args.username, &password)?;
    if args.json {
        output::json(&json!({ "host": args.host, "config": path }));
    } else {
        output::status(&format!(
            "logged in to `{}`; credentials saved in `{}`",
            args.host,
            path.display()
        ));
    }
    Ok(Outcome::Ok)
}

/// Log out of a registry: remove its credentials from docker's `config.json`
#[derive(Debug, clap::Args)]
pub(crate) struct LogoutArgs {
    /// The registry host
    #[arg(value_name = "HOST")]
    host: String,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

pub(crate) fn logout(args: LogoutArgs) -> Result<Outcome> {
    let probe: Reference = format!("{}/library/x", args.host)
        .parse()
        .with_context(|| format!("invalid registry host `{}`", args.host))?;
    let removed = wasmoci_registry::auth::docker_config::remove(&probe.registry)?;
    if args.json {
        output::json(&json!({ "host": args.host, "removed": removed }));
    } else if removed {
        output::status(&format!("logged out of `{}`", args.host));
    } else {
        output::status(&format!("no saved login for `{}`", args.host));
    }
    Ok(Outcome::Ok)
}

/// List every tag of a repository (all pages)
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wasmoci tags ghcr.io/acme/hello\n  wasmoci tags localhost:5000/app --semver --json"
)]
pub(crate) struct TagsArgs {
    /// `HOST/REPO`
    #[arg(value_name = "REPO")]
    repository: String,
    /// Only semver tags, sorted by version
    #[arg(long)]
    semver: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON array
    #[arg(long)]
    json: bool,
}

pub(crate) fn tags(args: TagsArgs) -> Result<Outcome> {
    let repo: Reference = args.repository.parse()?;
    plain_http_note(&repo, &args.registry);
    let mut tags = args
        .registry
        .client()?
        .tags(&repo)
        .with_context(|| format!("failed to list the tags of `{}`", args.repository))?;
    if args.semver {
        let mut versions: Vec<(semver::Version, String)> = tags
            .into_iter()
            .filter_map(|t| {
                semver::Version::parse(t.strip_prefix('v').unwrap_or(&t))
                    .ok()
                    .map(|v| (v, t))
            })
            .collect();
        versions.sort();
        tags = versions.into_iter().map(|(_, t)| t).collect();
    }
    if args.json {
        output::json(&json!(tags));
    } else if !tags.is_empty() {
        output::data(&tags.join("\n"));
    }
    Ok(Outcome::Ok)
}

/// Print a manifest (or, with `--config`, its config) exactly as the registry stores it
#[derive(Debug, clap::Args)]
pub(crate) struct ManifestArgs {
    /// `HOST/REPO[:TAG|@DIGEST]`
    #[arg(value_name = "REF")]
    reference: String,
    /// Print the config blob instead
    #[arg(long)]
    config: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn manifest(args: ManifestArgs) -> Result<Outcome> {
    let r: Reference = args.reference.parse()?;
    plain_http_note(&r, &args.registry);
    let client = args.registry.client()?;
    let (bytes, _, _) = client
        .manifest(&r)
        .with_context(|| format!("failed to read `{}`", args.reference))?;
    let bytes = if args.config {
        let manifest = ImageManifest::from_json(&bytes)?;
        client
            .blob(&r, &manifest.config.digest)
            .with_context(|| format!("failed to read the config of `{}`", args.reference))?
    } else {
        bytes
    };
    output::raw(&bytes);
    Ok(Outcome::Ok)
}

/// Give a manifest in a registry more tags (no blob is copied)
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  wasmoci tag ghcr.io/acme/hello:1.2.3 1.2 1 latest")]
pub(crate) struct TagArgs {
    /// `HOST/REPO[:TAG|@DIGEST]`
    #[arg(value_name = "REF")]
    reference: String,
    /// The new tags
    #[arg(value_name = "NEW_TAG", required = true)]
    tags: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

pub(crate) fn tag(args: TagArgs) -> Result<Outcome> {
    let r: Reference = args.reference.parse()?;
    plain_http_note(&r, &args.registry);
    let client = args.registry.client()?;
    let (bytes, digest, content_type) = client
        .manifest(&r)
        .with_context(|| format!("failed to read `{}`", args.reference))?;
    let media_type = ImageManifest::from_json(&bytes)
        .ok()
        .and_then(|m| m.media_type)
        .unwrap_or(content_type);
    for tag in &args.tags {
        let target = r.with_tag(tag);
        // Validate the tag with the reference grammar before touching the registry.
        let target: Reference = target.to_string().parse()?;
        client
            .put_manifest(&target, &bytes, &media_type)
            .with_context(|| format!("failed to tag `{target}`"))?;
    }
    if args.json {
        output::json(&json!({ "digest": digest.to_string(), "tags": args.tags }));
    } else {
        output::status(&format!("tagged `{digest}` as {} tag(s)", args.tags.len()));
    }
    Ok(Outcome::Ok)
}

/// One end of a copy.
enum Endpoint {
    Registry(Reference),
    Local(Layout, LayoutRef),
}

fn endpoint(text: &str) -> Result<Endpoint> {
    Ok(match text.parse::<ArtifactRef>()? {
        ArtifactRef::Registry(r) => Endpoint::Registry(r.parse()?),
        ArtifactRef::Layout { dir, reference } => Endpoint::Local(Layout::at(dir), reference),
        ArtifactRef::Store(reference) => Endpoint::Local(super::store_layout()?, reference),
        ArtifactRef::File(path) => bail!(
            "`{}` is a file; `copy` moves artifacts between registries and layouts (use `push` to publish a file)",
            path.display()
        ),
    })
}

/// Builds the image-compat form of `stored` (from `layout`) into `into` under `tag`.
fn convert_into(
    layout: &Layout,
    stored: &wasmoci_registry::StoredArtifact,
    source: &str,
    path: Option<&str>,
    into: &Layout,
    tag: &str,
) -> Result<wasmoci_registry::StoredArtifact> {
    use wasmoci_spec::{ImageInput, Timestamp, WasmConfig, annotations, build_image, media_types};
    let manifest = stored.manifest()?;
    if manifest.config.media_type != media_types::WASM_CONFIG_V0 {
        bail!(
            "`{source}` is not a Wasm artifact (its config is `{}`); nothing to convert",
            manifest.config.media_type
        );
    }
    let (_, layer) = manifest
        .wasm_layers()
        .next()
        .with_context(|| format!("`{source}` has no wasm layer"))?;
    let config = WasmConfig::from_json(&layout.read_blob(&manifest.config.digest)?)
        .with_context(|| format!("failed to read the config of `{source}`"))?;
    let wasm = layout.read_blob(&layer.digest)?;
    let path = match path {
        Some(path) => path.to_owned(),
        None => match layer.annotation(annotations::TITLE) {
            Some(title) if title.ends_with(".wasm") && !title.contains('/') => format!("/{title}"),
            _ => "/app.wasm".to_owned(),
        },
    };
    let mut kept = manifest.annotations.clone().unwrap_or_default();
    kept.remove(annotations::REF_NAME);
    let image = build_image(ImageInput {
        wasm: &wasm,
        created: config
            .created
            .unwrap_or_else(|| Timestamp::from_unix_seconds(0).expect("in range")),
        author: config.author.clone(),
        path,
        annotations: kept,
    })
    .with_context(|| format!("failed to convert `{source}`"))?;
    let blobs = [
        (&image.manifest.config, image.config_bytes.as_slice()),
        (&image.manifest.layers[0], image.layer.as_slice()),
    ];
    into.store(&image.manifest_bytes, &blobs, Some(tag))?;
    Ok(into.resolve(&LayoutRef::Digest(image.manifest_digest))?)
}

const CONVERT_HELP: &str = "\
Puts the wasm of an artifact into an ordinary container image: one uncompressed tar layer
holding the `.wasm`, an OCI image config with `architecture: wasm`, `os: wasip1|wasip2`
and an `Entrypoint` naming the file. containerd before 1.6.25/1.7.7 cannot pull Wasm
artifacts but pulls this; the wasmoci shim runs it from the container's root filesystem,
and pods need no `command:`. The result keeps the artifact's `created` time, so the same
artifact always converts to the same digest. Prints `DEST@DIGEST`.

Examples:
  wasmoci convert hello:0.1.0 hello:0.1.0-image
  wasmoci convert hello:0.1.0 localhost:5000/hello:0.1.0-image
  wasmoci convert oci:out:app:1.0.0 oci:out:app:1.0.0-image --path /bin/app.wasm";

/// Convert an artifact to the image-compat format (wasm in a container image)
#[derive(Debug, clap::Args)]
#[command(after_help = CONVERT_HELP)]
pub(crate) struct ConvertArgs {
    /// `NAME:TAG` in the store, `oci:DIR[:TAG|@DIGEST]`, a `.wasm`/`.wat` file or a project
    #[arg(value_name = "SOURCE")]
    source: String,
    /// `NAME:TAG` in the store, `oci:DIR:TAG` or `HOST/REPO[:TAG]` (pushed)
    #[arg(value_name = "DEST")]
    dest: String,
    /// Where the wasm goes in the image [default: `/` + the layer's title, or `/app.wasm`]
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

pub(crate) fn convert(args: ConvertArgs) -> Result<Outcome> {
    let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
    let Some((layout, stored)) = source_artifact(&args.source, scratch.path())? else {
        return Ok(Outcome::Problems);
    };
    let (digest, reference) = match endpoint(&args.dest)? {
        Endpoint::Local(into, reference) => {
            let tag = dest_tag(&reference, &args.dest)?;
            let converted = convert_into(
                &layout,
                &stored,
                &args.source,
                args.path.as_deref(),
                &into,
                &tag,
            )?;
            let digest = converted.descriptor.digest;
            (digest, format!("{}@{digest}", args.dest))
        }
        Endpoint::Registry(dest) => {
            let dest = if dest.tag.is_none() && dest.digest.is_none() {
                dest.with_tag("latest")
            } else {
                dest
            };
            if dest.digest.is_some() {
                bail!("invalid destination `{dest}`: name a tag, not a digest");
            }
            let into = Layout::at(scratch.path().join("image"));
            let converted = convert_into(
                &layout,
                &stored,
                &args.source,
                args.path.as_deref(),
                &into,
                "image",
            )?;
            plain_http_note(&dest, &args.registry);
            let report = args
                .registry
                .client()?
                .push(&into, &converted, &dest)
                .with_context(|| format!("failed to push `{}` to `{dest}`", args.source))?;
            let digest = report.digest.unwrap_or(converted.descriptor.digest);
            (digest, format!("{dest}@{digest}"))
        }
    };
    if args.json {
        output::json(&json!({
            "source": args.source,
            "reference": reference,
            "digest": digest.to_string(),
        }));
    } else {
        output::data(&reference);
    }
    Ok(Outcome::Ok)
}

const COPY_HELP: &str = "\
Copies the manifest and its blobs as they are, so the digest stays the same. Between two
repositories of one registry, blobs are mounted rather than uploaded.

Examples:
  wasmoci copy ghcr.io/acme/app:1.0.0 registry.internal:5000/mirror/app:1.0.0
  wasmoci copy ghcr.io/acme/app:1.0.0 oci:vendor:app:1.0.0
  wasmoci copy oci:vendor:app:1.0.0 localhost:5000/app:1.0.0";

/// Copy an artifact between registries and layouts, keeping its digest
#[derive(Debug, clap::Args)]
#[command(after_help = COPY_HELP)]
pub(crate) struct CopyArgs {
    /// `HOST/REPO[:TAG|@DIGEST]`, `oci:DIR[:TAG|@DIGEST]` or `NAME:TAG` in the store
    #[arg(value_name = "SRC")]
    source: String,
    /// `HOST/REPO[:TAG]`, `oci:DIR:TAG` or `NAME:TAG` in the store
    #[arg(value_name = "DST")]
    dest: String,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
}

fn dest_tag(reference: &LayoutRef, source: &str) -> Result<String> {
    match reference {
        LayoutRef::Tag(tag) => Ok(tag.clone()),
        LayoutRef::Only => Ok(source.to_owned()),
        LayoutRef::Digest(_) => bail!("a copy destination needs a tag, not a digest"),
    }
}

pub(crate) fn copy(args: CopyArgs) -> Result<Outcome> {
    let client = args.registry.client()?;
    let mut mounted = 0;
    let digest = match (endpoint(&args.source)?, endpoint(&args.dest)?) {
        (Endpoint::Registry(src), Endpoint::Registry(dst)) => {
            let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
            let layout = Layout::at(scratch.path());
            let pulled = client
                .pull(&src, &layout, None)
                .with_context(|| format!("failed to read `{src}`"))?;
            let stored = layout.resolve(&LayoutRef::Digest(pulled.manifest.digest))?;
            let pushed = client
                .push_from(&layout, &stored, &dst, Some(&src))
                .with_context(|| format!("failed to write `{dst}`"))?;
            mounted = pushed.mounted.len();
            pulled.manifest.digest
        }
        (Endpoint::Registry(src), Endpoint::Local(layout, reference)) => {
            let tag = dest_tag(&reference, &src.to_string())?;
            client
                .pull(&src, &layout, Some(&tag))
                .with_context(|| format!("failed to copy `{src}`"))?
                .manifest
                .digest
        }
        (Endpoint::Local(layout, reference), Endpoint::Registry(dst)) => {
            let stored = layout
                .resolve(&reference)
                .with_context(|| format!("failed to read `{}`", args.source))?;
            client
                .push(&layout, &stored, &dst)
                .with_context(|| format!("failed to write `{dst}`"))?;
            stored.descriptor.digest
        }
        (Endpoint::Local(from, reference), Endpoint::Local(to, dst_ref)) => {
            let stored = from
                .resolve(&reference)
                .with_context(|| format!("failed to read `{}`", args.source))?;
            let manifest = stored.manifest()?;
            let mut descriptors = vec![manifest.config.clone()];
            descriptors.extend(manifest.layers.iter().cloned());
            let contents = descriptors
                .iter()
                .map(|d| from.read_blob(&d.digest))
                .collect::<Result<Vec<_>, _>>()?;
            let blobs: Vec<_> = descriptors
                .iter()
                .zip(&contents)
                .map(|(d, b)| (d, b.as_slice()))
                .collect();
            let tag = dest_tag(&dst_ref, &args.source)?;
            to.store(&stored.manifest_bytes, &blobs, Some(&tag))?.digest
        }
    };
    let reference = format!("{}@{digest}", args.dest);
    if args.json {
        output::json(&json!({
            "source": args.source,
            "reference": reference,
            "digest": digest.to_string(),
            "mounted_blobs": mounted,
        }));
    } else {
        output::data(&reference);
    }
    Ok(Outcome::Ok)
}
