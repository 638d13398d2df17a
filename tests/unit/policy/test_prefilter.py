"""The prefilter never drops a match: random conditions and odd values, engine against the evaluator."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.errors import GuardError
from guard.policy.analyzer import compile_query
from guard.policy.ast import render_string
from guard.policy.engine import Engine
from guard.policy.evaluator import evaluate
from guard.policy.loader import Rule
from guard.policy.parser import parse_expression
from guard.policy.prefilter import guard_of
from tests.fields import dig

# letters whose case folding differs between str.lower, casefold and regex IGNORECASE
TEXT = st.text(alphabet="aAsS\u017fkK\u212a\u00df\u1e9eiI\u0130\u0131/*?1", min_size=0, max_size=4)
STRING_FIELDS = ("process.name", "process.args", "file.path")
VALUES = st.one_of(
    TEXT,
    st.integers(-3, 30),
    st.sampled_from([None, True, 1.0, 22.0, "22", "1e1"]),
    st.lists(st.one_of(TEXT, st.integers(0, 30)), max_size=3),
)


FOLDS: tuple[Callable[[str], str], ...] = (str, str.upper, str.lower, str.swapcase, str.casefold)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[dict[str, object]]]:
    """A condition over a few words, and events whose values are those words in other cases."""
    words = draw(st.lists(TEXT, min_size=1, max_size=3))

    def lit() -> str:
        return render_string(draw(st.sampled_from(words)))

    def atom() -> str:
        field = draw(st.sampled_from(STRING_FIELDS))
        kind = draw(st.integers(0, 9))
        fn = draw(st.sampled_from(["startsWith", "endsWith", "stringContains", "startsWith~", "endsWith~"]))
        port = draw(st.integers(0, 30))
        return [
            f"{field} == {lit()}",
            f"{field} : {lit()}",
            f"{field} like~ {lit()}",
            f"{field} in~ ({lit()}, {lit()})",
            f"{fn}({field}, {lit()})",
            f"wildcard~({field}, {lit()})",
            f"destination.port {draw(st.sampled_from(['==', '>=', '<']))} {port}",
            f"destination.port in ({port}, {render_string(str(draw(st.integers(0, 30))))})",
            f"{field} like {lit()}",
            f"not {field} : {lit()}",
        ][kind]

    terms = [atom() for _ in range(draw(st.integers(1, 3)))]
    condition = draw(st.sampled_from([" and ", " or "])).join(f"({t})" for t in terms)

    def value() -> object:
        if draw(st.booleans()):
            word = draw(st.sampled_from(words)).replace("*", draw(TEXT)).replace("?", "s")
            folded = draw(st.sampled_from(FOLDS))(word)
            return [folded, "x"] if draw(st.integers(0, 4)) == 0 else folded
        return draw(VALUES)

    evs = []
    for i in range(draw(st.integers(1, 6))):
        ev: dict[str, object] = {"@timestamp": i, "event": {"category": "process", "sequence": i}}
        for name in (*STRING_FIELDS, "destination.port"):
            if draw(st.integers(0, 3)):
                ev[name] = value()
        evs.append(ev)
    return condition, evs


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_engine_equals_the_evaluator_on_random_conditions(case: tuple[str, list[dict[str, object]]]) -> None:
    condition, evs = case
    query = f"process where {condition}"
    try:
        ir = compile_query(query)
    except GuardError:
        return  # type errors of random combinations are not this test's subject
    rule = Rule("r", "r", "low", "alert", None, query, ir, "<hypothesis>")
    engine = Engine([rule])
    got = [dig(a.events[0], "event", "sequence") for a in engine.process(evs) + engine.flush()]
    want = [
        dig(m.events[0], "event", "sequence")
        for m in evaluate(ir, evs, tiebreaker_field="event.sequence", limit=None)
    ]
    assert got == want, (query, engine.guards)


def test_guards_pick_selective_fields_and_merge_or() -> None:
    def guard(condition: str) -> dict[str, object]:
        g = guard_of(parse_expression(condition))
        assert g is not None
        return {"field": g.field.name, "exact": g.exact, "ci": g.exact_ci, "contains": g.contains,
                "numbers": g.numbers, "conditions": len(g.conditions)}  # fmt: skip

    assert guard('event.type == "start" and process.name == "sh"')["field"] == "process.name"
    assert guard('process.name : "Bash" or process.name : "/usr/*/zsh"') == {
        "field": "process.name", "exact": frozenset(), "ci": {"bash"}, "contains": {"/usr/"},
        "numbers": frozenset(), "conditions": 0,
    }  # fmt: skip
    assert guard("destination.port in (22, 2222)")["numbers"] == {22, 2222}
    assert guard('cidrMatch(destination.ip, "10.0.0.0/8")')["conditions"] == 1
    assert guard_of(parse_expression('process.name == "a" or file.path == "b"')) is None
    assert (
        guard('process.name : "\u017fh"')["conditions"] == 1
    )  # not ASCII: no folded literal, the condition itself
