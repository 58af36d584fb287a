(component
  (import "wasi:io/error@0.2.0" (instance))
  (import "wasi:io/error@0.2.1" (instance))
  (import "wasi:cli/stdout@0.2.12" (instance))
  (core module $m (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.12" (instance $inst)))
