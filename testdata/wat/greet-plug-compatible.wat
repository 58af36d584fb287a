;; `acme:app/plug-compatible`: greeter 1.2.0 (compatible with 1.0.0): `greet(n)` is n + 100.
(module
  (func (export "acme:greet/greeter@1.2.0#greet") (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 100)))
  (func (export "acme:greet/greeter@1.2.0#greet-twice") (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 200))))
