;; `acme:app/plug-major`: greeter 2.0.0, not compatible with 1.0.0.
(module
  (func (export "acme:greet/greeter@2.0.0#greet") (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 1))))
