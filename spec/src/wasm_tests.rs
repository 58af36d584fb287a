//! Tests of `wasm.rs`.

use super::*;

#[test]
fn a_module_lists_its_imports_and_exports() {
    let module = wat::parse_str(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (import "env" "mem" (memory 1))
            (func (export "_start"))
            (global (export "g") i32 (i32.const 0)))"#,
    )
    .unwrap();
    let (imports, exports) = module_imports_exports(&module).unwrap();
    assert_eq!(imports, ["wasi_snapshot_preview1::fd_write", "env::mem"]);
    assert_eq!(exports, ["_start", "g"]);
}

/// Found by `cargo fuzz run wasm`: a code section longer than the input panicked
/// (an out-of-range slice) instead of not parsing.
#[test]
fn a_section_past_the_end_does_not_parse() {
    let mut module = wat::parse_str(r#"(module (func (export "_start") nop))"#).unwrap();
    // The code section is last: claim 100 more bytes than it has.
    let code = module.iter().rposition(|&b| b == 10).unwrap();
    module[code + 1] += 100;
    assert!(top_level_payloads(&module).is_none());
    assert!(export_names(&module).is_none());
}

/// Found by `cargo fuzz run wasm`: 70 bytes whose nested section claims 2.9 GB made
/// `wit_component::decode` reserve that much before reading; refused instead.
#[test]
fn a_section_claiming_more_than_there_is_is_not_decoded() {
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/regressions/wasm/section-claiming-three-gigabytes"),
    )
    .unwrap();
    assert_eq!(bytes.len(), 70);
    assert!(decode_wit(&bytes).is_err());
    assert!(component_section(&bytes).is_err());
}

#[test]
fn made_up_worlds_are_not_targets() {
    assert!(!is_meaningful_world("root:component/root"));
    assert!(!is_meaningful_world("root:root/root"));
    assert!(is_meaningful_world("wasi:cli/command@0.2.6"));
}

#[test]
fn export_names_reads_the_top_level_only() {
    let module =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start") nop))"#)
            .unwrap();
    assert_eq!(
        export_names(&module),
        Some((WasmKind::Module, vec!["memory".into(), "_start".into()]))
    );
    let component = wat::parse_str(
        r#"(component
             (core module $m (func (export "inner") nop))
             (core instance $i (instantiate $m))
             (func $f (canon lift (core func $i "inner")))
             (instance $run (export "run" (func $f)))
             (export "wasi:cli/run@0.2.0" (instance $run)))"#,
    )
    .unwrap();
    assert_eq!(
        export_names(&component),
        Some((WasmKind::Component, vec!["wasi:cli/run@0.2.0".into()]))
    );
    assert_eq!(export_names(b"not wasm"), None);
    assert_eq!(export_names(&component[..component.len() - 3]), None);
}

#[test]
fn detects_kind_from_the_preamble() {
    assert_eq!(WasmKind::detect(b"\0asm\x01\0\0\0"), Some(WasmKind::Module));
    assert_eq!(
        WasmKind::detect(b"\0asm\x0d\0\x01\0"),
        Some(WasmKind::Component)
    );
    assert_eq!(WasmKind::detect(b"\0asm"), None);
    assert_eq!(WasmKind::detect(b"hello world!"), None);
}

#[test]
fn a_core_module_never_gets_a_component_section() {
    let err = component_section(b"\0asm\x01\0\0\0").unwrap_err();
    assert!(err.to_string().contains("core module"), "{err}");
    assert!(matches!(component_section(b"nope"), Err(Error::NotWasm)));
}

#[test]
fn keeps_both_versions_of_an_interface() {
    let wasm = wat::parse_str(
        r#"(component
            (import "wasi:io/error@0.2.0" (instance))
            (import "wasi:io/error@0.2.1" (instance))
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "run" (func $f)))"#,
    )
    .unwrap();
    let section = component_section(&wasm).unwrap();
    assert_eq!(
        section.imports,
        ["wasi:io/error@0.2.0", "wasi:io/error@0.2.1"]
    );
    assert_eq!(section.exports, ["run"]);
}

