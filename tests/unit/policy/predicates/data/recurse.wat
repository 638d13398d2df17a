;; Budget test: recurses x deep and answers x; a large x overflows the stack.
(module
  (func $depth (export "depth") (param $x i64) (result i64)
    (if (result i64) (i64.le_s (local.get $x) (i64.const 0))
      (then (i64.const 0))
      (else (i64.add (i64.const 1) (call $depth (i64.sub (local.get $x) (i64.const 1))))))))
