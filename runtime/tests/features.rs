//! `ENGINE_FEATURES` says what the engine accepts: `compose` validates with it, so it
//! must refuse what the engine refuses and accept what it accepts.

use wasmoci_runtime::engine::ENGINE_FEATURES;
use wasmoci_spec::{validate_wasm, wasm_features};

use super::engine;

#[test]
fn engine_features_agree_with_the_engine() {
    let features = wasm_features(ENGINE_FEATURES).unwrap();
    let probes = [
        (
            "simd",
            "(module (func (result v128) (v128.const i64x2 0 0)))",
        ),
        ("multi-memory", "(module (memory 1) (memory 1))"),
        ("memory64", "(module (memory i64 1))"),
        ("tail-call", "(module (func $f (return_call $f)))"),
        (
            "exceptions",
            "(module (tag $t) (func (try_table (catch_all 0)) ))",
        ),
        ("threads", "(module (memory 1 1 shared))"),
        (
            "gc",
            "(module (type (struct)) (func (result anyref) (ref.null any)))",
        ),
    ];
    for (name, text) in probes {
        let wasm = wat::parse_str(text).unwrap();
        let ours = validate_wasm(&wasm, features, 2).is_ok();
        let engine = wasmtime::Module::validate(engine().engine(), &wasm).is_ok();
        assert_eq!(ours, engine, "`{name}`: ours {ours}, the engine {engine}");
    }
}
