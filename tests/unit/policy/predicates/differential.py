"""Differential cases for the predicate runtimes: a backend must agree with the Python reference.

Each case is a lowered condition over native columns. :func:`check_parity` runs a backend on a
batch and on the batch of the condition's negation, so all three truth values are compared (an
event is True in the first, False in the second, or null in neither).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

from guard.policy.predicates.abi import (
    Backend,
    Budget,
    ColumnSpec,
    NativeValue,
    PAffix,
    PAnd,
    PCompare,
    PConst,
    PExpr,
    PHost,
    PIn,
    PNot,
    POr,
    PWildcard,
)
from guard.policy.predicates.reference import run_batch

STRINGS: tuple[str, ...] = (
    "", "a", "A", "abc", "ABC", "cmd.exe", "CMD.EXE", "/usr/bin/curl", "/tmp/x", "/tmp/", "tmp",
    "powershell.exe", "C:\\Windows\\System32\\cmd.exe", "a*b", "a?c", "line\nbreak", "ab", "ba",
    "é", "ÉTÉ", "日本語", "x日y", "naïve", "zz", "~", "\x00", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
)  # fmt: skip
ASCII_STRINGS: tuple[str, ...] = tuple(s for s in STRINGS if s.isascii())
INTS: tuple[int, ...] = (0, 1, -1, 5, 42, 443, 65535, 2**31, -(2**31), 2**53, -(2**53), 7, 8)
WIDE_INTS: tuple[int, ...] = (2**62, -(2**63), 2**63 - 1)

S = ColumnSpec("process.name", frozenset({"str"}))
SI = ColumnSpec("process.name", frozenset({"str"}), ascii_only=True)
N = ColumnSpec("destination.port", frozenset({"int"}))

#: (name, condition, column specs, host leaf count)
CASES: list[tuple[str, PExpr, tuple[ColumnSpec, ...], int]] = [
    ("eq_str", PCompare(0, "==", "cmd.exe"), (S,), 0),
    ("ne_str", PCompare(0, "!=", "cmd.exe"), (S,), 0),
    ("lt_str", PCompare(0, "<", "b"), (S,), 0),
    ("le_str", PCompare(0, "<=", "ab"), (S,), 0),
    ("gt_str", PCompare(0, ">", "é"), (S,), 0),
    ("ge_str", PCompare(0, ">=", "日"), (S,), 0),
    ("eq_empty", PCompare(0, "==", ""), (S,), 0),
    ("eq_int", PCompare(0, "==", 443), (N,), 0),
    ("ne_int", PCompare(0, "!=", 443), (N,), 0),
    ("lt_int", PCompare(0, "<", 8), (N,), 0),
    ("le_int", PCompare(0, "<=", -1), (N,), 0),
    ("gt_int", PCompare(0, ">", 2**31), (N,), 0),
    ("ge_int", PCompare(0, ">=", 0), (N,), 0),
    ("in_str", PIn(0, ("cmd.exe", "a", "日本語")), (S,), 0),
    ("not_in_str", PIn(0, ("cmd.exe", "a"), negated=True), (S,), 0),
    ("in_ci", PIn(0, ("cmd.exe", "abc"), case_insensitive=True), (SI,), 0),
    ("not_in_ci", PIn(0, ("cmd.exe",), case_insensitive=True, negated=True), (SI,), 0),
    ("in_int", PIn(0, (443, 7, -1)), (N,), 0),
    ("not_in_int", PIn(0, (443,), negated=True), (N,), 0),
    ("like_star", PWildcard(0, ("*.exe",), False), (S,), 0),
    ("like_q", PWildcard(0, ("a?c", "?"), False), (S,), 0),
    ("like_unicode_q", PWildcard(0, ("x?y", "??"), False), (S,), 0),
    ("like_many", PWildcard(0, ("/tmp/*", "*bin*", "a*b*c", "*"), False), (S,), 0),
    ("like_empty", PWildcard(0, ("",), False), (S,), 0),
    ("like_backtrack", PWildcard(0, ("*a*a*a*b",), False), (S,), 0),
    ("like_newline", PWildcard(0, ("line*",), False), (S,), 0),
    ("colon_ci", PWildcard(0, ("*.exe", "c:\\windows\\*"), True), (SI,), 0),
    ("like_ci_q", PWildcard(0, ("a?c", "cmd.*"), True), (SI,), 0),
    ("starts", PAffix(0, "startswith", "/tmp"), (S,), 0),
    ("ends", PAffix(0, "endswith", ".exe"), (S,), 0),
    ("contains", PAffix(0, "contains", "bin"), (S,), 0),
    ("contains_unicode", PAffix(0, "contains", "日"), (S,), 0),
    ("contains_empty", PAffix(0, "contains", ""), (S,), 0),
    ("starts_empty", PAffix(0, "startswith", ""), (S,), 0),
    ("starts_ci", PAffix(0, "startswith", "cmd", case_insensitive=True), (SI,), 0),
    ("ends_ci", PAffix(0, "endswith", ".exe", case_insensitive=True), (SI,), 0),
    ("contains_ci", PAffix(0, "contains", "windows", case_insensitive=True), (SI,), 0),
    ("host", PHost(0), (), 1),
    ("const_null", PConst(None), (), 0),
    ("const_true", PConst(True), (), 0),
    ("not_like", PNot(PWildcard(0, ("*.exe",), False)), (S,), 0),
    ("and3", PAnd((PWildcard(0, ("*.exe",), False), PCompare(1, ">", 7), PHost(0))), (S, N), 1),
    ("or3", POr((PAffix(0, "startswith", "/"), PCompare(1, "==", 443), PHost(0))), (S, N), 1),
    (
        "nested",
        PAnd((POr((PNot(PCompare(0, "==", "a")), PHost(1))), PNot(PAnd((PHost(0), PIn(1, (7, 8))))))),
        (S, N),
        2,
    ),
]


def values_for(spec: ColumnSpec, rng: random.Random, *, int_bits: int) -> NativeValue:
    """Return a random value a column of ``spec`` may carry (None a fifth of the time)."""
    if rng.random() < 0.2:
        return None
    kind = rng.choice(sorted(spec.kinds))
    if kind == "str":
        return rng.choice(ASCII_STRINGS if spec.ascii_only else STRINGS)
    if kind == "int":
        pool = INTS + (WIDE_INTS if int_bits >= 64 else ())
        return rng.choice(pool)
    if kind == "float":
        return rng.choice((0.0, -1.5, 3.25, 1e300))
    return rng.choice((True, False))


def batch(
    specs: Sequence[ColumnSpec], host_count: int, n: int, *, seed: int, int_bits: int
) -> tuple[list[list[NativeValue]], list[list[bool | None]]]:
    """Return ``n`` random events as columns, and ``host_count`` random tri-state host columns."""
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible by seed
    columns = [[values_for(s, rng, int_bits=int_bits) for _ in range(n)] for s in specs]
    host = [[rng.choice((True, False, None)) for _ in range(n)] for _ in range(host_count)]
    return columns, host


def check_parity(
    backend: Backend, expr: PExpr, specs: Sequence[ColumnSpec], host_count: int, n: int = 300
) -> None:
    """Assert the backend decides ``expr`` and ``not expr`` exactly as the reference, on a random batch."""
    columns, host = batch(
        specs, host_count, n, seed=zlib.crc32(repr(expr).encode()), int_bits=backend.int_bits
    )
    for e in (expr, PNot(expr)):
        compiled = backend.compile(e, specs, host_count, budget=Budget())
        got = compiled.run(columns, host, n)
        want = run_batch(e, columns, host, n)
        if got != want:
            diff = [i for i in range(n) if (got >> i) & 1 != (want >> i) & 1]
            rows = [([c[i] for c in columns], [h[i] for h in host]) for i in diff[:5]]
            raise AssertionError(f"{backend.name}: {e!r} differs from the reference at {diff[:5]}: {rows}")
