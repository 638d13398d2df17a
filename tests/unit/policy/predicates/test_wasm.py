"""The Wasm predicate runtime: parity with the Python reference, user modules, budgets and traps."""

from __future__ import annotations

import math
import random
import resource
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import wasmtime

from guard.errors import PolicyError, PredicateTrap
from guard.policy.predicates.abi import (
    Budget,
    ColumnSpec,
    NativeValue,
    PAnd,
    PCompare,
    PExpr,
    PHost,
    PIn,
    PNot,
    POr,
    PUser,
    PWildcard,
    UserModule,
)
from guard.policy.predicates.reference import run_batch
from guard.policy.predicates.wasm import WasmBackend
from tests.unit.policy.predicates.differential import CASES, SI, N, S, check_parity

DATA = Path(__file__).parent / "data"
#: the example modules shipped with the bundled policies
EXAMPLES = Path(__file__).resolve().parents[4] / "policies" / "modules"
BACKEND = WasmBackend()


def module(name: str) -> UserModule:
    path = DATA / name if (DATA / name).exists() else EXAMPLES / name
    return UserModule("wasm", path, path.read_bytes())


def truths(
    expr: PExpr,
    specs: Sequence[ColumnSpec],
    columns: Sequence[Sequence[NativeValue]],
    *,
    host: Sequence[Sequence[bool | None]] = (),
    modules: Sequence[UserModule] = (),
    budget: Budget | None = None,
) -> list[bool | None]:
    """Each event's three-valued truth as the backend decides it (from expr and not expr)."""
    n = len(columns[0]) if columns else len(host[0])
    b = budget or Budget()
    yes = BACKEND.compile(expr, specs, len(host), budget=b, modules=modules).run(columns, host, n)
    no = BACKEND.compile(PNot(expr), specs, len(host), budget=b, modules=modules).run(columns, host, n)
    assert yes & no == 0
    return [True if yes >> i & 1 else False if no >> i & 1 else None for i in range(n)]


def same_as_reference(
    expr: PExpr, specs: Sequence[ColumnSpec], columns: Sequence[Sequence[NativeValue]]
) -> None:
    n = len(columns[0])
    for e in (expr, PNot(expr)):
        got = BACKEND.compile(e, specs, 0, budget=Budget()).run(columns, [], n)
        assert got == run_batch(e, columns, [], n), e


# ---- parity with the reference


