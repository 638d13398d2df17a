;; Not a module: an unclosed function.
(module
  (func (export "oops") (result i32)
    (i32.const 1)
