;; Parses, but does not validate: `i32.add` with an empty stack.
(module
  (func (export "_start") (result i32)
    i32.add))
