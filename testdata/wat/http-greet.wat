;; Core module of `acme:app/http-socket` (wit/compose/compose.wit): an HTTP handler that
;; answers 200 with `greeting: N`, N = greet(20) of the greeter plugged into it. The
;; canonical ABI is lowered by hand, as in http-hello.wat.
(module
  (import "acme:greet/greeter@1.0.0" "greet" (func $greet (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields_new (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response"
    (func $response_new (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body"
    (func $response_body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write"
    (func $body_write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set"
    (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish"
    (func $body_finish (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream" (func $drop_stream (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 1024) "greeting: ")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $outparam i32)
    (local $response i32) (local $body i32) (local $stream i32) (local $n i32) (local $start i32)
    ;; `greeting: ` at 1024..1034, the digits before the newline at 1056
    (local.set $n (call $greet (i32.const 20)))
    (i32.store8 (i32.const 1056) (i32.const 10))
    (local.set $start (i32.const 1056))
    (loop $digits
      (local.set $start (i32.sub (local.get $start) (i32.const 1)))
      (i32.store8 (local.get $start)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (local.get $n)))
    (local.set $response (call $response_new (call $fields_new)))
    (call $response_body (local.get $response) (i32.const 256))
    (local.set $body (i32.load (i32.const 260)))
    (call $body_write (local.get $body) (i32.const 264))
    (local.set $stream (i32.load (i32.const 268)))
    (call $outparam_set (local.get $outparam) (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write (local.get $stream) (i32.const 1024) (i32.const 10) (i32.const 272))
    (call $write (local.get $stream) (local.get $start)
      (i32.sub (i32.const 1057) (local.get $start)) (i32.const 272))
    (call $drop_stream (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 288))))
