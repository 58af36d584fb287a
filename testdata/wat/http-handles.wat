;; Core module of an HTTP handler (world `wasmoci:fixtures/http-slow`) that subscribes to
;; the clock in a loop and never drops the pollables: host resources without end, until
;; the host refuses one (then it traps: the request fails with 500).
(module
  (import "wasi:clocks/monotonic-clock@0.2.12" "subscribe-duration"
    (func $subscribe_duration (param i64) (result i32)))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (unreachable))
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $outparam i32)
    (loop $more
      (drop (call $subscribe_duration (i64.const 1000000000)))
      (br $more))))
