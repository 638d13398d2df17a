"""Generated predicates against the offline evaluator: the same truth on every corpus condition and event."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pytest

from guard.errors import GuardError
from guard.policy.analyzer import compile_query
from guard.policy.codegen import compile_predicate, fast_getter
from guard.policy.conformance import schema_for
from guard.policy.corpus import default_corpus, load_corpus
from guard.policy.evaluator import compile_expr
from guard.policy.parser import parse_expression
from guard.policy.semantics import field_getter, truth


def test_every_corpus_condition_agrees_with_the_evaluator_on_every_event() -> None:
    cases, datasets = load_corpus(default_corpus())
    schemas = {name: schema_for(ds) for name, ds in datasets.items()}
    checked = fast = 0
    seen: set[tuple[str, str]] = set()
    for case in cases:
        ds = datasets[case.dataset]
        try:
            ir = compile_query(case.query, schemas[case.dataset])
        except GuardError:
            continue  # the corpus's own error cases
        steps = [*ir.steps, *([ir.until] if ir.until else [])]
        for step in steps:
            text = step.condition.render()
            if (case.dataset, text) in seen:
                continue
            seen.add((case.dataset, text))
            pred = compile_predicate(step.condition, schemas[case.dataset])
            reference = compile_expr(step.condition, schemas[case.dataset])
            fast += "if type(" in pred.source
            for ev in [*ds.events, *_perturbed(ds.events[:25], pred.fields)]:
                want = truth(reference(ev)) is True
                assert pred.fn(ev) is want, f"{case.id}: {text} on {ev}\n{pred.source}"
                checked += 1
    assert len(seen) >= 200
    assert fast >= 100  # most conditions take an inline path, not only the evaluator's closures
    assert checked > 50_000


def _perturbed(events: Sequence[Mapping[str, object]], fields: Sequence[str]) -> Iterator[dict[str, object]]:
    """Each event with each field read flat and turned into the value shapes fast paths must refuse."""
    for ev in events:
        for name in fields:
            value = field_getter(name, tuple(name.split(".")))(ev)
            for odd in (None, [value, "x"], [value], str(value), 7, -3.5, True, {"k": value}, [[value]]):
                yield {**ev, name: odd}


CASES = [
    ('process.name == "sh"', {"process": {"name": "sh"}}, True),
    ('process.name == "sh"', {"process.name": ["bash", "sh"]}, True),
    ('process.name != "sh"', {}, True),
    ('not process.name == "sh"', {}, True),
    ('not process.name : "s*"', {}, False),
    ("destination.port >= 1024", {"destination": {"port": "2048"}}, True),
    ("destination.port >= 1024", {"destination": {"port": 80}}, False),
    ("not destination.port >= 1024", {}, False),
    ('destination.port == "22"', {"destination": {"port": 22}}, True),
    ("destination.port in (22, 23)", {"destination": {"port": 22.0}}, True),
    ('process.name in~ ("SH", "bash")', {"process": {"name": "Sh"}}, True),
    ('process.name not in ("sh")', {"process": {"name": None}}, True),
    ('process.executable : "/TMP/*"', {"process": {"executable": "/tmp/x\ny"}}, True),
    ('process.executable like "/TMP/*"', {"process": {"executable": "/tmp/x"}}, False),
    ('startsWith~(process.name, "BA")', {"process": {"name": "bash"}}, True),
    ('stringContains(process.name, "")', {"process": {"name": "bash"}}, False),
    ('endsWith(process.name, "sh") or process.pid == 1', {"process": {"name": 5, "pid": 1}}, True),
    ('process.args : "-c"', {"process": {"args": ["bash", "-C"]}}, True),
    ('"sh" == process.name', {"process": {"name": "sh"}}, True),
    ('process.name regex~ "B.*"', {"process": {"name": "bash"}}, True),
    ('cidrMatch(destination.ip, "10.0.0.0/8", "fd00::/8")', {"destination": {"ip": "fd00::1"}}, True),
    ('not cidrMatch(destination.ip, "10.0.0.0/8")', {"destination": {"ip": "not an ip"}}, False),
    ('not cidrMatch(destination.ip, "10.0.0.0/8")', {"destination": {"ip": "192.0.2.1"}}, True),
    ('cidrMatch(destination.ip, "10.0.0.0/8")', {"destination": {"ip": ["192.0.2.1", "10.9.9.9"]}}, True),
]


@pytest.mark.parametrize(("condition", "event", "want"), CASES)
def test_shapes(condition: str, event: dict[str, object], want: bool) -> None:
    expr = parse_expression(condition)
    pred = compile_predicate(expr)
    assert pred.fn(event) is want, pred.source
    assert (truth(compile_expr(expr)(event)) is True) is want


@pytest.mark.parametrize(
    "event",
    [
        {"a.b.c": 1},
        {"a": {"b": {"c": [1, {"x": 2}]}}},
        {"a": {"b.c": 3}},
        {"a": [{"b": {"c": 4}}, {"b": {"c": 5}}]},
        {"a": "text"},
        {"a": {"b": {"c": {"d": 1}}}},
        {},
    ],
)
def test_fast_getter_equals_field_getter(event: dict[str, object]) -> None:
    path = ("a", "b", "c")
    assert fast_getter("a.b.c", path)(event) == field_getter("a.b.c", path)(event)


def test_rejects_a_bad_function_name() -> None:
    expr = parse_expression('a == "x"')
    with pytest.raises(ValueError, match="identifier"):
        compile_predicate(expr, name="not valid")


@pytest.mark.parametrize(
    "event",
    [
        {"a": {"b.c": {"c": 5}}},
        {"a": {"b": None}},
        {"a": None},
        {"a": {"b": {"c": ["x", "y"]}}},
        {"a": {"b": {"c": ["x", 1, None]}}},
        {"a": {"b": [{"c": "x"}]}},
        {"a.b.c": None, "a": {"b": {"c": 1}}},
    ],
)
def test_fast_getter_odd_shapes(event: dict[str, object]) -> None:
    path = ("a", "b", "c")
    assert fast_getter("a.b.c", path)(event) == field_getter("a.b.c", path)(event)