@pytest.mark.parametrize(("expr", "specs", "host_count"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parity(expr: PExpr, specs: tuple[ColumnSpec, ...], host_count: int) -> None:
    check_parity(BACKEND, expr, specs, host_count)


BIG = {
    name: (e, specs, h)
    for name, e, specs, h in CASES
    if name in {"and3", "or3", "nested", "like_many", "in_ci"}
}


@pytest.mark.parametrize("n", [0, 1, 7, 8, 63, 64, 65, 4096])
@pytest.mark.parametrize("name", sorted(BIG))
def test_parity_batch_sizes(name: str, n: int) -> None:
    expr, specs, host_count = BIG[name]
    check_parity(BACKEND, expr, specs, host_count, n=n)


MIXED_NUM = ColumnSpec("x", frozenset({"int", "float", "bool"}))
MIXED_STR = ColumnSpec("x", frozenset({"str", "int"}))


@pytest.mark.parametrize(
    ("expr", "spec"),
    [
        (PCompare(0, "<", 1), MIXED_NUM),
        (PCompare(0, "==", 0), MIXED_NUM),
        (PCompare(0, ">=", 3), MIXED_NUM),
        (PCompare(0, "!=", 1), MIXED_NUM),
        (PIn(0, (0, 1, 7)), MIXED_NUM),
        (PCompare(0, "==", "a"), MIXED_STR),
        (PCompare(0, "!=", 443), MIXED_STR),
        (PIn(0, ("a", "cmd.exe")), MIXED_STR),
        (PIn(0, (443, 7), negated=True), MIXED_STR),
        (PCompare(0, "<", 2**70), N),
        (PCompare(0, ">", -(2**70)), N),
        (PCompare(0, "==", 2**70), N),
        (PIn(0, (2**70, 443)), N),
    ],
    ids=repr,
)
def test_parity_mixed_kinds_and_wide_literals(expr: PExpr, spec: ColumnSpec) -> None:
    check_parity(BACKEND, expr, (spec,), 0, n=500)


def test_code_points_beyond_the_differential_strings() -> None:
    values: list[NativeValue] = [
        "\udcff",
        "a\udcffb",
        "😀",
        "a😀b",
        "é😀",
        "\U0010ffff",
        "\uffff",
        "ab\x00c",
        None,
    ]
    col = [values * 3]
    for expr in (
        PWildcard(0, ("?", "a?b", "??", "*?", "?*?"), False),
        PCompare(0, "<", "\ud800"),
        PCompare(0, ">", "\uffff"),
        PCompare(0, "<=", "😀"),
        PIn(0, ("\udcff", "😀")),
    ):
        same_as_reference(expr, (S,), col)


@pytest.mark.parametrize("ci", [False, True])
def test_random_wildcards_match_the_reference(ci: bool) -> None:
    rng = random.Random(7)  # noqa: S311 - test data, reproducible by seed
    letters = "aAb*?" if ci else "ab\u00e9\u65e5\n*?"
    values = "aAb" if ci else "ab\u00e9\u65e5\n"
    spec = SI if ci else S
    col: list[NativeValue] = [
        "".join(rng.choice(values) for _ in range(rng.randrange(7))) for _ in range(300)
    ]
    for _ in range(40):
        patterns = tuple("".join(rng.choice(letters) for _ in range(rng.randrange(6))) for _ in range(2))
        same_as_reference(PWildcard(0, patterns, ci), (spec,), [col])


def test_wildcard_backtracking_is_not_exponential() -> None:
    # the generated code burns fuel too (a few dozen units per byte a pattern scans): 4000
    # bytes against two patterns stay inside the default per-event budget
    expr = PWildcard(0, ("*a*a*a*b", "*a*a*a*a*a*a*c"), False)
    long_a = "a" * 4000
    got = truths(expr, (S,), [[long_a, long_a + "b"]])
    assert got == [False, True]
    # and the fuel spent grows at most linearly: ten times the bytes fit a budget linear in them,
    # where a backtracking matcher would need a hundred times the fuel and trap
    for length in (4_000, 40_000):
        text = "a" * length
        linear = Budget(per_event=200 * length)
        assert truths(expr, (S,), [[text, text + "b"]], budget=linear) == [False, True]


def test_case_folding_is_ascii_only() -> None:
    col: list[NativeValue] = ["CMD.EXE", "Cmd.Exe", "cmd.exe", "CMD.EXF", "[CMD]", "@cmd"]
    assert truths(PWildcard(0, ("CMD.*",), True), (SI,), [col]) == [True, True, True, True, False, False]
    assert truths(PIn(0, ("cmd.exe",), case_insensitive=True), (SI,), [col]) == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    # '[' and '@' sit next to A-Z: they are not folded to '{' and '`'
    assert truths(PIn(0, ("{cmd}", "`cmd"), case_insensitive=True), (SI,), [col]) == [False] * 6


def test_host_columns_and_three_valued_logic() -> None:
    host = [[True, True, True, False, False, False, None, None, None], [True, False, None] * 3]
    assert truths(PAnd((PHost(0), PHost(1))), (), [], host=host) == [
        True, False, None, False, False, False, None, False, None,
    ]  # fmt: skip
    assert truths(POr((PHost(0), PHost(1))), (), [], host=host) == [
        True, True, True, True, False, None, True, None, None,
    ]  # fmt: skip


def test_source_is_the_wat_text_and_the_batch_may_be_longer_than_n() -> None:
    compiled = BACKEND.compile(PCompare(0, ">", 7), (N,), 0, budget=Budget())
    assert compiled.source.startswith("(module")
    assert '(export "run")' in compiled.source
    assert compiled.run([[8, 9, 1, 10]], [], 2) == 0b11


def test_a_value_outside_the_column_kinds_is_refused() -> None:
    compiled = BACKEND.compile(PCompare(0, ">", 7), (N,), 0, budget=Budget())
    with pytest.raises(TypeError, match=r"column 0 \(destination.port\)"):
        compiled.run([[8, "x"]], [], 2)


def test_a_batch_larger_than_the_memory_cap_traps_and_the_next_fits() -> None:
    compiled = BACKEND.compile(PCompare(0, "==", "x"), (S,), 0, budget=Budget(memory_bytes=4 * 65536))
    with pytest.raises(PredicateTrap) as err:
        compiled.run([["x" * 1000] * 400], [], 400)
    assert err.value.kind == "memory"
    assert compiled.run([["x", "y"]], [], 2) == 0b01


# ---- user functions


ENTROPY, STRLEN = module("entropy.wat"), module("strlen.wat")
USERS = (ENTROPY, STRLEN)
STRINGS: list[str | None] = ["abc", "aaaa", "日本語x", "qwertyuiopasdfgh", None, "", "a1", "x\ny"]


def entropy(s: str) -> float:
    data = s.encode()
    return -sum(c / len(data) * math.log2(c / len(data)) for c in Counter(data).values())


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0, 3.0, 3.9, 4.0])
def test_entropy_compared(threshold: float) -> None:
    got = truths(PUser("wasm", "entropy", (("col", 0),), ">", threshold), (S,), [STRINGS], modules=USERS)
    # null is passed as (0, 0): the module's entropy of no bytes, 0.0
    assert got == [entropy(s or "") > threshold for s in STRINGS]


