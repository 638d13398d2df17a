;; Defines its own memory instead of importing env.memory: refused.
(module
  (memory 1)
  (func (export "own") (param $x i64) (result i32) (i32.const 1)))
