"""EQL wildcard patterns: ``*``/``?``, no escapes, anchored, cached, linear (the plain definition's answers)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.policy.wildcard import (
    compile_wildcard,
    compile_wildcards,
    is_literal,
    literal_parts,
    wildcard_match,
    wildcard_regex,
)

# (value, pattern, case_insensitive, expected)
MATCH_CASES: list[tuple[str, str, bool, bool]] = [
    # plain literals are anchored on both ends
    ("explorer.exe", "explorer.exe", False, True),
    ("explorer.exe", "explorer", False, False),
    ("explorer.exe", "plorer.exe", False, False),
    ("", "", False, True),
    ("a", "", False, False),
    # * is any run, including the empty one
    ("explorer.exe", "*.exe", False, True),
    ("explorer.exe", "explorer*", False, True),
    ("explorer.exe", "*plore*", False, True),
    ("explorer.exe", "explorer.exe*", False, True),
    ("explorer.exe", "*", False, True),
    ("", "*", False, True),
    ("", "**", False, True),
    ("abc", "a*b*c", False, True),
    ("ac", "a*b*c", False, False),
    # ? is exactly one character
    ("lsass.exe", "lsass.e?e", False, True),
    ("lsass.ee", "lsass.e?e", False, False),
    ("lsass.exxe", "lsass.e?e", False, False),
    ("", "?", False, False),
    ("ab", "??", False, True),
    ("é", "?", False, True),
    ("😀", "?", False, True),  # one code point, as Lucene's wildcard query
    # regex metacharacters are literal
    ("a.c", "a.c", False, True),
    ("abc", "a.c", False, False),
    ("a+b", "a+b", False, True),
    ("aab", "a+b", False, False),
    ("(x)[y]{z}", "(x)[y]{z}", False, True),
    ("^a$|b", "^a$|b", False, True),
    ("a|b", "a|b", False, True),
    ("b", "a|b", False, False),
    # no escape syntax: a backslash is a literal and the following * stays a wildcard
    ("C:\\Windows\\x.exe", "C:\\Windows\\*", False, True),
    ("a\\xyz", "a\\*", False, True),
    ("a*", "a\\*", False, False),
    ("a\\", "a\\*", False, True),
    ("a%b_c", "a%b_c", False, True),  # % and _ are not wildcards (Elastic escapes them in LikePattern)
    ("aXbYc", "a%b_c", False, False),
    # * and ? cross line breaks (Lucene wildcard semantics)
    ("cmd /c\nwhoami", "cmd*whoami", False, True),
    ("a\nb", "a?b", False, True),
    # case sensitivity
    ("EXPLORER.EXE", "explorer.exe", False, False),
    ("EXPLORER.EXE", "explorer.exe", True, True),
    ("EXPLORER.EXE", "explorer.*", True, True),
    ("Explorer.Exe", "*.EXE", True, True),
    ("ÉTÉ", "été", True, True),
    ("ÉTÉ", "été", False, False),
    # additional_test_queries.toml likeMultipleArgWithPattern / ...PatternInsensitive / ...QuestionMark
    ("wininit.exe", "winini*.exe", False, True),
    ("lsass.exe", "lsass.*", False, True),
    ("wininit.exe", "winIni*.exe", True, True),
    ("lsass.exe", "lSaSs.*", True, True),
    ("wininit.exe", "winINI?.exE", True, True),
    ("lsass.exe", "lSasS.E?E", True, True),
    ("wininit.exe", "winIni*.exe", False, False),
]


@pytest.mark.parametrize(("value", "pattern", "ci", "expected"), MATCH_CASES)
def test_wildcard_match(value: str, pattern: str, ci: bool, expected: bool) -> None:
    assert wildcard_match(value, pattern, case_insensitive=ci) is expected
    assert (compile_wildcard(pattern, case_insensitive=ci).fullmatch(value) is not None) is expected


@pytest.mark.parametrize(
    ("pattern", "ci", "expected"),
    [
        # additional_test_queries.toml seqSingleArgPattern: string(serial_event_id) : ("1*")
        ("1*", True, [1, *range(10, 20)]),
        # seqSingleArgPatternQuestionMark: string(serial_event_id) : ("1?")
        ("1?", True, list(range(10, 20))),
        # likeScriptWithPattern / likeScriptWithQuestionPattern (case-sensitive like)
        ("1*", False, [1, *range(10, 20)]),
        ("1?", False, list(range(10, 20))),
        # seqSingleArg / likeWithScript
        ("1", True, [1]),
    ],
)
def test_corpus_serial_id_patterns(pattern: str, ci: bool, expected: list[int]) -> None:
    ids = [i for i in range(1, 100) if wildcard_match(str(i), pattern, case_insensitive=ci)]
    assert ids == expected


def test_compile_is_cached() -> None:
    a = compile_wildcard("*.exe", case_insensitive=True)
    assert compile_wildcard("*.exe", case_insensitive=True) is a
    assert compile_wildcard("*.exe", case_insensitive=False) is not a


@pytest.mark.parametrize(
    ("pattern", "literal", "parts"),
    [
        ("explorer.exe", True, ["explorer.exe"]),
        ("", True, []),
        ("*", False, []),
        ("?", False, []),
        ("*.exe", False, [".exe"]),
        ("C:\\*\\cmd.exe", False, ["C:\\", "\\cmd.exe"]),
        ("a*b?c**d", False, ["a", "b", "c", "d"]),
        ("a.b", True, ["a.b"]),
    ],
)
def test_literal_helpers(pattern: str, literal: bool, parts: list[str]) -> None:
    assert is_literal(pattern) is literal
    assert literal_parts(pattern) == parts


def test_literal_parts_are_required_substrings() -> None:
    pattern = "*\\system32\\*.dll"
    value = "C:\\Windows\\System32\\kernel32.dll"
    assert wildcard_match(value, pattern, case_insensitive=True)
    assert all(p.lower() in value.lower() for p in literal_parts(pattern))


def _naive(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    """The plain definition: ``*`` as ``.*``, ``?`` as ``.`` (exponential on some inputs, fine on tiny ones)."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if case_insensitive else 0))


# letters whose case folding differs between str.lower and regex IGNORECASE, line breaks, astral
_ALPHABET = "aAbß\u1e9e\u0130i\u212ak\n😀"


@settings(max_examples=400, deadline=None)
@given(
    pattern=st.text(alphabet=_ALPHABET + "*?", max_size=7),
    values=st.lists(st.text(alphabet=_ALPHABET, max_size=8), min_size=1, max_size=4),
    ci=st.booleans(),
)
def test_the_linear_translation_answers_as_the_plain_definition(
    pattern: str, values: list[str], ci: bool
) -> None:
    naive = _naive(pattern, ci)
    combined = compile_wildcards((pattern, "b*"), case_insensitive=ci)
    for value in values:
        want = naive.fullmatch(value) is not None
        assert wildcard_match(value, pattern, case_insensitive=ci) is want
        assert (combined.fullmatch(value) is not None) is (
            want or _naive("b*", ci).fullmatch(value) is not None
        )


def test_every_star_but_the_last_is_atomic() -> None:
    assert wildcard_regex("*a*a*b") == "(?>.*?a)(?>.*?a).*b"
    assert wildcard_regex("x?y") == "x.y"
    assert wildcard_regex("a**b") == "a.*b"
