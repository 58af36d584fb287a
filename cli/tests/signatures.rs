//! Signatures on a real registry, both ways with cosign 2.5 (Debian trixie's) and, for a
//! newer verifier, Debian sid's cosign: keys made by `cosign generate-key-pair`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasmoci_registry::client::{Client, ClientOptions};
use wasmoci_registry::cosign::simple;
use wasmoci_registry::{Layout, LayoutRef, Reference};
use wasmoci_spec::{Blob, Digest};
use wasmoci_testdata::registry::TestRegistry;

use crate::support::{build_hello, ok, unpacked_tool, wasmoci};

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

/// cosign, with its own home and the key's password.
fn cosign(bin: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .expect("failed to start cosign")
}

fn succeeded(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A key pair made by cosign in `dir/NAME.key`, `dir/NAME.pub`.
fn key_pair(bin: &Path, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    succeeded(
        cosign(bin, &home, &["generate-key-pair"]),
        "cosign generate-key-pair",
    );
    (home.join("cosign.key"), home.join("cosign.pub"))
}

fn cosign_verify(bin: &Path, home: &Path, public: &Path, reference: &str) -> Output {
    cosign(
        bin,
        home,
        &[
            "verify",
            "--key",
            public.to_str().unwrap(),
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            reference,
        ],
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn signatures_interoperate_with_cosign_both_ways() {
    let Some(cosign_bin) = unpacked_tool("cosign-2.5/usr/bin/cosign") else {
        return;
    };
    let Some(newer) = unpacked_tool("cosign-sid/usr/bin/cosign") else {
        return;
    };
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (home, keys) = (tmp.path().join("home"), tmp.path().join("keys"));
    build_hello(&home);
    let tagged = format!("{}/wasm/hello:1.0.0", registry.addr);
    ok(wasmoci(&home).args(["push", "-q", "hello:1.0.0", &tagged]));
    let (ours_key, ours_pub) = key_pair(&cosign_bin, &keys, "ours");
    let (theirs_key, theirs_pub) = key_pair(&cosign_bin, &keys, "theirs");
    let (_, stranger_pub) = key_pair(&cosign_bin, &keys, "stranger");

    // Unsigned: refused, exit 1, naming the digest.
    let unsigned = wasmoci(&home)
        .args(["verify", &tagged, "--key"])
        .arg(&ours_pub)
        .output()
        .unwrap();
    assert_eq!(unsigned.status.code(), Some(1), "{}", stderr(&unsigned));
    assert!(
        stderr(&unsigned).contains("is not signed"),
        "{}",
        stderr(&unsigned)
    );

    // Ours, accepted by cosign (2.5 and sid's).
    let signed = json(&ok(wasmoci(&home)
        .env("COSIGN_PASSWORD", "pw")
        .args(["sign", &tagged, "--key"])
        .arg(&ours_key)
        .arg("--json")));
    let digest = signed["digest"].as_str().unwrap().to_owned();
    assert_eq!(signed["signatures"], 1);
    assert_eq!(signed["already_signed"], false);
    for bin in [&cosign_bin, &newer] {
        succeeded(
            cosign_verify(bin, &keys, &ours_pub, &tagged),
            "cosign verify of our signature",
        );
    }
    // Signing again with the same key writes nothing.
    let again = json(&ok(wasmoci(&home)
        .env("COSIGN_PASSWORD", "pw")
        .args(["sign", &tagged, "--key"])
        .arg(&ours_key)
        .arg("--json")));
    assert_eq!(again["already_signed"], true);
    assert_eq!(again["signature_manifest"], signed["signature_manifest"]);

    // Theirs, appended by cosign beside ours: both verify, with us and with cosign.
    succeeded(
        cosign(
            &cosign_bin,
            &keys,
            &[
                "sign",
                "-y",
                "--key",
                theirs_key.to_str().unwrap(),
                "--tlog-upload=false",
                "--allow-http-registry",
                &format!("{}/wasm/hello@{digest}", registry.addr),
            ],
        ),
        "cosign sign",
    );
    let both = json(&ok(wasmoci(&home)
        .args(["verify", &tagged, "--key"])
        .arg(&ours_pub)
        .arg("--key")
        .arg(&theirs_pub)
        .arg("--json")));
    assert_eq!(both["verified"].as_array().unwrap().len(), 2, "{both}");
    assert_eq!(both["digest"], digest.as_str());
    succeeded(
        cosign_verify(&cosign_bin, &keys, &ours_pub, &tagged),
        "cosign verify of ours after theirs",
    );

    // Another key: refused, naming the digest and the key.
    let stranger = wasmoci(&home)
        .args(["verify", &tagged, "--key"])
        .arg(&stranger_pub)
        .output()
        .unwrap();
    assert_eq!(stranger.status.code(), Some(1), "{}", stderr(&stranger));
    let text = stderr(&stranger);
    assert!(
        text.contains(&format!("no valid signature of `{digest}`"))
            && text.contains(stranger_pub.to_str().unwrap())
            && text.contains("is not signed by key `sha256:"),
        "{text}"
    );

    // A signature for another digest, moved to this one's tag: refused.
    let client = Client::new(ClientOptions::default()).unwrap();
    let repo: Reference = format!("{}/wasm/hello", registry.addr).parse().unwrap();
    let digest: Digest = digest.parse().unwrap();
    ok(wasmoci(&home)
        .args(["build"])
        .arg(crate::support::fixtures().join("hello-p1.wat"))
        .args(["--tag", "other:1.0.0", "-a", "org.example=other"]));
    let other_tagged = format!("{}/wasm/hello:other", registry.addr);
    ok(wasmoci(&home).args(["push", "-q", "other:1.0.0", &other_tagged]));
    let (other_bytes, other_digest, _) = client.manifest(&repo.with_tag("other")).unwrap();
    assert_ne!(other_digest, digest, "{}", other_bytes.len());
    let real = client
        .manifest(&repo.with_tag(&simple::signature_tag(&digest)))
        .unwrap()
        .0;
    let real = wasmoci_spec::ImageManifest::from_json(&real).unwrap();
    let signature = real.layers[0]
        .annotation(simple::SIGNATURE_ANNOTATION)
        .unwrap()
        .to_owned();
    let payload = client.blob(&repo, &real.layers[0].digest).unwrap();
    push_signatures(&client, &repo, &other_digest, &payload, &signature);
    let moved = wasmoci(&home)
        .args(["verify", &other_tagged, "--key"])
        .arg(&ours_pub)
        .output()
        .unwrap();
    assert_eq!(moved.status.code(), Some(1), "{}", stderr(&moved));
    assert!(
        stderr(&moved).contains(&format!("signs `{digest}`, another manifest")),
        "{}",
        stderr(&moved)
    );

    // A tampered payload under the real signature: refused.
    let tampered = String::from_utf8(payload.clone())
        .unwrap()
        .replace(&digest.to_string(), &other_digest.to_string());
    push_signatures(
        &client,
        &repo,
        &other_digest,
        tampered.as_bytes(),
        &signature,
    );
    let forged = wasmoci(&home)
        .args(["verify", &other_tagged, "--key"])
        .arg(&ours_pub)
        .output()
        .unwrap();
    assert_eq!(forged.status.code(), Some(1), "{}", stderr(&forged));
    assert!(
        stderr(&forged).contains("is not signed by key"),
        "{}",
        stderr(&forged)
    );
    // cosign agrees.
    assert!(
        !cosign_verify(&cosign_bin, &keys, &ours_pub, &other_tagged)
            .status
            .success()
    );

    // A signature layer without its annotation: refused, and said so.
    push_unannotated(&client, &repo, &other_digest, &payload);
    let bare = wasmoci(&home)
        .args(["verify", &other_tagged, "--key"])
        .arg(&ours_pub)
        .output()
        .unwrap();
    assert_eq!(bare.status.code(), Some(1), "{}", stderr(&bare));
    assert!(
        stderr(&bare).contains("has no `dev.cosignproject.cosign/signature` annotation"),
        "{}",
        stderr(&bare)
    );

    // A `.sig` tag holding something else is not appended to.
    let sig_tag = format!(
        "{}/wasm/hello:{}",
        registry.addr,
        simple::signature_tag(&other_digest)
    );
    ok(wasmoci(&home).args(["push", "-q", "hello:1.0.0", &sig_tag]));
    let refused = wasmoci(&home)
        .env("COSIGN_PASSWORD", "pw")
        .args(["sign", &other_tagged, "--key"])
        .arg(&ours_key)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("does not hold cosign signatures: a layer is `application/wasm`"),
        "{}",
        stderr(&refused)
    );

    // A wrong password names the key file; nothing is signed.
    let wrong = wasmoci(&home)
        .env("COSIGN_PASSWORD", "not it")
        .args(["sign", &tagged, "--key"])
        .arg(&theirs_key)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains(&format!(
            "failed to load the key `{}`",
            theirs_key.display()
        )) && stderr(&wrong).contains("wrong password"),
        "{}",
        stderr(&wrong)
    );
}

/// Replaces the signature manifest of `digest` with one layer of `payload` that carries
/// no signature annotation.
fn push_unannotated(client: &Client, repo: &Reference, digest: &Digest, payload: &[u8]) {
    let built = simple::append(None, &Blob::hash(payload), "unused");
    let mut manifest = wasmoci_spec::ImageManifest::from_json(&built.manifest).unwrap();
    manifest.layers[0].annotations = None;
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path());
    let tag = simple::signature_tag(digest);
    let stored = layout
        .store(
            &manifest.to_json(),
            &[Blob::hash(&built.config), Blob::hash(payload)],
            Some(&tag),
        )
        .unwrap();
    let stored = layout.resolve(&LayoutRef::Digest(stored.digest)).unwrap();
    client.push(&layout, &stored, &repo.with_tag(&tag)).unwrap();
}

