;; `acme:app/plug`: `greet(n)` is n + 22.
(module
  (func (export "acme:greet/greeter@1.0.0#greet") (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 22))))
