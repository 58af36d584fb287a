;; `acme:app/logger-cyclic`: a logger that itself imports the greeter, so that with
;; `greet-middle` (a greeter that imports the logger) the plugs would form a cycle.
(module
  (import "acme:greet/greeter@1.0.0" "greet" (func $greet (param i32) (result i32)))
  (func (export "acme:log/logger@1.0.0#prefix") (result i32)
    (call $greet (i32.const 1))))
