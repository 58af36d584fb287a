;; A wasip1 command with 4 funcref tables it grows to 10,000,000 elements each (80 MB
;; each at 8 bytes an element). Table elements count against `--memory`.
(module
  (table $t0 0 funcref)
  (table $t1 0 funcref)
  (table $t2 0 funcref)
  (table $t3 0 funcref)
  (func (export "_start")
    (drop (table.grow $t0 (ref.null func) (i32.const 10000000)))
    (drop (table.grow $t1 (ref.null func) (i32.const 10000000)))
    (drop (table.grow $t2 (ref.null func) (i32.const 10000000)))
    (drop (table.grow $t3 (ref.null func) (i32.const 10000000)))))
