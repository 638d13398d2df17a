"""``regex``/``regex~`` on RE2: Python ``re``'s answers where both accept a pattern, refusals named."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.policy.regex import RegexError, compile_regex, translate

ATOMS = [
    "a", "b", ".", r"\d", r"\s", r"\w", r"\D", r"\S", r"\W", "[ab]", "[^a]", "[a-c]", r"[\d]", r"[\s]",
    r"[\w x]", "é", r"\u00e9", "K", "s", "(?:a|b)", r"\.", r"\n", "x", "1", "٣", " ", "\u2003", "_",
]  # fmt: skip
QUANTIFIERS = ["", "", "*", "+", "?", "{2}", "{1,2}", "*?", "{,2}"]
# digits and spaces beyond ASCII, case pairs Unicode folds (Kelvin sign, long s), a lone surrogate
VALUE_CHARS = "ab1٣ x_\u2003\nKk\u017féÉ.\u212a\udc80"


@st.composite
def patterns(draw: st.DrawFn) -> str:
    """A pattern of the shapes rules use: atoms, quantifiers, groups and alternatives."""
    body = "".join(
        draw(st.sampled_from(ATOMS)) + draw(st.sampled_from(QUANTIFIERS))
        for _ in range(draw(st.integers(1, 4)))
    )
    if draw(st.booleans()):
        body = f"(?:{body}){draw(st.sampled_from(['*', '+', '|a', '?']))}"
    return body


@settings(max_examples=400, deadline=None)
@given(
    pattern=patterns(),
    values=st.lists(st.text(alphabet=VALUE_CHARS, max_size=6), max_size=6),
    ci=st.booleans(),
)
def test_answers_are_python_re_answers(pattern: str, values: list[str], ci: bool) -> None:
    python = re.compile(pattern, re.DOTALL | (re.IGNORECASE if ci else 0))
    linear = compile_regex(pattern, ci)
    for value in values:
        assert (linear.fullmatch(value) is not None) is (python.fullmatch(value) is not None), value


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r"(a)\1", "invalid escape"),
        (r"(?=a)a", "perl operator"),
        (r"(?<!x)a", "perl operator"),
        (r"(?>a*)b", "perl operator"),
        (r"a*+b", "repetition"),
        (r"a{1001}", "repetition size"),
        (r"\bword\b", "word boundaries"),
        (r"\C", r"\C"),
        (r"[\S]", "inside a character class"),
        ("[[:alpha:]]", "'[:'"),
        ("a(", "missing )"),
        ("a\\", "end of pattern"),
    ],
)
def test_what_re2_cannot_match_linearly_or_would_change_is_refused(pattern: str, fragment: str) -> None:
    with pytest.raises(RegexError, match=re.escape(fragment)):
        compile_regex(pattern, False)


def test_translation_keeps_python_meanings() -> None:
    assert translate(r"\d+") == r"[\p{Nd}]+"
    assert translate(r"a\Z") == r"a\z"
    assert translate(r"\u00e9{,3}") == r"\x{00e9}{0,3}"
    assert translate(r"[\b]") == r"[\x08]"
    assert translate("a{3,}") == "a{3,}"


def test_lone_surrogates_and_line_breaks_are_one_code_point_each() -> None:
    assert compile_regex("x.y", False).fullmatch("x\udc80y")
    assert compile_regex("x.y", False).fullmatch("x\ny")
    assert compile_regex("x..y", False).fullmatch("x\udc80y") is None


def test_nested_quantifiers_are_linear_not_refused() -> None:
    # the classic exponential shapes compile and answer at once (RE2 does not backtrack)
    assert compile_regex("(a*)*b", False).fullmatch("a" * 5_000 + "c") is None
    assert compile_regex("(a|aa)+", True).fullmatch("A" * 5_000)
