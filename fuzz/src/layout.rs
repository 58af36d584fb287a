//! The layout target: an OCI image layout on disk (`index.json` and blobs) read the ways
//! the commands read one: open, list, resolve every tag, verify, `gc --dry-run`.
//!
//! The input is chunks split at `\n---\n`: the first is `index.json`, each other one a
//! blob stored under its own digest. So that a fuzzer can point at blobs it cannot hash,
//! `@N` in a chunk becomes the digest of chunk N and `#N` its size (N > the chunk's own
//! number: the substitutions run from the last chunk to the first).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmoci_registry::{Layout, LayoutRef};
use wasmoci_spec::Digest;

const SEPARATOR: &[u8] = b"\n---\n";
const MAX_CHUNKS: usize = 10;

fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < MAX_CHUNKS {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                out.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// `chunk` with `@N` and `#N` (N one digit, naming a later chunk) replaced.
fn substitute(chunk: &[u8], own: usize, done: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len());
    let mut i = 0;
    while i < chunk.len() {
        let (c, next) = (chunk[i], chunk.get(i + 1));
        let later = next
            .filter(|d| d.is_ascii_digit())
            .map(|d| usize::from(d - b'0'))
            .filter(|&n| n > own && n < done.len());
        match (c, later) {
            (b'@', Some(n)) => {
                out.extend_from_slice(Digest::of(&done[n]).to_string().as_bytes());
                i += 2;
            }
            (b'#', Some(n)) => {
                out.extend_from_slice(done[n].len().to_string().as_bytes());
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

static SCRATCH: AtomicU64 = AtomicU64::new(0);

fn scratch() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "wasmoci-fuzz-layout-{}-{}",
        std::process::id(),
        SCRATCH.fetch_add(1, Ordering::Relaxed)
    ))
}

/// An OCI image layout from `data` (see the module's text), read as the commands read it.
pub fn layout(data: &[u8]) {
    let chunks = chunks(data);
    let mut done = vec![Vec::new(); chunks.len()];
    for own in (0..chunks.len()).rev() {
        done[own] = substitute(chunks[own], own, &done);
    }
    let dir = scratch();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("the scratch layout is created");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout is written");
    std::fs::write(dir.join("index.json"), &done[0]).expect("index.json is written");
    for blob in &done[1..] {
        std::fs::write(blobs.join(Digest::of(blob).hex()), blob).expect("a blob is written");
    }
    read(&dir);
    std::fs::remove_dir_all(&dir).expect("the scratch layout is removed");
}

fn read(dir: &std::path::Path) {
    let Ok(layout) = Layout::open(dir) else {
        return;
    };
    if let Ok(tags) = layout.tags() {
        for tag in tags {
            if let Ok(stored) = layout.resolve(&LayoutRef::Tag(tag)) {
                let _ = stored.manifest().map(|m| m.to_json());
            }
        }
    }
    if let Ok(index) = layout.index() {
        for d in index.manifests.iter().take(MAX_CHUNKS) {
            let _ = layout.resolve(&LayoutRef::Digest(d.digest));
            let _ = layout.read_blob(&d.digest);
        }
    }
    if let Ok(listings) = layout.list() {
        let _ = listings.len();
    }
    match layout.verify(false, || {}) {
        Ok(report) => {
            let _ = format!("{report:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = layout.gc(true, || {}).map(|r| r.freed());
}
