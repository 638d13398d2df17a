"""The host side of the runtime ABI: lowering, columns, escapes, host leaves, traps and fail modes.

A backend made of the Python reference (:mod:`guard.policy.predicates.reference`) stands in for
a runtime, so these tests check the host's part alone: over every condition of Elastic's corpus
and every event of its datasets, :class:`BatchPredicate` must agree with the codegen predicate.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from guard.errors import PolicyError, PredicateTrap
from guard.policy.analyzer import compile_query
from guard.policy.ast import Expr
from guard.policy.codegen import compile_predicate
from guard.policy.conformance import schema_for
from guard.policy.corpus import Dataset, default_corpus, load_corpus
from guard.policy.predicates import backend
from guard.policy.predicates.abi import (
    Backend,
    Budget,
    ColumnSpec,
    HostColumn,
    NativeValue,
    PExpr,
    UserModule,
)
from guard.policy.predicates.batch import MAX_ISOLATION_CALLS, BatchPredicate
from guard.policy.predicates.lowering import lower
from guard.policy.predicates.reference import run_batch
from guard.policy.schema import ECS


class _Compiled:
    def __init__(self, expr: PExpr, trap_on: frozenset[str] = frozenset()) -> None:
        self.expr = expr
        self.source = repr(expr)
        self.trap_on = trap_on
        self.calls = 0

    def run(self, columns: Sequence[Sequence[NativeValue]], host: Sequence[HostColumn], n: int) -> int:
        self.calls += 1
        if any(v in self.trap_on for c in columns for v in c if isinstance(v, str)):
            raise PredicateTrap("fuel", "budget of the batch spent")
        return run_batch(self.expr, columns, host, n)


class RefBackend:
    """A runtime that is the Python reference; optionally traps on batches holding given strings."""

    name = "reference"

    def __init__(self, int_bits: int = 64, trap_on: frozenset[str] = frozenset()) -> None:
        self.int_bits = int_bits
        self.trap_on = trap_on
        self.compiled: list[_Compiled] = []

    def compile(
        self,
        expr: PExpr,
        columns: Sequence[ColumnSpec],
        host_count: int,
        *,
        budget: Budget,
        modules: Sequence[UserModule] = (),
        name: str = "pred",
    ) -> _Compiled:
        c = _Compiled(expr, self.trap_on)
        self.compiled.append(c)
        return c


def _conditions() -> list[tuple[str, Expr, Dataset]]:
    cases, datasets = load_corpus(default_corpus())
    out = []
    seen: set[tuple[str, str]] = set()
    for case in cases:
        dataset = datasets[case.dataset]
        schema = schema_for(dataset)
        ir = compile_query(case.query, schema)
        for step in [*ir.steps, *([ir.until] if ir.until else [])]:
            key = (dataset.name, step.condition.render())
            if key not in seen:
                seen.add(key)
                out.append((case.id, step.condition, dataset))
    return out


@pytest.mark.parametrize("runtime", ["reference-64", "reference-53", "wasm", "lua"])
def test_every_corpus_condition_agrees_with_codegen_on_every_dataset_event(runtime: str) -> None:
    """Per event, not only per query result: every condition of the corpus on every dataset event."""
    rt: Backend = backend(runtime) if runtime in ("wasm", "lua") else RefBackend(int(runtime[-2:]))
    checked = escaped = 0
    for case_id, condition, dataset in _conditions():
        schema = schema_for(dataset)
        pred = compile_predicate(condition, schema).fn
        events = list(dataset.events)
        bp = BatchPredicate(condition, rt, schema=schema)
        got = bp.decide(events)
        want = [pred(ev) for ev in events]
        assert got == want, f"{case_id}: {condition.render()}"
        checked += 1
        escaped += bp.stats.escaped
    assert checked > 150
    assert escaped > 0  # the datasets hold lists and mixed types: the host path is exercised


def test_lowering_keeps_native_what_codegen_inlines() -> None:
    ir = compile_query(
        'process where process.name : "*.EXE" and process.pid > 4 and process.name != "x" '
        'and startsWith~(process.executable, "C:") and process.args regex "a.*" and process.name in~ ("É")',
        ECS,
    )
    lw = lower(ir.steps[0].condition, ECS)
    assert [c.field for c in lw.columns] == ["process.name", "process.pid", "process.executable"]
    assert lw.columns[0].ascii_only
    assert [e.render() for e in lw.host_exprs] == ['process.args regex "a.*"', 'process.name in~ ("É")']
    assert lw.native_leaves == 4


def test_a_field_read_as_str_and_int_is_decided_on_the_host() -> None:
    ir = compile_query('process where ?process.x == "5" or ?process.x == 5', ECS)
    lw = lower(ir.steps[0].condition, ECS)
    assert lw.columns == ()
    assert len(lw.host_exprs) == 2


def test_wide_ints_stay_native_only_where_the_runtime_carries_them() -> None:
    cond = compile_query("process where process.pid == 9007199254740993", ECS).steps[0].condition
    assert lower(cond, ECS, int_bits=64).host_exprs == ()
    assert len(lower(cond, ECS, int_bits=53).host_exprs) == 1
    bp = BatchPredicate(cond, RefBackend(53))
    assert bp.decide([{"process": {"pid": 2**53 + 1}}, {"process": {"pid": 2**53}}]) == [True, False]


def test_user_calls_must_be_compared_with_a_number_or_stand_alone() -> None:
    ok = compile_query("process where lua:entropy(process.command_line) > 4.5", ECS).steps[0].condition
    assert lower(ok, ECS).user_langs == {"lua"}
    nested = (
        compile_query("process where lua:entropy(process.command_line) + 1 > 4.5", ECS).steps[0].condition
    )
    with pytest.raises(PolicyError, match="compared with a number literal"):
        lower(nested, ECS)
    bad_arg = compile_query('process where lua:f(concat(process.name, "x"))', ECS).steps[0].condition
    with pytest.raises(PolicyError, match="fields or literals"):
        lower(bad_arg, ECS)


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
def test_a_trapping_event_gets_the_fail_mode_and_the_rest_are_decided(fail_mode: str) -> None:
    cond = compile_query('process where process.name : "a*"', ECS).steps[0].condition
    bp = BatchPredicate(cond, RefBackend(trap_on=frozenset({"abomb"})), fail_mode=fail_mode)
    names = ["a1", "b", "abomb", "a2", "c", "a3", "b4", "a5"]
    got = bp.decide([{"process": {"name": n}} for n in names])
    want = [n.startswith("a") for n in names]
    want[2] = fail_mode == "closed"
    assert got == want
    assert bp.stats.fuel == 1
    assert bp.stats.calls > 1  # bisected
    assert bp.decide([{"process": {"name": "a"}}]) == [True]  # the predicate keeps working


def test_isolation_is_bounded_and_the_undecided_rest_fails() -> None:
    cond = compile_query('process where process.name : "a*"', ECS).steps[0].condition
    backend = RefBackend(trap_on=frozenset({"x"}))
    bp = BatchPredicate(cond, backend, fail_mode="closed")
    got = bp.decide([{"process": {"name": "x"}}] * 4096)
    assert got == [True] * 4096
    assert bp.stats.fuel == 4096
    assert bp.stats.calls <= MAX_ISOLATION_CALLS + 1


def test_escaped_values_are_counted_and_decided_like_codegen() -> None:
    cond = compile_query('process where process.name : "a*" and process.pid > 3', ECS).steps[0].condition
    bp = BatchPredicate(cond, RefBackend())
    events = [
        {"process": {"name": ["x", "ab"], "pid": 4}},
        {"process": {"name": "ab", "pid": 4.5}},
        {"process": {"name": "ab", "pid": 2}},
        {"process": {"name": "ab", "pid": True}},
    ]
    pred = compile_predicate(cond, ECS).fn
    assert bp.decide(events) == [pred(ev) for ev in events]
    assert bp.stats.escaped == 3


def test_a_bad_fail_mode_is_refused() -> None:
    cond = compile_query("process where true", ECS).steps[0].condition
    with pytest.raises(ValueError, match="fail mode"):
        BatchPredicate(cond, RefBackend(), fail_mode="maybe")


@pytest.mark.parametrize("runtime", ["wasm", "lua"])
def test_a_lone_surrogate_is_decided_like_codegen(runtime: str) -> None:
    cond = compile_query('process where process.name like "a*"', ECS).steps[0].condition
    bp = BatchPredicate(cond, backend(runtime))
    events = [{"process": {"name": "a\ud800"}}, {"process": {"name": "ab"}}, {"process": {"name": "b"}}]
    assert bp.decide(events) == [True, True, False]
    assert bp.stats.escaped <= 1  # Lua strings are UTF-8: that event is decided on the host
