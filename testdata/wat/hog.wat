;; A wasip1 command that takes 64 MiB of memory, writes every byte of it (so it is
;; resident, charged to whoever runs it), then sleeps 10 s in `poll_oneoff`.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (memory.grow (i32.const 1024)))
    (memory.fill (i32.const 65536) (i32.const 1) (i32.const 67108864))
    ;; one subscription at 0: userdata 0, tag clock, monotonic clock, 10 s, relative
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 10000000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    ;; events at 64, count at 128
    (drop (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))
