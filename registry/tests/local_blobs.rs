//! A push reads only what the layout really holds: never a blob through a symlink, a
//! FIFO, a file outside the layout, or bytes of another size or digest; nothing of such
//! a blob reaches the registry.

use std::path::Path;
use wasmoci_registry::client::{Client, ClientOptions, RegistryError};
use wasmoci_registry::{Error, Reference};

use super::{artifact, stored};

#[test]
fn a_push_never_sends_a_blob_the_layout_does_not_really_hold() {
    let a = artifact();
    let secret = b"SECRET-SSH-KEY-MATERIAL".repeat(a.layer.len() / 23 + 1);
    // Each way a layout can be made to hold something else: what the error says.
    type Spoil = fn(&Path, &Path, &[u8]);
    let cases: [(&str, Spoil, &str); 5] = [
        (
            "symlink",
            |blob, outside, secret| {
                std::fs::write(
                    outside,
                    &secret[..std::fs::metadata(blob).unwrap().len() as usize],
                )
                .unwrap();
                std::fs::remove_file(blob).unwrap();
                std::os::unix::fs::symlink(outside, blob).unwrap();
            },
            "is a symbolic link",
        ),
        (
            "fifo",
            |blob, _, _| {
                std::fs::remove_file(blob).unwrap();
                nix::unistd::mkfifo(blob, nix::sys::stat::Mode::S_IRWXU).unwrap();
            },
            "it is not a regular file",
        ),
        (
            "size",
            |blob, _, _| std::fs::write(blob, b"\0asm shorter").unwrap(),
            "bytes, and the manifest says",
        ),
        (
            "content",
            |blob, _, secret| {
                let len = std::fs::metadata(blob).unwrap().len() as usize;
                std::fs::write(blob, &secret[..len]).unwrap();
            },
            "is corrupt: its content hashes to",
        ),
        (
            "directory",
            |blob, outside, _| {
                // `blobs/sha256` itself a symlink to a copy elsewhere.
                let dir = blob.parent().unwrap();
                let elsewhere = outside.with_extension("dir");
                std::fs::rename(dir, &elsewhere).unwrap();
                std::os::unix::fs::symlink(&elsewhere, dir).unwrap();
            },
            "is a symbolic link",
        ),
    ];
    for (name, spoil, said) in cases {
        let (dir, layout, stored) = stored(&a);
        let layer = stored.manifest().unwrap().layers[0].clone();
        let outside = dir.path().join("secret.txt");
        spoil(&layout.blob_path(&layer.digest), &outside, &secret);
        // No layout here remembers a source: nothing is mounted, everything uploaded.
        let (registry, seen) = super::mount::upload_sink(201);
        let dest: Reference = format!("{}/leak/app:1", registry.addr).parse().unwrap();
        let err = Client::new(ClientOptions::default())
            .unwrap()
            .push(&layout, &stored, &dest)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                &err,
                RegistryError::Layout(Error::BlobRefused { .. } | Error::BlobCorrupt { .. })
            ) && text.contains(said)
                // The layer (or, with the whole directory elsewhere, maybe the config).
                && (text.contains(&layer.digest.hex()) || name == "directory"),
            "{name}: {text}"
        );
        // Nothing of the layer went up: its upload never started (the config's may have).
        let seen = seen.lock().unwrap();
        let layer_puts = seen
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains(&layer.digest.to_string()))
            .count();
        assert_eq!(layer_puts, 0, "{name}: {seen:?}");
        assert!(
            !seen
                .iter()
                .any(|r| r.method == "PATCH"
                    || (r.method == "PUT" && r.path.contains("/manifests/"))),
            "{name}: {seen:?}"
        );
    }
}
