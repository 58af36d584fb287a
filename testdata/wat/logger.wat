;; `acme:app/logger`: `prefix()` is 1000.
(module
  (func (export "acme:log/logger@1.0.0#prefix") (result i32)
    (i32.const 1000)))
