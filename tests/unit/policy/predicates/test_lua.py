"""The Lua predicate runtime: parity with the reference, user modules, the sandbox and the budgets."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest

from guard.errors import PolicyCompileError, PolicyError, PredicateTrap
from guard.policy.predicates.abi import (
    Budget,
    ColumnSpec,
    CompiledBatch,
    NativeValue,
    PAffix,
    PAnd,
    PCompare,
    PConst,
    PExpr,
    PIn,
    PNot,
    POr,
    PUser,
    PWildcard,
    UserModule,
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


# ---- user modules

DATA = Path(__file__).parent / "data"
CMD = ColumnSpec("process.command_line", frozenset({"str"}))


def module(name: str) -> UserModule:
    path = DATA / name
    return UserModule("lua", path, path.read_bytes())


def user(
    function: str, *args: tuple[str, NativeValue], op: str | None = None, value: float | None = None
) -> PUser:
    return PUser("lua", function, tuple(args), op, value)


def shannon(s: str) -> float:
    data = s.encode()
    return -sum(c / len(data) * math.log2(c / len(data)) for c in Counter(data).values()) if data else 0.0


def test_entropy_compared_with_a_literal() -> None:
    values: list[str | None] = [
        "aaaaaaaa",
        "powershell -enc " + "".join(chr(33 + (i * 37) % 90) for i in range(200)),
        None,
        "abc",
        "",
    ]
    expr = user("entropy", ("col", 0), op=">", value=4.5)
    compiled = BACKEND.compile(expr, (CMD,), 0, budget=Budget(), modules=[module("entropy.lua")])
    want = sum(1 << i for i, v in enumerate(values) if v is not None and shannon(v) > 4.5)
    assert want == 0b10  # the one high-entropy command line
    assert compiled.run([values], [], len(values)) == want
    # null in, 0 out: "entropy(null) <= 1" is True for the null event
    low = BACKEND.compile(
        user("entropy", ("col", 0), op="<=", value=1),
        (CMD,),
        0,
        budget=Budget(),
        modules=[module("entropy.lua")],
    )
    assert low.run([values], [], len(values)) == 0b10101


def test_boolean_results_returned_table_and_globals() -> None:
    paths = ["/tmp/x", "/usr/bin/x", None, "/tmp/"]
    mods = [module("shapes.lua"), module("entropy.lua")]
    has_tmp = BACKEND.compile(user("has_tmp", ("col", 0)), (CMD,), 0, budget=Budget(), modules=mods)
    assert has_tmp.run([paths], [], 4) == 0b1001
    # the null event gives false (has_tmp returns false for nil), so "not" of it is true
    not_tmp = BACKEND.compile(PNot(user("has_tmp", ("col", 0))), (CMD,), 0, budget=Budget(), modules=mods)
    assert not_tmp.run([paths], [], 4) == 0b0110
    is_null = BACKEND.compile(user("is_null", ("col", 0)), (CMD,), 0, budget=Budget(), modules=mods)
    assert is_null.run([paths], [], 4) == 0b0100
    glob = BACKEND.compile(user("helper_global", ("lit", "yes")), (), 0, budget=Budget(), modules=mods)
    assert glob.run([], [], 3) == 0b111


def test_literal_arguments_and_number_results() -> None:
    mods = [module("shapes.lua")]
    expr = user("len", ("col", 0), ("lit", 10), op="==", value=13)
    compiled = BACKEND.compile(expr, (CMD,), 0, budget=Budget(), modules=mods)
    assert compiled.run([["abc", "abcd", "xyz"]], [], 3) == 0b101


def test_result_of_another_type_is_null() -> None:
    mods = [module("shapes.lua")]
    as_number = user("describe", ("col", 0), op=">", value=0)
    as_bool = user("describe", ("col", 0))
    number_as_bool = user("len", ("col", 0), ("lit", 0))
    bool_as_number = user("has_tmp", ("col", 0), op="==", value=1)
    for e in (as_number, as_bool, number_as_bool, bool_as_number):
        for shown in (e, PNot(e)):  # null: neither the condition nor its negation is True
            compiled = BACKEND.compile(shown, (CMD,), 0, budget=Budget(), modules=mods)
            assert compiled.run([["/tmp/a", "b"]], [], 2) == 0, shown
        null_or = BACKEND.compile(POr((e, PConst(True))), (CMD,), 0, budget=Budget(), modules=mods)
        assert null_or.run([["/tmp/a", "b"]], [], 2) == 0b11


def test_user_calls_mix_with_native_leaves() -> None:
    mods = [module("entropy.lua")]
    expr = PAnd((PWildcard(0, ("*.exe",), False), user("entropy", ("col", 0), op="<", value=3)))
    compiled = BACKEND.compile(expr, (CMD,), 0, budget=Budget(), modules=mods)
    assert compiled.run([["a.exe", "a.bin", None, "qwertyuiopasdfgh.exe"]], [], 4) == 0b0001


# ---- the sandbox, probed from inside a module

FORBIDDEN = [
    "io", "os", "require", "load", "loadstring", "loadfile", "dofile", "debug", "jit", "ffi",
    "package", "module", "collectgarbage", "gcinfo", "getfenv", "setfenv", "newproxy", "print",
    "coroutine", "python",
]  # fmt: skip


@pytest.mark.parametrize("name", FORBIDDEN)
def test_forbidden_global_is_nil(name: str) -> None:
    absent = BACKEND.compile(
        user("absent", ("lit", name)), (), 0, budget=Budget(), modules=[module("probes.lua")]
    )
    assert absent.run([], [], 1) == 1


@pytest.mark.parametrize(
    "name", ["pairs", "string", "math", "table", "bit", "pcall", "setmetatable", "rawget"]
)
def test_allowed_global_is_there(name: str) -> None:
    # the probe itself can fail: it answers False for a global the sandbox does provide
    absent = BACKEND.compile(
        user("absent", ("lit", name)), (), 0, budget=Budget(), modules=[module("probes.lua")]
    )
    assert absent.run([], [], 1) == 0


def test_string_dump_is_gone_from_the_module_string_table() -> None:
    mods = [module("probes.lua")]
    has = BACKEND.compile(user("string_has", ("lit", "dump")), (), 0, budget=Budget(), modules=mods)
    assert has.run([], [], 1) == 0
    has_rep = BACKEND.compile(user("string_has", ("lit", "rep")), (), 0, budget=Budget(), modules=mods)
    assert has_rep.run([], [], 1) == 1


def test_string_metatable_is_closed() -> None:
    mods = [module("probes.lua")]
    locked = BACKEND.compile(user("string_meta_locked"), (), 0, budget=Budget(), modules=mods)
    assert locked.run([], [], 1) == 1
    # methods on strings still work (they use the real string table, which nobody can reach)
    method = BACKEND.compile(user("method_lower", ("col", 0)), (CMD,), 0, budget=Budget(), modules=mods)
    assert method.run([["ABC", "abd"]], [], 2) == 0b01


def test_tampering_with_string_functions_leaves_the_predicate_alone() -> None:
    # probes.lua overwrites string.lower/upper/sub/find/byte in its environment while loading
    mods = [module("probes.lua")]
    leaves = PAnd(
        (
            PAffix(0, "startswith", "cmd", case_insensitive=True),
            PAffix(0, "endswith", ".exe"),
            PAffix(0, "contains", "d.", case_insensitive=True),
            PWildcard(0, ("c?d*",), True),
            user("string_meta_locked"),
        )
    )
    compiled = BACKEND.compile(leaves, (SI,), 0, budget=Budget(), modules=mods)
    assert "probes.lua" not in compiled.source
    values = ["CMD.exe", "cmd.EXE", "xcmd.exe", "cmd.exe"]
    assert compiled.run([values], [], 4) == 0b1001


def test_python_is_unreachable() -> None:
    reach = BACKEND.compile(user("python_reachable"), (), 0, budget=Budget(), modules=[module("probes.lua")])
    assert reach.run([], [], 1) == 0


# ---- budgets

SMALL = Budget(per_event=20_000, base=20_000, memory_bytes=4 * 1024 * 1024)


def trap_of(compiled: CompiledBatch, values: list[str | None]) -> PredicateTrap:
    with pytest.raises(PredicateTrap) as info:
        compiled.run([values], [], len(values))
    return info.value


def assert_still_works(mod: str, budget: Budget) -> None:
    fine = BACKEND.compile(user("ok", ("col", 0)), (CMD,), 0, budget=budget, modules=[module(mod)])
    assert fine.run([["fine", "no"]], [], 2) == 0b01


# spin: every iteration takes several instructions, so the trapped batch ran fewer iterations than
# its allowance has instructions; swallow: no handler got the loop past its first attempt
LOOP_BOUNDS = {"spin": (1, SMALL.for_batch(2) // 2), "swallow": (1, 1)}


@pytest.mark.parametrize("function", ["spin", "swallow"])
def test_infinite_loop_traps_fuel_and_the_next_batch_works(function: str) -> None:
    low, high = LOOP_BOUNDS[function]
    ran = PAnd(
        (
            PCompare(0, "==", "count"),
            user("iterations", ("col", 0), op=">=", value=low),
            user("iterations", ("col", 0), op="<=", value=high),
        )
    )
    looping = PAnd((PCompare(0, "!=", "count"), user(function, ("col", 0))))
    expr = POr((PCompare(0, "==", "fine"), looping, ran))
    compiled = BACKEND.compile(expr, (CMD,), 0, budget=SMALL, modules=[module("loop.lua")])
    trap = trap_of(compiled, ["x", "y"])
    assert trap.kind == "fuel"
    assert compiled.run([["count"]], [], 1) == 1  # stopped by the batch's instruction allowance
    # same compiled predicate: events that never reach the user call are decided again
    assert compiled.run([["fine"] * 3], [], 3) == 0b111
    assert trap_of(compiled, ["fine", "z"]).kind == "fuel"
    assert compiled.run([["fine"]], [], 1) == 1


def test_fuel_scales_with_the_batch() -> None:
    # 20k instructions per event: a loop of ~5k iterations per event fits, 200 events or 1
    expr = user("ok", ("col", 0))
    compiled = BACKEND.compile(expr, (CMD,), 0, budget=SMALL, modules=[module("loop.lua")])
    assert compiled.run([["fine"] * 200], [], 200) == (1 << 200) - 1


def test_deep_recursion_traps_stack() -> None:
    expr = user("deep", ("lit", 0), op=">", value=0)
    compiled = BACKEND.compile(expr, (), 0, budget=Budget(), modules=[module("recurse.lua")])
    assert trap_of_empty(compiled).kind == "stack"
    assert trap_of_empty(compiled).kind == "stack"
    assert_still_works("recurse.lua", Budget())


def trap_of_empty(compiled: CompiledBatch) -> PredicateTrap:
    with pytest.raises(PredicateTrap) as info:
        compiled.run([], [], 1)
    return info.value


@pytest.mark.parametrize("function", ["grow", "double", "rep"])
def test_memory_bomb_traps_memory_and_the_runtime_recovers(function: str) -> None:
    budget = Budget(per_event=10**9, base=0, memory_bytes=4 * 1024 * 1024)
    expr = POr((PCompare(0, "==", "fine"), user(function, ("col", 0), op=">", value=0)))
    compiled = BACKEND.compile(expr, (CMD,), 0, budget=budget, modules=[module("membomb.lua")])
    for _ in range(3):
        assert trap_of(compiled, ["a"]).kind == "memory"
        assert compiled.run([["fine", "fine"]], [], 2) == 0b11
        # the bomb's garbage is collected (LuaJIT keeps half its concat buffer for one more cycle)
        assert compiled.memory_in_use() < budget.memory_bytes // 2


# ---- bad modules


@pytest.mark.parametrize(
    ("mod", "needle"),
    [
        ("bad_syntax.lua", "bad_syntax.lua:3:"),
        ("load_error.lua", "load_error.lua:3: no config"),
        ("load_loop.lua", "(fuel)"),
        ("load_memory.lua", "(memory)"),
    ],
)
def test_bad_module_is_a_policy_error_naming_the_file(mod: str, needle: str) -> None:
    with pytest.raises(PolicyError) as info:
        BACKEND.compile(
            user("entropy", ("col", 0), op=">", value=1), (CMD,), 0, budget=SMALL, modules=[module(mod)]
        )
    message = str(info.value)
    assert "\n" not in message
    assert str(DATA / mod) in message
    assert needle in message


def test_missing_function_names_the_modules_and_the_function() -> None:
    mods = [module("nothing.lua"), module("entropy.lua")]
    with pytest.raises(PolicyError, match=r"nothing\.lua, .*entropy\.lua: no lua function 'nope'"):
        BACKEND.compile(user("nope", ("col", 0)), (CMD,), 0, budget=Budget(), modules=mods)
    with pytest.raises(PolicyError, match=r"no \.lua module beside the policy: no lua function 'entropy'"):
        BACKEND.compile(user("entropy", ("col", 0)), (CMD,), 0, budget=Budget())


def test_a_function_defined_twice_is_refused() -> None:
    mods = [module("entropy.lua"), module("entropy_again.lua")]
    with pytest.raises(
        PolicyError, match=r"entropy_again\.lua: lua function 'entropy' is also defined by .*entropy\.lua"
    ):
        BACKEND.compile(
            user("entropy", ("col", 0), op=">", value=1), (CMD,), 0, budget=Budget(), modules=mods
        )


def test_wasm_call_is_refused() -> None:
    with pytest.raises(PolicyCompileError, match="cannot call wasm:entropy"):
        BACKEND.compile(PUser("wasm", "entropy", (("col", 0),), ">", 1), (CMD,), 0, budget=Budget())


@pytest.mark.parametrize("chunk", [1_000_000_000, 1000, 7])
def test_instruction_budget_is_the_batch_allowance(chunk: int) -> None:
    # 20k instructions for a batch of one event; the hook period does not change the total
    budget = Budget(per_event=15_000, base=5_000)
    mods = [module("loop.lua")]
    under = BACKEND.compile(user("burn", ("lit", 5_000)), (), 0, budget=budget, modules=mods)
    over = BACKEND.compile(user("burn", ("lit", 40_000)), (), 0, budget=budget, modules=mods)
    under.hook_chunk = over.hook_chunk = chunk
    assert under.run([], [], 1) == 1
    assert trap_of_empty(over).kind == "fuel"
    # two events: 35k instructions, so 2 x 15k fits and 2 x 40k does not
    assert under.run([], [], 2) == 0b11
    assert trap_of_empty(over).kind == "fuel"


def test_allowance_beyond_a_c_int_is_counted_in_chunks() -> None:
    budget = Budget(per_event=100_000, base=0)  # 3e9 instructions for 30k events: over 2**31
    compiled = BACKEND.compile(user("ok", ("col", 0)), (CMD,), 0, budget=budget, modules=[module("loop.lua")])
    assert budget.for_batch(30_000) > 2**31
    assert compiled.run([["fine"] * 30_000], [], 30_000) == (1 << 30_000) - 1


def test_error_in_user_code_traps_error_naming_the_module() -> None:
    # len(s, extra) does #s: a null argument is an error in the module
    compiled = BACKEND.compile(
        user("len", ("col", 0), ("lit", 1), op=">", value=0),
        (CMD,),
        0,
        budget=Budget(),
        modules=[module("shapes.lua")],
    )
    trap = trap_of(compiled, ["ab", None])
    assert trap.kind == "error"
    assert "shapes.lua:17:" in trap.detail
    assert "\n" not in trap.detail
    assert compiled.run([["ab", "c"]], [], 2) == 0b11


MIXED = ColumnSpec("x", frozenset({"str", "int", "float", "bool"}))
NUMERIC = ColumnSpec("x", frozenset({"int", "float", "bool"}))
MIXED_VALUES: list[NativeValue] = ["a", "443", 443, 443.0, 1, True, False, 0, None, "", 2.5, float("nan")]


@pytest.mark.parametrize(
    "expr",
    [
        PCompare(0, "==", "a"),
        PCompare(0, "!=", "a"),
        PCompare(0, "==", 443),
        PCompare(0, "!=", 1),
        PCompare(0, "==", 0),
        PIn(0, ("a", "443")),
        PIn(0, (443, 1), negated=True),
        PIn(0, (0,)),
    ],
    ids=repr,
)
def test_columns_of_several_kinds_compare_like_python(expr: PExpr) -> None:
    n = len(MIXED_VALUES)
    for e in (expr, PNot(expr)):
        compiled = BACKEND.compile(e, (MIXED,), 0, budget=Budget())
        assert compiled.run([MIXED_VALUES], [], n) == run_batch(e, [MIXED_VALUES], [], n)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_numeric_column_orders_bools_as_ints(op: str) -> None:
    values = [v for v in MIXED_VALUES if not isinstance(v, str)]
    for e in (PCompare(0, op, 1), PNot(PCompare(0, op, 1))):
        compiled = BACKEND.compile(e, (NUMERIC,), 0, budget=Budget())
        assert compiled.run([values], [], len(values)) == run_batch(e, [values], [], len(values))


def test_values_outside_the_column_kinds_are_unordered_and_null_for_string_tests() -> None:
    values: list[NativeValue] = [5, "b", None]
    lt = BACKEND.compile(PCompare(0, "<", "c"), (MIXED,), 0, budget=Budget())
    not_lt = BACKEND.compile(PNot(PCompare(0, "<", "c")), (MIXED,), 0, budget=Budget())
    assert lt.run([values], [], 3) == 0b010
    assert not_lt.run([values], [], 3) == 0b001  # 5 < "c" is false, null stays null
    like = BACKEND.compile(PNot(PWildcard(0, ("*",), False)), (MIXED,), 0, budget=Budget())
    assert like.run([values], [], 3) == 0  # a number is null for a string test, like null
