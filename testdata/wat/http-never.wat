;; Core module of an HTTP handler (world `wasmoci:fixtures/http-slow`) that waits an hour
;; in a host call before answering.
(module
  (import "wasi:clocks/monotonic-clock@0.2.12" "subscribe-duration"
    (func $subscribe_duration (param i64) (result i32)))
  (import "wasi:io/poll@0.2.12" "[method]pollable.block" (func $block (param i32)))
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
  (data (i32.const 1024) "hello after a nap\n")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    ;; bump allocator: align up, never free
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $outparam i32)
    (local $response i32) (local $body i32) (local $stream i32)
    (call $block (call $subscribe_duration (i64.const 3600000000000)))
    (local.set $response (call $response_new (call $fields_new)))
    ;; result<own<outgoing-body>> at 256: tag, handle at 260
    (call $response_body (local.get $response) (i32.const 256))
    (local.set $body (i32.load (i32.const 260)))
    ;; result<own<output-stream>> at 264: tag, handle at 268
    (call $body_write (local.get $body) (i32.const 264))
    (local.set $stream (i32.load (i32.const 268)))
    ;; ok(response)
    (call $outparam_set (local.get $outparam) (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write (local.get $stream) (i32.const 1024) (i32.const 18) (i32.const 272))
    (call $drop_stream (local.get $stream))
    ;; finish(body, none); result at 288
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 288))))
