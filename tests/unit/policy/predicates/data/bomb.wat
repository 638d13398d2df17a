;; Budget test: when its argument is non-zero, grows the shared memory a page at a time up to
;; 1 GiB, writing to each new page whether or not the grow succeeded; else answers 1.
(module
  (import "env" "memory" (memory 1))
  (func (export "bomb") (param $x i64) (result i32)
    (local $page i32)
    (if (i64.eqz (local.get $x)) (then (return (i32.const 1))))
    (local.set $page (memory.size))
    (loop $grow
      (drop (memory.grow (i32.const 1)))
      (i32.store8 (i32.mul (local.get $page) (i32.const 65536)) (i32.const 1))
      (local.set $page (i32.add (local.get $page) (i32.const 1)))
      (br_if $grow (i32.lt_u (local.get $page) (i32.const 16384))))
    (i32.const 1)))
