;; Budget test: spin loops forever when its argument is negative, else answers 1; burn runs k
;; iterations of a loop (a few fuel units each), then answers 1.
(module
  (func (export "spin") (param $x i64) (result i32)
    (if (i64.lt_s (local.get $x) (i64.const 0)) (then (loop $forever (br $forever))))
    (i32.const 1))
  (func (export "burn") (param $k i64) (result i32)
    (block $done
      (loop $again
        (br_if $done (i64.le_s (local.get $k) (i64.const 0)))
        (local.set $k (i64.sub (local.get $k) (i64.const 1)))
        (br $again)))
    (i32.const 1)))
