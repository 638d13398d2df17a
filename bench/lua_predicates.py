"""Time the Lua predicate runtime per event on a two-column condition, against the Python reference.

The condition is ``process.name like "*.exe" and destination.port > 7`` lowered
(``PAnd((PWildcard(0, ("*.exe",), False), PCompare(1, ">", 7)))``) over random batches of the
differential cases' values (a fifth null). Printed per event: the whole ``run`` (columns converted
to Lua tables, one call into Lua, the bitmap back), the conversion alone, the Lua call alone, and
the baseline measured in the same run, :func:`guard.policy.predicates.reference.run_batch`.
Run: .venv/bin/python bench/lua_predicates.py [--n 4096] [--reps 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from guard.policy.predicates.abi import Budget, PAnd, PCompare, PWildcard
from guard.policy.predicates.lua import LuaBackend
from guard.policy.predicates.reference import run_batch
from tests.unit.policy.predicates.differential import N, S, batch


def per_call(fn: Callable[[], object], reps: int) -> float:
    for _ in range(max(5, reps // 10)):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.n
    expr = PAnd((PWildcard(0, ("*.exe",), False), PCompare(1, ">", 7)))
    specs = (S, N)
    columns, host = batch(specs, 0, n, seed=1, int_bits=53)
    compiled = LuaBackend().compile(expr, specs, 0, budget=Budget())
    if compiled.run(columns, host, n) != run_batch(expr, columns, host, n):
        raise SystemExit("the Lua predicate disagrees with the reference")
    rt = compiled._rt  # the bench times conversion and call apart
    tables = [rt.table_from(c) for c in columns]
    ns = 1e9 / n
    ref_reps = max(3, args.reps // 50)
    result = {
        "n": n,
        "run_ns_per_event": per_call(lambda: compiled.run(columns, host, n), args.reps) * ns,
        "convert_ns_per_event": per_call(lambda: [rt.table_from(c) for c in columns], args.reps) * ns,
        "lua_call_ns_per_event": per_call(lambda: compiled._run(n, *tables), args.reps) * ns,
        "reference_ns_per_event": per_call(lambda: run_batch(expr, columns, host, n), ref_reps) * ns,
    }
    result["speedup_vs_reference"] = result["reference_ns_per_event"] / result["run_ns_per_event"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"lua predicate, 2 columns, n={n}")
    print(f"  run (conversion + call + bitmap): {result['run_ns_per_event']:8.1f} ns/event")
    print(f"  conversion to Lua tables alone:   {result['convert_ns_per_event']:8.1f} ns/event")
    print(f"  Lua call alone:                   {result['lua_call_ns_per_event']:8.1f} ns/event")
    print(f"  Python reference (baseline):      {result['reference_ns_per_event']:8.1f} ns/event")
    print(f"  speed-up over the reference:      {result['speedup_vs_reference']:8.1f}x")


if __name__ == "__main__":
    main()