/// Replaces the signature manifest of `digest` with one signature: `signature` over
/// `payload` (whatever they are).
fn push_signatures(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
    payload: &[u8],
    signature: &str,
) {
    let built = simple::append(None, &Blob::hash(payload), signature);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path());
    let tag = simple::signature_tag(digest);
    let stored = layout
        .store(
            &built.manifest,
            &[Blob::hash(&built.config), Blob::hash(payload)],
            Some(&tag),
        )
        .unwrap();
    let stored = layout.resolve(&LayoutRef::Digest(stored.digest)).unwrap();
    client.push(&layout, &stored, &repo.with_tag(&tag)).unwrap();
}

#[test]
fn publish_signs_and_attaches_what_it_pushed() {
    let Some(cosign_bin) = unpacked_tool("cosign-2.5/usr/bin/cosign") else {
        return;
    };
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry/src/cosign/testdata");
    let sbom = tmp.path().join("bom.json");
    std::fs::write(&sbom, br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#).unwrap();
    let dest = format!("{}/wasm/published:1.0.0", registry.addr);
    let receipt = json(&ok(wasmoci(&home)
        .env("COSIGN_PASSWORD", "")
        .arg("publish")
        .arg(crate::support::fixtures().join("hello-p1.wat"))
        .arg(&dest)
        .arg("--sign")
        .arg(keys.join("cosign-empty.key"))
        .arg("--sbom")
        .arg(&sbom)
        .arg("--json")));
    let digest = receipt["digest"].as_str().unwrap();
    assert_eq!(receipt["signature"]["digest"], digest);
    assert_eq!(
        receipt["referrers"][0]["artifact_type"],
        "application/vnd.cyclonedx+json"
    );
    let discovered = json(&ok(wasmoci(&home).args(["discover", &dest, "--json"])));
    assert_eq!(
        discovered["referrers"][0]["digest"],
        receipt["referrers"][0]["digest"]
    );
    let cosign_home = tmp.path().join("cosign");
    std::fs::create_dir_all(&cosign_home).unwrap();
    succeeded(
        cosign_verify(
            &cosign_bin,
            &cosign_home,
            &keys.join("cosign-empty.pub"),
            &dest,
        ),
        "cosign verify of what publish signed",
    );
    // A wrong password stops publish before anything is built or pushed.
    let wrong = wasmoci(&home)
        .env("COSIGN_PASSWORD", "wrong")
        .arg("publish")
        .arg(crate::support::fixtures().join("hello-p1.wat"))
        .arg(format!("{}/wasm/never:1.0.0", registry.addr))
        .arg("--sign")
        .arg(keys.join("cosign-password.key"))
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    let tags = wasmoci(&home)
        .args(["tags", &format!("{}/wasm/never", registry.addr)])
        .output()
        .unwrap();
    assert_eq!(tags.status.code(), Some(4), "{}", stderr(&tags));
}

/// A project whose one dependency, `sig:dep`, is published (and signed with `key`, when
/// given) at `addr`, locked.
fn signed_dependency(home: &Path, dir: &Path, addr: &str, key: Option<&Path>) {
    let mut publish = wasmoci(home);
    publish
        .env("COSIGN_PASSWORD", "")
        .arg("publish")
        .arg(crate::support::fixtures().join("hello.wasm"))
        .arg(format!("{addr}/sig/dep:1.0.0"));
    if let Some(key) = key {
        publish.arg("--sign").arg(key);
    }
    ok(&mut publish);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(
        crate::support::fixtures().join("hello.wasm"),
        dir.join("app.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.join("wasmoci.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"1.0.0\"\n[build]\nwasm = \"app.wasm\"\n[dependencies]\n\"sig:dep\" = \"1\"\n[registries]\nsig = \"{addr}/\"\n"
        ),
    )
    .unwrap();
    ok(wasmoci(home)
        .args(["dependency", "update", "--project"])
        .arg(dir));
}

#[test]
fn dependency_build_refuses_a_locked_dependency_without_a_valid_signature() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry/src/cosign/testdata");
    let app = tmp.path().join("app");
    signed_dependency(
        &home,
        &app,
        &registry.addr,
        Some(&keys.join("cosign-empty.key")),
    );
    let build = |public: &str| {
        wasmoci(&home)
            .args(["dependency", "build", "--project"])
            .arg(&app)
            .arg("--verify-key")
            .arg(keys.join(public))
            .output()
            .unwrap()
    };
    let signed = build("cosign-empty.pub");
    assert!(signed.status.success(), "{}", stderr(&signed));
    let other = build("cosign-password.pub");
    assert_eq!(other.status.code(), Some(1), "{}", stderr(&other));
    let text = stderr(&other);
    assert!(
        text.contains("locked dependency `sig:dep@1.0.0`")
            && text.contains("has no valid signature by")
            && text.contains("cosign-password.pub"),
        "{text}"
    );
    // Vendored with --referrers, the signature travels into the layout.
    ok(wasmoci(&home)
        .args(["dependency", "vendor", "--referrers", "--project"])
        .arg(&app));
    let index = std::fs::read_to_string(app.join("vendor/index.json")).unwrap();
    assert!(index.contains(".sig\""), "{index}");
    // Offline, signatures cannot be checked: said, not skipped.
    let offline = wasmoci(&home)
        .args(["dependency", "build", "--offline", "--project"])
        .arg(&app)
        .arg("--verify-key")
        .arg(keys.join("cosign-empty.pub"))
        .output()
        .unwrap();
    assert_eq!(offline.status.code(), Some(2), "{}", stderr(&offline));
    assert!(
        stderr(&offline).contains("drop `--offline`"),
        "{}",
        stderr(&offline)
    );
}