#[test]
fn top_level_names_are_the_decoded_worlds() {
    let mut wasm: Vec<(String, Vec<u8>)> = wasmoci_testdata::compose_fixtures()
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect();
    wasm.push(("p1".into(), wasmoci_testdata::p1_component()));
    wasm.push(("cat adapted".into(), wasmoci_testdata::adapted("cat")));
    wasm.push(("composed http".into(), wasmoci_testdata::composed_http()));
    // Nested components and core modules, functions and instances at the top level.
    wasm.push((
        "nested".into(),
        wat::parse_str(
            r#"(component
                (import "wasi:io/error@0.2.0" (instance))
                (import "f" (func $imported))
                (import "unlocked-dep=<a:b>" (component))
                (component $c
                    (import "g" (func $g))
                    (core module)
                    (component (import "deep" (func)))
                    (export "h" (func $g)))
                (core module $m (func (export "f")))
                (core instance $i (instantiate $m))
                (func $f (canon lift (core func $i "f")))
                (export "run" (func $f))
                (instance $x (instantiate $c (with "g" (func $imported))))
                (export "x" (instance $x)))"#,
        )
        .unwrap(),
    ));
    for (name, bytes) in &wasm {
        let fast = top_level_section(bytes).expect("not a WIT package");
        assert_eq!(fast, decoded_section(bytes).unwrap(), "{name}");
    }
    // A WIT package is left to the decode.
    let package = wasmoci_testdata::wit_package();
    assert_eq!(top_level_section(&package), None);
    assert_eq!(
        component_section(&package).unwrap(),
        decoded_section(&package).unwrap()
    );
}

#[test]
fn parses_feature_lists() {
    assert_eq!(wasm_features("").unwrap(), WasmFeatures::all());
    assert_eq!(wasm_features("wasm1").unwrap(), WasmFeatures::WASM1);
    let no_gc = wasm_features("-gc").unwrap();
    assert!(!no_gc.contains(WasmFeatures::GC) && no_gc.contains(WasmFeatures::SIMD));
    let simd = wasm_features("wasm1,simd,component-model").unwrap();
    assert!(simd.contains(WasmFeatures::SIMD | WasmFeatures::COMPONENT_MODEL));
    assert!(!simd.contains(WasmFeatures::GC));
    let unknown = wasm_features("simd,bogus").unwrap_err();
    assert!(
        unknown.starts_with("unknown wasm feature `bogus` (known: all, wasm1, wasm2, wasm3, "),
        "{unknown}"
    );
    assert!(unknown.contains(", gc, "), "{unknown}");
}

#[test]
fn validation_reports_the_offset() {
    // i32.add with an empty stack.
    let wasm = wat::parse_str("(module (func (result i32) i32.add))").unwrap();
    let err = validate_wasm(&wasm, WasmFeatures::all(), 1).unwrap_err();
    assert!(err.offset > 8, "{err}");
    assert!(err.to_string().contains("type mismatch"), "{err}");
}

#[test]
fn bodies_checked_in_parallel_give_the_first_error_as_validate_all_does() {
    // 200 functions; several bad ones, of two kinds, the first bad one not first.
    let mut text = String::from("(module");
    for n in 0..200 {
        text.push_str(match n {
            37 | 150 => " (func (result i32) i32.add)",
            90 | 120 => " (func (result i32) i64.const 1)",
            _ => " (func (result i32) i32.const 1 i32.const 2 i32.add)",
        });
    }
    text.push(')');
    let wasm = wat::parse_str(&text).unwrap();
    let Err(expected) = Validator::new_with_features(WasmFeatures::all()).validate_all(&wasm)
    else {
        panic!("the module is invalid");
    };
    for threads in [1, 2, 4, 16] {
        for _ in 0..20 {
            let err = validate_wasm(&wasm, WasmFeatures::all(), threads).unwrap_err();
            assert_eq!(
                (err.message.as_str(), err.offset),
                (expected.message(), expected.offset()),
                "{threads} threads"
            );
        }
    }
    let good = wat::parse_str("(module (func) (func (result i32) i32.const 0))").unwrap();
    validate_wasm(&good, WasmFeatures::all(), 4).unwrap();
    // A section error comes before any body's, as in `validate_all`.
    let both = wat::parse_str(
        "(module (func (result i32) i32.add) (export \"a\" (func 0)) (export \"a\" (func 0)))",
    )
    .unwrap();
    let err = validate_wasm(&both, WasmFeatures::all(), 4).unwrap_err();
    assert!(err.message.contains("duplicate export"), "{err}");
}
