;; `acme:app/plug-mismatch` (wit/compose/mismatch.wit): `greet` returns a u64.
(module
  (func (export "acme:greet/greeter@1.0.0#greet") (param i32) (result i64)
    (i64.extend_i32_u (local.get 0))))
