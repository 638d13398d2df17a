"""The Lua predicate runtime: parity with the reference, user modules, the sandbox and the budgets."""

from __future__ import annotations

import random

import pytest

from guard.policy.predicates.abi import (
    Budget,
    ColumnSpec,
    PAffix,
    PAnd,
    PCompare,
    PExpr,
    PIn,
    PNot,
    POr,
    PWildcard,
)
from guard.policy.predicates.lua import LuaBackend
from guard.policy.predicates.reference import run_batch
from tests.unit.policy.predicates.differential import CASES, SI, N, S, batch, check_parity

BACKEND = LuaBackend()


@pytest.mark.parametrize(("expr", "specs", "host_count"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parity(expr: PExpr, specs: tuple[ColumnSpec, ...], host_count: int) -> None:
    check_parity(BACKEND, expr, specs, host_count)


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 65, 4096])
@pytest.mark.parametrize("case", ["and3", "or3", "nested", "like_many"])
def test_parity_batch_sizes(case: str, n: int) -> None:
    _, expr, specs, host_count = next(c for c in CASES if c[0] == case)
    check_parity(BACKEND, expr, specs, host_count, n=n)


def test_empty_batch_is_zero() -> None:
    compiled = BACKEND.compile(PCompare(0, "==", "a"), (S,), 0, budget=Budget())
    assert compiled.run([[]], [], 0) == 0


