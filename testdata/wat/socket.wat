;; Core module of the `wasmoci:fixtures/socket` world: imports `greeter` (plug it with
;; plug.wasm) and exports `wasi:cli/run`, which succeeds when the answer is 42.
(module
  (import "wasmoci:fixtures/greeter@0.1.0" "answer" (func $answer (result i32)))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (i32.ne (call $answer) (i32.const 42))))