def test_strlen_counts_code_points_and_a_null_argument_is_empty() -> None:
    got = truths(PUser("wasm", "strlen", (("col", 0),), "==", 4), (S,), [STRINGS], modules=USERS)
    assert got == [len(s or "") == 4 for s in STRINGS]
    got = truths(PUser("wasm", "strlen", (("col", 0),), "<", 1), (S,), [STRINGS], modules=USERS)
    assert got == [s is None or s == "" for s in STRINGS]


def test_boolean_result_and_wrong_result_types_are_null() -> None:
    assert truths(PUser("wasm", "has_digit", (("col", 0),), None), (S,), [STRINGS], modules=USERS) == [
        s is not None and any(c.isdigit() for c in s) for s in STRINGS
    ]
    # a number taken as a boolean, a boolean compared, a comparison with null: null
    for call in (
        PUser("wasm", "strlen", (("col", 0),), None),
        PUser("wasm", "has_digit", (("col", 0),), ">", 0),
        PUser("wasm", "strlen", (("col", 0),), ">", None),
    ):
        assert truths(call, (S,), [STRINGS], modules=USERS) == [None] * len(STRINGS)
    # null inside logic: null or true is true
    either = POr((PUser("wasm", "strlen", (("col", 0),), None), PCompare(0, "==", "abc")))
    assert truths(either, (S,), [STRINGS], modules=USERS)[:2] == [True, None]


def test_scalar_parameters_and_literal_arguments() -> None:
    num = ColumnSpec("n", frozenset({"int", "float"}))
    flag = ColumnSpec("b", frozenset({"bool"}))
    ints: list[NativeValue] = [2, 3, None, -4, 2**62 + 1]
    assert truths(PUser("wasm", "is_even", (("col", 0),), None), (N,), [ints], modules=USERS) == [
        True,
        False,
        True,
        True,
        False,
    ]  # fmt: skip  (null is 0: even)
    nums: list[NativeValue] = [7, 7.0, 3.5, None, 1e300]
    assert truths(PUser("wasm", "half", (("col", 0),), "==", 3.5), (num,), [nums], modules=USERS) == [
        True, True, False, False, False,
    ]  # fmt: skip
    assert truths(PUser("wasm", "half", (("col", 0),), ">", 10), (num,), [nums], modules=USERS)[4] is True
    assert truths(PUser("wasm", "negate", (("col", 0),), None), (flag,), [[True, False, None]], modules=USERS) == [
        False, True, True,
    ]  # fmt: skip
    plus = PUser("wasm", "len_plus", (("col", 0), ("lit", 10)), "==", 13)
    assert truths(plus, (S,), [["abc", "ab", "日"]], modules=USERS) == [True, False, True]
    lit_str = PUser("wasm", "len_plus", (("lit", "日本"), ("col", 0)), ">=", 7)
    assert truths(lit_str, (N,), [[1, 0, None]], modules=USERS) == [True, False, False]
    # a column value of a kind the parameter does not take: the call is null, not made
    assert truths(PUser("wasm", "strlen", (("col", 0),), ">", 0), (MIXED_STR,), [["ab", 5, None]], modules=USERS) == [
        True, None, False,
    ]  # fmt: skip


def test_binary_wasm_module(tmp_path: Path) -> None:
    path = tmp_path / "strlen.wasm"
    path.write_bytes(wasmtime.wat2wasm((DATA / "strlen.wat").read_text()))
    binary = UserModule("wasm", path, path.read_bytes())
    got = truths(PUser("wasm", "strlen", (("col", 0),), ">", 3), (S,), [STRINGS], modules=(binary,))
    assert got == [len(s or "") > 3 for s in STRINGS]


def test_user_call_inside_a_large_batch_matches_python() -> None:
    col = [STRINGS[i % len(STRINGS)] for i in range(4096)]
    expr = PAnd((PUser("wasm", "entropy", (("col", 0),), ">=", 1.5), PWildcard(0, ("*a*", "*x*"), False)))
    got = truths(expr, (S,), [col], modules=USERS)
    # entropy(null) is 0.0 (no bytes): False, which decides the conjunction before the null wildcard
    want = [entropy(s or "") >= 1.5 and (None if s is None else "a" in s or "x" in s) for s in col]
    assert got == want


