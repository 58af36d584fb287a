;; Core module of `acme:app/socket` (wit/compose/compose.wit): prints `greeting: N` where
;; N is what the plugged greeter's `greet(20)` returns.
(module
  (import "acme:greet/greeter@1.0.0" "greet" (func $greet (param i32) (result i32)))
  (import "wasi:cli/stdout@0.2.12" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream" (func $drop_stream (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "greeting: ")
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (local $n i32) (local $start i32) (local $stdout i32)
    (local.set $n (call $greet (i32.const 20)))
    ;; the decimal digits, written backwards before the newline at 48
    (i32.store8 (i32.const 48) (i32.const 10))
    (local.set $start (i32.const 48))
    (loop $digits
      (local.set $start (i32.sub (local.get $start) (i32.const 1)))
      (i32.store8 (local.get $start)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (local.get $n)))
    (local.set $stdout (call $get_stdout))
    ;; results (result<_, stream-error>) go to 64
    (call $write (local.get $stdout) (i32.const 16) (i32.const 10) (i32.const 64))
    (call $write (local.get $stdout) (local.get $start)
      (i32.sub (i32.const 49) (local.get $start)) (i32.const 64))
    (call $drop_stream (local.get $stdout))
    (i32.const 0)))
