//! Package metadata into the wasm, through wasm-metadata, without walking what it does not
//! change.
//!
//! wasm-metadata rewrites only the top-level custom sections (producers, names and its
//! own fields), but to do so it walks every payload of every nested module and copies
//! them: ~13 ms for an 11 MiB component, most of a build's time after the encoder. When
//! every top-level custom section comes after the last other top-level section (what
//! wit-component and most toolchains write), the rewrite of the header and those trailing
//! sections alone, put back behind the untouched rest, gives the same bytes.

use wasm_metadata::AddMetadata;
use wasmparser::Payload;

/// `add.to_wasm(wasm)`, done on the trailing custom sections alone when it can be.
pub(crate) fn add_metadata(add: &AddMetadata, wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
    const HEADER: usize = 8;
    match trailing_customs(wasm) {
        Some(start) if start >= HEADER => {
            let mut tail = Vec::with_capacity(HEADER + wasm.len() - start);
            tail.extend_from_slice(&wasm[..HEADER]);
            tail.extend_from_slice(&wasm[start..]);
            let rewritten = add.to_wasm(&tail)?;
            let mut out = Vec::with_capacity(start + rewritten.len() - HEADER);
            out.extend_from_slice(&wasm[..start]);
            out.extend_from_slice(&rewritten[HEADER..]);
            Ok(out)
        }
        _ => add.to_wasm(wasm),
    }
}

/// Where the top-level custom sections start when they all come after every other
/// top-level section (the end of the wasm when there are none); `None` when one comes
/// before another section, or the wasm does not parse (the whole rewrite then decides).
fn trailing_customs(wasm: &[u8]) -> Option<usize> {
    let mut customs = None;
    for (start, payload) in wasmoci_spec::top_level_payloads(wasm)? {
        match payload {
            Payload::CustomSection(_) => {
                customs.get_or_insert(start);
            }
            // A custom section before another kind of section: not trailing.
            _ if customs.is_some() => return None,
            _ => {}
        }
    }
    Some(customs.unwrap_or(wasm.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_metadata::{AddMetadataField, Authors, Version};

    fn add() -> AddMetadata {
        let mut add = AddMetadata::default();
        add.name = AddMetadataField::Set("n".into());
        add.version = AddMetadataField::Set(Version::new("1.2.3".to_owned()));
        add.authors = AddMetadataField::Set(Authors::new("a <a@example.com>"));
        add.processed_by = vec![("wasmoci".into(), "0".into())];
        add
    }

    /// The same bytes as wasm-metadata's whole rewrite, on components (with nested
    /// modules, adapted or composed) and core modules, with and without metadata already.
    #[test]
    fn the_tail_rewrite_is_the_whole_rewrite() {
        let mut inputs: Vec<(String, Vec<u8>)> = vec![
            ("p1".into(), wasmoci_testdata::p1_component()),
            ("cat".into(), wasmoci_testdata::adapted("cat")),
            ("composed".into(), wasmoci_testdata::composed_http()),
            ("core".into(), wasmoci_testdata::core("hello")),
        ];
        inputs.extend(
            wasmoci_testdata::compose_fixtures()
                .into_iter()
                .map(|(n, b)| (n.to_owned(), b)),
        );
        let again: Vec<(String, Vec<u8>)> = inputs
            .iter()
            .map(|(n, b)| (format!("{n} again"), add().to_wasm(b).unwrap()))
            .collect();
        inputs.extend(again);
        let mut trailing = 0;
        for (name, wasm) in &inputs {
            trailing += usize::from(trailing_customs(wasm).is_some());
            assert_eq!(
                add_metadata(&add(), wasm).unwrap(),
                add().to_wasm(wasm).unwrap(),
                "{name}"
            );
        }
        assert!(
            trailing * 2 > inputs.len(),
            "only {trailing} of {}",
            inputs.len()
        );
    }

    #[test]
    fn a_custom_section_before_others_is_not_trailing() {
        let wasm =
            wat::parse_str(r#"(module (@custom "x" "1") (func) (@custom "y" (after func) "2"))"#)
                .unwrap();
        assert_eq!(trailing_customs(&wasm), None);
        let trailing = wat::parse_str(r#"(module (func) (@custom "y" (after last) "2"))"#).unwrap();
        assert!(trailing_customs(&trailing).is_some());
    }
}
