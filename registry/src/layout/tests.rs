//! Storing, resolving and the atomicity of a failed write.

use super::*;
use wasmoci_spec::Blob;

fn descriptor(bytes: &[u8]) -> Descriptor {
    Descriptor::for_bytes(media_types::WASM_LAYER, bytes)
}

fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn stores_resolves_and_retags() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path().join("store"));
    let layer = b"\0asm\x01\0\0\0";
    let d = descriptor(layer);
    let first = layout
        .store(b"{\"m\":1}", &[Blob::hash(layer)], Some("hello:1.0.0"))
        .unwrap();
    let found = layout
        .resolve(&LayoutRef::Tag("hello:1.0.0".into()))
        .unwrap();
    assert_eq!(found.descriptor, first);
    assert_eq!(found.manifest_bytes, b"{\"m\":1}");
    assert_eq!(layout.read_blob(&d.digest).unwrap(), layer);

    // The same tag again replaces the entry instead of adding a second one.
    layout
        .store(b"{\"m\":2}", &[Blob::hash(layer)], Some("hello:1.0.0"))
        .unwrap();
    assert_eq!(layout.tags().unwrap(), ["hello:1.0.0"]);
    let again = layout
        .resolve(&LayoutRef::Tag("hello:1.0.0".into()))
        .unwrap();
    assert_eq!(again.manifest_bytes, b"{\"m\":2}");
    // The first manifest is still reachable by digest.
    let by_digest = layout.resolve(&LayoutRef::Digest(first.digest)).unwrap();
    assert_eq!(by_digest.manifest_bytes, b"{\"m\":1}");

    let err = layout.resolve(&LayoutRef::Tag("nope".into())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no artifact tagged `nope` in `{}` (it has `hello:1.0.0`)",
            layout.root().display()
        )
    );
}

#[test]
fn a_failed_store_leaves_the_layout_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path());
    let layer = b"\0asm\x01\0\0\0";
    layout
        .store(b"{}", &[Blob::hash(layer)], Some("a"))
        .unwrap();
    let before = snapshot(dir.path());

    // A manifest whose config is missing fails after its blobs were written.
    let good = b"new content";
    let missing = Descriptor::for_bytes(media_types::WASM_CONFIG_V0, b"{\"absent\":1}");
    let dangling = format!(
        r#"{{"schemaVersion":2,"config":{},"layers":[]}}"#,
        serde_json::to_string(&missing).unwrap()
    );
    let err = layout
        .store(dangling.as_bytes(), &[Blob::hash(good)], Some("b"))
        .unwrap_err();
    assert!(matches!(err, Error::BlobMissing { .. }), "{err}");
    assert_eq!(snapshot(dir.path()), before);

    // A first store that fails leaves an empty directory, usable again.
    let fresh = tempfile::tempdir().unwrap();
    let layout = Layout::at(fresh.path());
    assert!(
        layout
            .store(dangling.as_bytes(), &[Blob::hash(layer)], Some("a"))
            .is_err()
    );
    assert_eq!(fs::read_dir(fresh.path()).unwrap().count(), 0);
    layout
        .store(b"{}", &[Blob::hash(layer)], Some("a"))
        .unwrap();
}

#[test]
fn corrupt_blobs_and_missing_layouts_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path());
    let layer = b"\0asm\x01\0\0\0";
    let d = descriptor(layer);
    layout
        .store(b"{}", &[Blob::hash(layer)], Some("a"))
        .unwrap();
    fs::write(layout.blob_path(&d.digest), b"tampered").unwrap();
    let err = layout.read_blob(&d.digest).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "blob `{}` is corrupt",
            layout.blob_path(&d.digest).display()
        )),
        "{err}"
    );

    let err = Layout::open(dir.path().join("nowhere")).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("is not an OCI image layout: no such directory")
    );
    let not_empty = tempfile::tempdir().unwrap();
    fs::write(not_empty.path().join("README"), b"mine").unwrap();
    let err = Layout::at(not_empty.path())
        .store(b"{}", &[], Some("a"))
        .unwrap_err();
    assert!(
        err.to_string().contains("refusing to write into it"),
        "{err}"
    );
}

#[test]
fn tags_follow_the_ref_name_grammar() {
    assert!(check_tag("hello:1.0.0").is_ok());
    assert!(check_tag("ghcr.io/o/r:v1+build").is_ok());
    assert!(check_tag("").is_err());
    assert!(check_tag("-x").is_err());
    assert!(check_tag("a b").is_err());
}

