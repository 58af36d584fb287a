;; Core module of the `wasmoci:fixtures/plug` world: exports `greeter.answer`.
(module
  (func (export "wasmoci:fixtures/greeter@0.1.0#answer") (result i32)
    (i32.const 42)))
