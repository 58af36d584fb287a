;; `acme:app/middle`: `greet(n)` is n + the logger's `prefix()`; the middle of a chain.
(module
  (import "acme:log/logger@1.0.0" "prefix" (func $prefix (result i32)))
  (func (export "acme:greet/greeter@1.0.0#greet") (param i32) (result i32)
    (i32.add (local.get 0) (call $prefix))))