#[test]
fn a_name_at_a_digest_is_a_name_it_was_stored_under() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path().join("store"));
    let layer = b"\0asm\x01\0\0\0";
    let tagged = layout
        .store(
            b"{\"m\":1}",
            &[Blob::hash(layer)],
            Some("r.example:5000/a/app:1"),
        )
        .unwrap();
    let named = |name: &str, digest| LayoutRef::Named {
        name: name.into(),
        digest,
    };
    let found = layout
        .resolve(&named("r.example:5000/a/app", tagged.digest))
        .unwrap();
    assert_eq!(found.tag.as_deref(), Some("r.example:5000/a/app:1"));
    let err = layout
        .resolve(&named("r.example:5000/a/other", tagged.digest))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no artifact `r.example:5000/a/other@{0}` in `{1}`: `{0}` is stored only as `r.example:5000/a/app:1`",
            tagged.digest,
            layout.root().display()
        )
    );
    // An untagged entry has no name: a name at its digest does not find it, the digest does.
    let untagged = layout
        .store(b"{\"m\":2}", &[Blob::hash(layer)], None)
        .unwrap();
    assert!(layout.resolve(&named("x", untagged.digest)).is_err());
    assert!(layout.resolve(&LayoutRef::Digest(untagged.digest)).is_ok());
    // A name at a digest (a pull by digest) is a name of its own, stored once.
    let by_digest = format!("r.example:5000/a/other@{}", tagged.digest);
    for _ in 0..2 {
        layout
            .store(b"{\"m\":1}", &[Blob::hash(layer)], Some(&by_digest))
            .unwrap();
    }
    let found = layout
        .resolve(&named("r.example:5000/a/other", tagged.digest))
        .unwrap();
    assert_eq!(found.tag.as_deref(), Some(by_digest.as_str()));
    let again = format!("r.example:5000/a/app@{}", tagged.digest);
    layout
        .store(b"{\"m\":1}", &[Blob::hash(layer)], Some(&again))
        .unwrap();
    assert_eq!(
        layout
            .tags()
            .unwrap()
            .iter()
            .filter(|t| t.contains("/a/"))
            .count(),
        2
    );
    assert_eq!(name_of(&by_digest), "r.example:5000/a/other");
    let absent = Digest::of(b"absent");
    assert!(matches!(
        layout.resolve(&named("x", absent)),
        Err(Error::ManifestNotFound { .. })
    ));
    assert_eq!(name_of("hello:1.0.0"), "hello");
    assert_eq!(name_of("localhost:5000/app"), "localhost:5000/app");
}

/// A blob streamed in: hashed on another thread over chunks handed back and forth, the
/// digest and the file are those of every byte, whatever sizes the reads come in.
#[test]
fn a_streamed_blob_is_hashed_and_written_whole() {
    struct Trickle<'a>(&'a [u8], usize);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            // 1, 2, … 4096 bytes, then again: never a whole chunk at once.
            self.1 = self.1 % 4096 + 1;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::at(dir.path());
    // 3.5 MiB and a byte: chunks full, part-full and the odd byte.
    let bytes: Vec<u8> = (0..(7 << 19) + 1)
        .map(|i: u32| (i * 7 % 251) as u8)
        .collect();
    let (digest, size, new) = layout.put_blob_from(Trickle(&bytes, 0), None).unwrap();
    assert_eq!(
        (digest, size, new),
        (Digest::of(&bytes), bytes.len() as u64, true)
    );
    assert_eq!(std::fs::read(layout.blob_path(&digest)).unwrap(), bytes);
    let wrong = descriptor(b"other");
    let err = layout
        .put_blob_from(Trickle(&bytes, 0), Some(&wrong))
        .unwrap_err();
    assert!(matches!(err, Error::ContentMismatch { .. }), "{err}");
    let (empty, size, _) = layout.put_blob_from(&b""[..], None).unwrap();
    assert_eq!((empty, size), (Digest::of(b""), 0));
}

#[test]
fn a_layout_whose_creation_was_killed_is_created_again_and_verifies() {
    // Killed while `oci-layout` was being written: only its temporary file is there.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join(".wasmoci-Ab12Cd"), b"{\"imageLayoutVer").unwrap();
    let layout = Layout::at(&root);
    let report = layout.verify(false, || {}).unwrap();
    assert!(report.damage.is_empty());
    assert_eq!(report.garbage.len(), 1);
    layout.create().unwrap();
    assert!(!root.join(".wasmoci-Ab12Cd").exists());
    assert!(layout.exists());
    let report = layout.verify(false, || {}).unwrap();
    assert!(report.damage.is_empty() && report.garbage.is_empty());
}
