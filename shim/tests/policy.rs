//! The node policy through CRI, as kubelet drives it, on containerd 1.7: one containerd
//! whose environment names the policy file, rewritten between pods (each pod's shim reads
//! it at Create). Signatures are made by cosign 2.5 (Debian trixie's); a direct pull
//! from a registry behind htpasswd uses the node's docker credentials.

use super::*;
use crate::cri::{Node, container, fixture};
use crate::support::cri::log_messages;
use crate::support::images::push_artifact;
use wasmoci_registry::auth::Secret;
use wasmoci_registry::client::{Client, ClientOptions};
use wasmoci_registry::{Layout, LayoutRef, Reference};
use wasmoci_spec::{ArtifactInput, build_artifact};
use wasmoci_testdata::registry::TestRegistry;

fn cosign() -> Option<PathBuf> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/cosign-2.5/usr/bin/cosign");
    wasmoci_testdata::registry::require(path.to_str().unwrap()).then_some(path)
}

fn run_cosign(cosign: &Path, home: &Path, args: &[&str]) {
    let out = std::process::Command::new(cosign)
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cosign {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cosign sign` of `reference` with `keys/cosign.key`, offline.
fn cosign_sign(cosign: &Path, keys: &Path, reference: &str) {
    run_cosign(
        cosign,
        keys,
        &[
            "sign",
            "-y",
            "--key",
            "cosign.key",
            "--tlog-upload=false",
            "--allow-http-registry",
            reference,
        ],
    );
}

/// Runs `image` in a new pod and insists that it is refused: CRI's message and the
/// container's log.
fn refused(node: &mut Node, annotations: &[(&str, &str)], image: &str) -> (String, String) {
    let name = format!("refused-{}", node.pods + 1);
    let log_dir = node
        .containerd
        .dir()
        .join("logs")
        .join(format!("pod-{}", node.pods + 1));
    let message = node.start_error(annotations, container(&name, image, &["app.wasm"]));
    // CRI copies the container's stderr into its log on its own time.
    let path = log_dir.join(format!("{name}.log"));
    let mut log = log_messages(&path);
    for _ in 0..50 {
        if !log.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        log = log_messages(&path);
    }
    (message, log)
}

fn the_node_policy_is_enforced_through_cri(containerd: PathBuf) {
    let Some(cosign) = cosign() else {
        return;
    };
    let Some(private) = TestRegistry::start(Some(("node", "s3cret"))) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    // base64("node:s3cret")
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"bm9kZTpzM2NyZXQ="}}}}}}"#,
            private.addr
        ),
    )
    .unwrap();
    let Some(mut node) = Node::start_with(
        containerd.clone(),
        vec![
            ("WASMOCI_NODE_POLICY".into(), policy.display().to_string()),
            ("DOCKER_CONFIG".into(), docker.display().to_string()),
        ],
        Vec::new(),
    ) else {
        return;
    };
    let addr = node.registry.addr.clone();
    let app = push_artifact(&node.registry, "policy/app", &fixture("hello.wasm"));
    // Other content: the same content under two names is allowed by either (containerd
    // 1.7's CRI does not say which name a pod used).
    let outside = push_artifact(&node.registry, "other/app", &fixture("cat.wasm"));
    for image in [&app, &outside] {
        node.pull(image).unwrap();
    }
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    run_cosign(&cosign, &keys, &["generate-key-pair"]);
    let public = keys.join("cosign.pub");
    let write = |text: String| std::fs::write(&policy, text).unwrap();
    let signed_policy = format!(
        "[images]\nallow = [\"{addr}/policy/*\"]\n[signatures]\nkeys = [\"{}\"]\n",
        public.display()
    );

    // Unsigned: refused, with the rule and the digest, in CRI's message and the log.
    write(signed_policy.clone());
    let digest = node.pull(&app).unwrap();
    let (message, log) = refused(&mut node, &[], &app);
    assert!(
        message.contains("wasmoci: refused by node policy: signatures.keys (sha256:")
            && message.contains("is not signed"),
        "{message}"
    );
    assert!(
        log.contains("wasmoci: refused by node policy: signatures.keys"),
        "{log}"
    );

    // Signed by cosign with the allowed key: it runs.
    let (_, manifest_digest, _) = Client::new(ClientOptions::default())
        .unwrap()
        .manifest(&app.parse::<Reference>().unwrap())
        .unwrap();
    cosign_sign(
        &cosign,
        &keys,
        &format!("{addr}/policy/app@{manifest_digest}"),
    );
    let (exited, log) = node.run(&[], container("signed", &app, &["hello.wasm"]));
    assert_eq!(exited.exit_code, 0, "{exited:?} {log} {digest}");
    assert_eq!(log, "hello from wasi:cli/run\n");

    // A repository outside `allow`: refused before any signature is asked for.
    let (message, _) = refused(&mut node, &[], &outside);
    assert!(
        message.contains("refused by node policy: images.allow")
            && message.contains(&format!("`{addr}/other/app` matches none of")),
        "{message}"
    );

    // A component importing a denied interface.
    write(format!(
        "{signed_policy}[components]\ndeny-imports = [\"wasi:cli/*\"]\n"
    ));
    let (message, _) = refused(&mut node, &[], &app);
    assert!(
        message.contains("refused by node policy: components.deny-imports")
            && message.contains("wasi:cli/"),
        "{message}"
    );

    // Only pinned references: a tag is refused.
    write(format!("{signed_policy}[images]\n"));
    let (message, _) = refused(&mut node, &[], &app);
    assert!(
        message.contains("cannot be used"),
        "a duplicate table fails closed: {message}"
    );
    write(signed_policy.replace("[images]\n", "[images]\nrequire-digest = true\n"));
    let (message, _) = refused(&mut node, &[], &app);
    assert!(
        message.contains("refused by node policy: images.require-digest"),
        "{message}"
    );
    // Pulled by its digest only (containerd 1.7's CRI reports an image by its first name,
    // so content also pulled by a tag counts as named by the tag): it runs, once signed.
    let pinned_repo = push_artifact(&node.registry, "policy/pinned", &fixture("exit3.wasm"));
    let (_, pinned_digest, _) = Client::new(ClientOptions::default())
        .unwrap()
        .manifest(&pinned_repo.parse::<Reference>().unwrap())
        .unwrap();
    let pinned_app = format!("{addr}/policy/pinned@{pinned_digest}");
    node.pull(&pinned_app).unwrap();
    cosign_sign(&cosign, &keys, &pinned_app);
    let (exited, log) = node.run(&[], container("pinned", &pinned_app, &["exit3.wasm"]));
    assert_eq!(exited.exit_code, 3, "{exited:?} {log}");

    // A policy that does not parse fails every start closed, naming the file and line.
    write("[images]\nallow = [\"x\"\n".into());
    let (message, log) = refused(&mut node, &[], &app);
    assert!(
        message.contains(&format!(
            "the policy file `{}` cannot be used",
            policy.display()
        )) && message.contains("line 2"),
        "{message}"
    );
    assert!(log.contains("cannot be used"), "{log}");

    // A direct pull from the registry behind htpasswd: with the node's credentials only
    // for the repositories `[direct-pull]` allows.
    let wasm = fixture("exit3.wasm");
    let artifact =
        build_artifact(ArtifactInput::new(&wasm, crate::support::images::created())).unwrap();
    let layout_dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(layout_dir.path());
    let stored = layout
        .store(&artifact.manifest_bytes, &artifact.blobs(), Some("1"))
        .unwrap();
    let stored = layout.resolve(&LayoutRef::Digest(stored.digest)).unwrap();
    let pushed: Reference = format!("{}/team/exit3:1", private.addr).parse().unwrap();
    Client::new(ClientOptions {
        credential: Some(("node".into(), Secret::new("s3cret"))),
        ..ClientOptions::default()
    })
    .unwrap()
    .push(&layout, &stored, &pushed)
    .unwrap();
    let pinned = format!("{}/team/exit3@{}", private.addr, artifact.manifest_digest);
    let direct = format!(
        "[direct-pull]\nallow = [\"{}/team/*\"]\ncredentials = \"node\"\ninsecure-registries = [\"{}\"]\n",
        private.addr, private.addr
    );
    write(direct.clone());
    let (exited, log) = node.run(
        &[("wasmoci.dev/image", pinned.as_str())],
        container("direct", &app, &["exit3.wasm"]),
    );
    assert_eq!(exited.exit_code, 3, "{exited:?} {log}");
    write(direct.replace("credentials = \"node\"", "credentials = \"anonymous\""));
    // The node's store has it now under this name: another digest is asked for.
    let hello = fixture("hello.wasm");
    let other = build_artifact(ArtifactInput::new(
        &hello,
        crate::support::images::created(),
    ))
    .unwrap();
    let stored = layout
        .store(&other.manifest_bytes, &other.blobs(), Some("2"))
        .unwrap();
    let stored = layout.resolve(&LayoutRef::Digest(stored.digest)).unwrap();
    Client::new(ClientOptions {
        credential: Some(("node".into(), Secret::new("s3cret"))),
        ..ClientOptions::default()
    })
    .unwrap()
    .push(
        &layout,
        &stored,
        &format!("{}/team/hello:1", private.addr).parse().unwrap(),
    )
    .unwrap();
    let anonymous = format!("{}/team/hello@{}", private.addr, other.manifest_digest);
    let (message, _) = refused(
        &mut node,
        &[("wasmoci.dev/image", anonymous.as_str())],
        &app,
    );
    assert!(
        message.contains("unauthorized") || message.contains("Unauthorized"),
        "{message}"
    );
}
on_each_containerd!(the_node_policy_is_enforced_through_cri);

/// The runtime's `ConfigPath` option names the policy, over containerd's environment.
fn the_runtime_option_names_the_policy_file(containerd: PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (open, strict) = (dir.path().join("open.toml"), dir.path().join("strict.toml"));
    std::fs::write(&open, "").unwrap();
    std::fs::write(&strict, "[images]\nallow = [\"nowhere.example/*\"]\n").unwrap();
    let Some(mut node) = Node::start_with(
        containerd.clone(),
        vec![("WASMOCI_NODE_POLICY".into(), open.display().to_string())],
        vec![("ConfigPath".into(), strict.display().to_string())],
    ) else {
        return;
    };
    let app = push_artifact(&node.registry, "option/app", &fixture("hello.wasm"));
    node.pull(&app).unwrap();
    let (message, log) = refused(&mut node, &[], &app);
    assert!(
        message.contains("refused by node policy: images.allow")
            && message.contains("nowhere.example/*"),
        "{message}"
    );
    assert!(
        log.contains("refused by node policy: images.allow"),
        "{log}"
    );
    // The option's file gone: a named file that is missing fails closed.
    std::fs::remove_file(&strict).unwrap();
    let (message, _) = refused(&mut node, &[], &app);
    assert!(
        message.contains(&format!(
            "the policy file `{}` cannot be used",
            strict.display()
        )),
        "{message}"
    );
}
on_each_containerd!(the_runtime_option_names_the_policy_file);
