;; Budget test: loops forever when its argument is negative, else answers 1.
(module
  (func (export "spin") (param $x i64) (result i32)
    (if (i64.lt_s (local.get $x) (i64.const 0)) (then (loop $forever (br $forever))))
    (i32.const 1)))
