"""Per-event cost of the Wasm predicate runtime, packing included, at a batch of 4096.

The condition is ``process.name like "*.exe" and destination.port > 7`` over two native columns
(random names from the differential strings, ports from its ints, a fifth of each null). Printed:
the total per batch and per event (pack + write + one call + read), and the pack alone.
Run: .venv/bin/python bench/wasm_predicates.py [--n N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time

from guard.policy.predicates.abi import Budget, PAnd, PCompare, PWildcard
from guard.policy.predicates.reference import run_batch
from guard.policy.predicates.wasm import WasmBackend
from tests.unit.policy.predicates.differential import N, S, batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    expr = PAnd((PWildcard(0, ("*.exe",), False), PCompare(1, ">", 7)))
    compiled = WasmBackend().compile(expr, (S, N), 0, budget=Budget())
    columns, host = batch((S, N), 0, args.n, seed=1, int_bits=64)
    if compiled.run(columns, host, args.n) != run_batch(expr, columns, host, args.n):
        raise SystemExit("the Wasm predicate disagrees with the reference")
    for label, fn in (
        ("run (pack + call + read)", lambda: compiled.run(columns, host, args.n)),
        ("pack only", lambda: compiled._pack(columns, host, args.n)),
    ):
        best = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        per_event = best * 1e6 / args.n
        print(
            f"{label:26} {best * 1e6:9.1f} us/batch {per_event:7.3f} us/event "
            f"(n={args.n}, best of {args.rounds})"
        )


if __name__ == "__main__":
    main()
