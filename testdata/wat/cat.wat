;; A wasip1 command that prints `hello.txt` from the first preopened directory (fd 3),
;; and exits with 2 when it cannot open it (no directory granted).
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "hello.txt")
  (func (export "_start")
    (local $fd i32)
    ;; path_open(dirfd 3, lookup 0, "hello.txt", oflags 0, rights fd_read, 0, fdflags 0, &fd at 32)
    (if (i32.ne (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 9)
                  (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 32))
                (i32.const 0))
      (then (call $proc_exit (i32.const 2))))
    (local.set $fd (i32.load (i32.const 32)))
    ;; one iovec at 0: { buf = 1024, len = 4096 }; bytes read go to 8
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))))
