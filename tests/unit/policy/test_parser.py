"""The EQL parser: every corpus query parses and round-trips; errors carry position and caret."""

from __future__ import annotations

import re
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.errors import PolicyError, PolicySyntaxError
from guard.policy.ast import And, Comparison, Field, InSet, Literal, Not, Or, Sequence, StringMatch
from guard.policy.corpus import default_corpus
from guard.policy.parser import parse_expression, parse_query

CORPUS = default_corpus()


def corpus_queries() -> list[tuple[str, str]]:
    assert CORPUS.is_dir(), f"the vendored corpus is missing: expected it at {CORPUS}"
    out = []
    for f in sorted(CORPUS.glob("*.toml")):
        lines = [
            re.sub(r"\bnull\b(?!\")", '"__null__"', ln) if ln.startswith("join_keys") else ln
            for ln in f.read_text().splitlines()
        ]
        out += [(f"{f.name}::{q['name']}", q["query"]) for q in tomllib.loads("\n".join(lines))["queries"]]
    assert out, f"no spec queries found in the corpus at {CORPUS}"
    return out


QUERIES = corpus_queries()


def test_the_corpus_is_there() -> None:
    assert len(QUERIES) == 264, f"expected Elastic's 264 spec queries at {CORPUS}"


@pytest.mark.parametrize(("name", "query"), QUERIES, ids=[n for n, _ in QUERIES])
def test_corpus_query_round_trips(name: str, query: str) -> None:
    ast = parse_query(query)
    rendered = ast.render()
    assert parse_query(rendered) == ast, rendered
    assert parse_query(rendered).render() == rendered


def test_precedence_and_normalisation() -> None:
    e = parse_expression("a == 1 or b == 2 and not c == 3 or (d == 4 or e == 5)")
    assert isinstance(e, Or)
    assert len(e.terms) == 4  # nested or flattened
    assert isinstance(e.terms[1], And)
    assert isinstance(e.terms[1].terms[1], Not)
    assert parse_expression("x == -1") == Comparison("==", Field(("x",)), Literal(-1))
    assert parse_expression('?a.b : ("x*", "y")') == StringMatch(
        ":", Field(("a", "b"), True), ("x*", "y"), True
    )
    assert parse_expression("a not in~ (1, 2)") == InSet(Field(("a",)), (Literal(1), Literal(2)), True, True)
    assert parse_expression('`weird name`.x like~ "a"').render() == '`weird name`.x like~ "a"'
    assert parse_expression('a == """raw \\n"""') == Comparison("==", Field(("a",)), Literal("raw \\n"))
    assert parse_expression('a == "esc \\"q\\" \\\\ \\t"') == Comparison(
        "==", Field(("a",)), Literal('esc "q" \\ \t')
    )


def test_sequence_shape() -> None:
    q = parse_query(
        "sequence by host.id with maxspan=30s\n"
        "  [process where true] by process.pid with runs=2\n"
        ' ![file where file.path : "/tmp/*"] by process.pid\n'
        "  [network where true] by process.pid\n"
        'until [process where event.type == "end"] by process.pid\n| head 3'
    )
    body = q.body
    assert isinstance(body, Sequence)
    assert body.maxspan is not None
    assert body.maxspan.milliseconds == 30_000
    assert [s.missing for s in body.steps] == [False, True, False]
    assert body.steps[0].runs == 2
    assert body.until is not None
    assert q.pipes[0].name == "head"


@pytest.mark.parametrize(
    ("query", "line", "column", "message"),
    [
        ("process whre x == 1", 1, 9, "unexpected 'whre', expected where"),
        ("process where x ==", 1, 19, "unexpected end of the query"),
        ("process where x == 'a'", 1, 20, "single-quoted strings are not EQL"),
        ('process where\n  x == "abc', 2, 8, "unterminated string"),
        ("process where x : 5", 1, 19, "unexpected '5'"),
        ("sequence with maxspan=5y [a where true] [b where true]", 1, 24, "unknown time unit 'y'"),
        ('process where a == "\\q"', 1, 21, "invalid escape sequence"),
        ("sequence [a where true] [b where true] with runs=0", 1, 50, "runs must be a positive integer"),
    ],
)
def test_syntax_errors_point_at_the_problem(query: str, line: int, column: int, message: str) -> None:
    with pytest.raises(PolicySyntaxError) as info:
        parse_query(query, path="rule.toml")
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert message in err.message
    assert str(err).startswith(f"rule.toml:{line}:{column}: ")
    caret = err.caret().splitlines()
    assert caret[0] == query.splitlines()[line - 1]
    assert caret[1] == " " * (column - 1) + "^"


TOKENS = st.sampled_from(
    [
        *(
            "process",
            "sequence",
            "where",
            "by",
            "with",
            "maxspan",
            "=",
            "1s",
            "[",
            "]",
            "(",
            ")",
            "!",
            "?",
            ":",
        ),
        *(
            "==",
            "!=",
            "<",
            "and",
            "or",
            "not",
            "in",
            "in~",
            "like",
            "regex~",
            "|",
            "head",
            "tail",
            "1",
            "-2.5",
        ),
        *('"a*"', '"""r"""', "'x'", "x.y", "`q`", "f(", "startsWith~(", ",", "true", "null", "any", "until"),
        *("runs", "+", "*", "//c\n", "/*", "\\", '"', "@"),
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TOKENS, max_size=25).map(" ".join) | st.text(max_size=60))
def test_fuzz_only_policy_errors(text: str) -> None:
    try:
        query = parse_query(text)
    except PolicyError as exc:
        message = str(exc)
    else:
        assert parse_query(query.render()) == query
        return
    assert "\n" not in message
