;; Small helpers over the predicate ABI: a string's length in code points, and one function per
;; scalar parameter type (i64 int, f64 float, i32 bool).
(module
  (import "env" "memory" (memory 1))
  ;; code points: the UTF-8 bytes that are not continuation bytes (10xxxxxx)
  (func (export "strlen") (param $p i32) (param $n i32) (result i64)
    (local $i i32) (local $count i64)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (if (i32.ne (i32.and (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.const 0xc0))
                  (i32.const 0x80))
        (then (local.set $count (i64.add (local.get $count) (i64.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $count))
  ;; a boolean: the string has an ASCII digit
  (func (export "has_digit") (param $p i32) (param $n i32) (result i32)
    (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (if (i32.lt_u (i32.sub (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.const 48)) (i32.const 10))
        (then (return (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 0))
  (func (export "is_even") (param $x i64) (result i32)
    (i64.eqz (i64.rem_s (local.get $x) (i64.const 2))))
  (func (export "half") (param $x f64) (result f64)
    (f64.mul (local.get $x) (f64.const 0.5)))
  (func (export "negate") (param $b i32) (result i32)
    (i32.eqz (local.get $b)))
  ;; a string argument, then an int: the string's byte length plus the int
  (func (export "len_plus") (param $p i32) (param $n i32) (param $x i64) (result i64)
    (i64.add (i64.extend_i32_u (local.get $n)) (local.get $x))))