@pytest.mark.parametrize(
    ("call", "modules", "pattern"),
    [
        (
            PUser("wasm", "nope", (("col", 0),), None),
            USERS,
            r"wasm:nope: no module .*entropy\.wat.*strlen\.wat",
        ),
        (
            PUser("wasm", "oops", (), None),
            (module("broken.wat"),),
            r"broken\.wat: does not compile .*wasm:oops",
        ),
        (
            PUser("wasm", "own", (("lit", 1),), None),
            (module("own_memory.wat"),),
            r"own_memory\.wat: defines its own memory .*wasm:own",
        ),
        (
            PUser("wasm", "noisy", (("lit", 1),), None),
            (module("bad_import.wat"),),
            r"bad_import\.wat: imports env\.print",
        ),
        (PUser("wasm", "strlen", (), "==", 1), USERS, r"strlen\.wat: wasm:strlen: takes 2 parameters"),
        (PUser("wasm", "is_even", (("lit", "x"),), None), USERS, r"strlen\.wat: wasm:is_even: argument 1"),
        (PUser("wasm", "is_even", (("lit", 1.5),), None), USERS, r"strlen\.wat: wasm:is_even: argument 1"),
        (
            PUser("wasm", "strlen", (("col", 0),), None),
            (STRLEN, STRLEN),
            r"wasm:strlen: exported by more than one",
        ),
    ],
    ids=[
        "missing",
        "broken",
        "own_memory",
        "bad_import",
        "arity",
        "literal_type",
        "literal_float",
        "ambiguous",
    ],
)
def test_bad_user_modules_are_policy_errors(call: PUser, modules: Sequence[UserModule], pattern: str) -> None:
    with pytest.raises(PolicyError, match=pattern) as err:
        BACKEND.compile(call, (S,), 0, budget=Budget(), modules=modules)
    assert "\n" not in str(err.value)


# ---- budgets


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def test_infinite_loop_runs_out_of_fuel_and_the_predicate_stays_usable() -> None:
    budget = Budget(per_event=20_000, base=10_000)
    compiled = BACKEND.compile(
        PUser("wasm", "spin", (("col", 0),), None), (N,), 0, budget=budget, modules=(module("spin.wat"),)
    )
    with pytest.raises(PredicateTrap) as err:
        compiled.run([[1, -1, 2]], [], 3)
    assert err.value.kind == "fuel"
    assert compiled.run([[1, 2, None]], [], 3) == 0b111
    # what stops it is the batch's fuel (3 x 20k + 10k): bounded loops of about 9 units an
    # iteration fit it (54k) or trap the same way (90k)
    burn = BACKEND.compile(
        PUser("wasm", "burn", (("col", 0),), None), (N,), 0, budget=budget, modules=(module("spin.wat"),)
    )
    assert burn.run([[2_000, 2_000, 2_000]], [], 3) == 0b111
    with pytest.raises(PredicateTrap) as err:
        burn.run([[2_000, 2_000, 6_000]], [], 3)
    assert err.value.kind == "fuel"


def test_deep_recursion_overflows_the_stack_and_the_predicate_stays_usable() -> None:
    compiled = BACKEND.compile(
        PUser("wasm", "depth", (("col", 0),), "==", 100),
        (N,),
        0,
        budget=Budget(),
        modules=(module("recurse.wat"),),
    )
    with pytest.raises(PredicateTrap) as err:
        compiled.run([[100, 10**9]], [], 2)
    assert err.value.kind == "stack"
    assert compiled.run([[100, 99]], [], 2) == 0b01


def test_memory_bomb_hits_the_cap_and_the_predicate_stays_usable() -> None:
    cap = 4 * 1024 * 1024
    compiled = BACKEND.compile(
        PUser("wasm", "bomb", (("col", 0),), None),
        (N,),
        0,
        budget=Budget(memory_bytes=cap),
        modules=(module("bomb.wat"),),
    )
    before = rss_bytes()
    with pytest.raises(PredicateTrap) as err:
        compiled.run([[0, 1]], [], 2)
    grown = rss_bytes() - before
    assert err.value.kind == "memory"
    assert grown < 2 * cap, f"resident memory grew by {grown} bytes past a {cap} byte cap"
    assert compiled.run([[0, 0, None]], [], 3) == 0b111
