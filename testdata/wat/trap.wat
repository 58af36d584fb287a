;; A wasip1 command that traps two calls deep, so the backtrace has names to show.
(module
  (memory (export "memory") 1)
  (func $explode unreachable)
  (func $middle (call $explode))
  (func (export "_start") (call $middle)))