def test_bitmap_bits_land_on_their_events() -> None:
    compiled = BACKEND.compile(PCompare(0, "==", 1), (N,), 0, budget=Budget())
    for n in (1, 32, 33, 100):
        for hit in {0, n // 2, n - 1}:
            column = [1 if i == hit else 0 for i in range(n)]
            assert compiled.run([column], [], n) == 1 << hit


WILDCARD_STRINGS = [
    "", "a", "é", "éé", "aéb", "a日b", "日", "日本", "x日y", "xy", "x\ny", "aaab", "abab", "ab",
    "aXbXc", "abc", "a*b", "a?b", "🐍", "a🐍b", "a🐍🐍b", "ba", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]  # fmt: skip
WILDCARD_PATTERNS = [
    "?", "??", "???", "a?b", "a??b", "*?", "?*", "*?*", "a*?b", "a?*b", "*a?b*", "*日*", "?日?",
    "x?y", "a*b*c", "*a*a*a*b", "*a*a*a*a*a*b", "a*", "*b", "a*b", "*", "**",
    "", "a**b", "*ab*ab*", "?*?*?", "a🐍*", "*🐍?",
]  # fmt: skip


@pytest.mark.parametrize("pattern", WILDCARD_PATTERNS)
def test_wildcard_code_points(pattern: str) -> None:
    expr = PWildcard(0, (pattern,), False)
    compiled = BACKEND.compile(expr, (S,), 0, budget=Budget())
    column = [*WILDCARD_STRINGS, None]
    n = len(column)
    assert compiled.run([column], [], n) == run_batch(expr, [column], [], n)


def test_wildcard_is_linear_on_backtracking_patterns() -> None:
    # Python's regex needs seconds for the first pattern on 33 a's; the Lua matcher is greedy per chunk
    miss = PWildcard(0, ("*a*a*a*a*a*a*a*a*a*a*c*b", "*a?a?a?c*", "?*a*a*a*a*a*a*a*a*a*a*ac"), False)
    hit = PWildcard(0, ("*a*a*a*a*a*a*a*a*a*a*b", "*a?a?a?a?a?a?a?b"), False)
    column = ["a" * 20_000, "a" * 20_000 + "b"]
    assert BACKEND.compile(miss, (S,), 0, budget=Budget()).run([column], [], 2) == 0
    assert BACKEND.compile(hit, (S,), 0, budget=Budget()).run([column], [], 2) == 0b10


def test_case_folding_is_ascii_only() -> None:
    expr = PIn(0, ("abc",), case_insensitive=True)
    compiled = BACKEND.compile(expr, (SI,), 0, budget=Budget())
    assert compiled.run([["ABC", "aBc", "abd", None]], [], 4) == 0b0011
    # string.lower leaves every non-ASCII byte alone, whatever the locale
    probe = BACKEND.compile(PAffix(0, "contains", "é", case_insensitive=True), (SI,), 0, budget=Budget())
    assert probe.run([["É", "é", "xéx"]], [], 3) == 0b110


def test_string_order_is_code_point_order() -> None:
    expr = PCompare(0, "<", "é")
    values = ["z", "é", "ê", "日", "\x00", "", "e", "🐍", "ÿ"]
    compiled = BACKEND.compile(expr, (S,), 0, budget=Budget())
    assert compiled.run([values], [], len(values)) == run_batch(expr, [values], [], len(values))


def test_ints_at_the_edge_of_doubles() -> None:
    wide = ColumnSpec("n", frozenset({"int", "float"}))
    column: list[int | float | None] = [
        2**53,
        -(2**53),
        2**53 - 1,
        0,
        None,
        1e300,
        float("inf"),
        float("nan"),
    ]
    for lit in (2**53, 2**53 + 1, -(2**53) - 1, 2**64, 10**400, -(10**400)):
        for op in ("==", "!=", "<", "<=", ">", ">="):
            expr = PCompare(0, op, lit)
            compiled = BACKEND.compile(expr, (wide,), 0, budget=Budget())
            want = run_batch(expr, [column], [], len(column))
            assert compiled.run([column], [], len(column)) == want, (op, lit)


def test_int_in_set_with_unrepresentable_values() -> None:
    expr = PIn(0, (2**53 + 1, 5))
    compiled = BACKEND.compile(expr, (N,), 0, budget=Budget())
    column = [2**53, 5, None, 2**53 - 1]
    assert compiled.run([column], [], 4) == run_batch(expr, [column], [], 4) == 0b10


def test_random_deep_conditions_match_the_reference() -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible test data
    specs = (S, N, SI)

    def leaf() -> PExpr:
        pick = rng.randrange(5)
        if pick == 0:
            return PCompare(1, rng.choice(["==", "!=", "<", "<=", ">", ">="]), rng.choice([0, 7, 443, -1]))
        if pick == 1:
            return PCompare(0, rng.choice(["==", "<", ">="]), rng.choice(["a", "cmd.exe", "é", ""]))
        if pick == 2:
            return PWildcard(
                rng.choice([0, 2]), (rng.choice(["*.exe", "a?c", "*a*b", "?", "c*"]),), rng.random() < 0.5
            )
        if pick == 3:
            return PAffix(
                2, rng.choice(["startswith", "endswith", "contains"]), rng.choice(["a", "cmd", ""]), True
            )
        return PIn(1, (7, 8, 443), negated=rng.random() < 0.5)

    def tree(depth: int) -> PExpr:
        if depth == 0 or rng.random() < 0.3:
            return leaf()
        kind = rng.randrange(3)
        if kind == 0:
            return PNot(tree(depth - 1))
        terms = tuple(tree(depth - 1) for _ in range(rng.randint(1, 4)))
        return PAnd(terms) if kind == 1 else POr(terms)

    for k in range(25):
        check_parity(BACKEND, tree(4), specs, 0, n=200 + k)


def test_source_is_the_generated_lua() -> None:
    compiled = BACKEND.compile(
        PAnd((PWildcard(0, ("*.exe",), False), PCompare(1, ">", 7))), (S, N), 0, budget=Budget()
    )
    assert compiled.source.startswith("-- predicate pred")
    assert '".exe"' in compiled.source
    assert "> 7" in compiled.source


def test_large_random_batch() -> None:
    _, expr, specs, host_count = next(c for c in CASES if c[0] == "nested")
    columns, host = batch(specs, host_count, 4096, seed=11, int_bits=53)
    compiled = BACKEND.compile(expr, specs, host_count, budget=Budget())
    assert compiled.run(columns, host, 4096) == run_batch(expr, columns, host, 4096)
