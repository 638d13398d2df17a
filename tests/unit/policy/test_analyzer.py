"""Semantic analysis against the ECS schema, and the IR it produces."""

from __future__ import annotations

import pytest

from guard.errors import PolicySemanticError, PolicySyntaxError
from guard.policy.analyzer import compile_query
from guard.policy.schema import Kind


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('process where proces.name == "sh"', "unknown field 'proces.name'"),
        ('process where process.pid == "x"', 'type mismatch: process.pid (number) == "x" (string)'),
        ('process where process.name in ("a", true)', "type mismatch"),
        ("process where process.pid : \"1*\"", ": needs a string: process.pid is number"),
        ('process where startswit(process.name, "a")', "unknown function 'startswit'"),
        ("process where startsWith(process.name)", "startsWith takes 2 arguments, got 1"),
        ("process where length(process.name, 1) > 1", "length takes 1 argument, got 2"),
        ("process where add~(1, 2) == 3", "add has no case-insensitive form"),
        ("process where process.pid", "a condition must be boolean: process.pid is number"),
        ("process where not process.name", "a condition must be boolean"),
        ("process where process.name + 1 == 2", "+ needs numbers"),
        ('process where process.name regex "a("', "invalid regex"),
        ("process where true | sort process.pid", "unknown pipe 'sort'"),
        ("process where true | head -1", "| head takes one non-negative integer"),
        ("process where true | tail process.pid", "| tail takes one non-negative integer"),
        ("sequence ![process where true] ![file where true]", "at least one step that is not a missing"),
        ("sequence by process.pid [process where true] by user.id [file where true]", "inconsistent number"),
        ("sequence with maxspan=0s [process where true] [file where true]", "maxspan must be positive"),
    ],
)  # fmt: skip
def test_semantic_errors_name_the_problem(query: str, message: str) -> None:
    with pytest.raises(PolicySemanticError) as info:
        compile_query(query)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_error_carries_the_rule_path() -> None:
    with pytest.raises(PolicySemanticError, match=r"^rules/x\.toml: unknown field 'nope'"):
        compile_query("process where nope == 1", path="rules/x.toml")


def test_a_sequence_needs_two_steps_and_runs_counts() -> None:
    with pytest.raises(PolicySemanticError, match="a sequence needs at least two steps"):
        compile_query("sequence [process where true]")
    with pytest.raises(PolicySyntaxError, match="unexpected end of the query"):
        compile_query("sequence")
    ir = compile_query("sequence [process where true] with runs=2")
    assert len(ir.steps) == 2


def test_optional_fields_are_allowed_and_loosely_typed() -> None:
    ir = compile_query('process where ?custom.thing == 3 and ?process.pid == "x"')
    assert ir.field_kinds["custom.thing"] is Kind.NULL
    assert ir.field_kinds["process.pid"] is Kind.NUMBER


def test_ir_normalises_sequences() -> None:
    ir = compile_query(
        "sequence by host.id with maxspan=2m\n"
        "  [process where true] by process.pid with runs=2\n"
        " ![file where true] by process.pid\n"
        "  [network where true] by process.pid\n"
        'until [process where event.type == "end"] by process.pid\n'
        "| head 5 | tail 3"
    )
    assert ir.is_sequence
    assert [s.category for s in ir.steps] == ["process", "process", "file", "network"]
    assert [s.missing for s in ir.steps] == [False, False, True, False]
    assert all(len(s.keys) == 2 for s in ir.steps)
    assert ir.steps[0].keys[0].render() == "host.id"
    assert ir.until is not None
    assert ir.until.keys[1].render() == "process.pid"
    assert ir.maxspan_ms == 120_000
    assert (ir.head, ir.tail) == (5, 3)
    assert {"host.id", "process.pid", "event.type"} <= ir.fields
    assert ir.key_count == 2


def test_event_query_ir() -> None:
    ir = compile_query('any where process.name : "ba*"')
    assert not ir.is_sequence
    assert ir.steps[0].category is None
    assert ir.head is None
    assert ir.field_kinds == {"process.name": Kind.STRING}
