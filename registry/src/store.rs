//! The store's naming rule for pulled artifacts: one rule for every pull, `wasmoci pull`
//! (and pull on demand) and the shim's direct pulls alike.

use crate::{LayoutRef, Reference};

/// The tag a pulled artifact gets in a layout: its full reference, without a digest
/// (`localhost:5000/demo/hello:1.0`; `latest` when it names no tag); one pulled by digest
/// alone, its name at that digest (`localhost:5000/demo/hello@sha256:…`), so that each
/// name a manifest was pulled under stays with it.
pub fn tag_for(reference: &Reference) -> String {
    if reference.digest.is_some() && reference.tag.is_none() {
        return reference.to_string();
    }
    let tag = reference.tag.clone().unwrap_or_else(|| "latest".into());
    reference.with_tag(&tag).to_string()
}

/// Where a pulled `reference` is found in a layout: its name at its digest when it names
/// one (a manifest stored only under other names is not it), else by [`tag_for`].
pub fn locate(reference: &Reference) -> LayoutRef {
    match reference.digest {
        Some(digest) => LayoutRef::Named {
            name: reference.repository_path(),
            digest,
        },
        None => LayoutRef::Tag(tag_for(reference)),
    }
}
