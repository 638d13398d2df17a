r"""EQL wildcard patterns: ``*`` (any run, including none) and ``?`` (exactly one character).

Elasticsearch turns an EQL wildcard string into a ``LikePattern`` (``*`` to ``%``, ``?`` to ``_``) with an
escape character chosen so that it never occurs in user text: there is **no escape syntax** in EQL wildcard
patterns. ``"\\*"`` in a query is a backslash (the string-literal escape ``\\``) followed by a wildcard, and
every character other than ``*`` and ``?`` matches itself. A pattern matches the whole value.

Used by ``:`` (case-insensitive), ``like`` (case-sensitive) and ``like~`` (case-insensitive). ``*`` and
``?`` also match line breaks, as the Lucene wildcard query Elasticsearch runs against a field does; ``?``
matches one code point.

Matching takes O(len(value) * len(pattern)) steps at worst, never more (see :func:`wildcard_regex`): a
governed process chooses the values (a command line) that rules match, so no pattern may let a value
cost exponential time.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

__all__ = [
    "WILDCARD_CHARS",
    "compile_wildcard",
    "compile_wildcards",
    "is_literal",
    "literal_parts",
    "wildcard_match",
    "wildcard_regex",
]

WILDCARD_CHARS: Final = frozenset("*?")
_SPLIT: Final = re.compile(r"[*?]")


def _chunk_regex(chunk: str) -> str:
    """Return the regex of a run without ``*``: escaped literals, ``?`` as one code point."""
    return ".".join(re.escape(lit) for lit in chunk.split("?"))


def wildcard_regex(pattern: str) -> str:
    """Return the regex source of an EQL wildcard pattern (to use with ``fullmatch`` and ``re.DOTALL``).

    The source never backtracks more than once per ``*``: the pattern is split at ``*`` into runs of
    fixed length (literals and ``?``); the first run is matched at the start, each middle run at its
    leftmost place after the previous one inside an atomic group ``(?>.*?run)`` (the leftmost place
    is always the best one, since every run has a fixed length), and the last run at the end. The
    cost is O(len(value) * len(pattern)) whatever the pattern, where ``.*`` for every ``*`` is
    exponential in the number of stars (``*a*a*a*a*a*a*a*b`` against a run of ``a``).
    """
    chunks = pattern.split("*")
    if len(chunks) == 1:
        return _chunk_regex(pattern)
    middle = "".join(f"(?>.*?{_chunk_regex(c)})" for c in chunks[1:-1] if c)
    return f"{_chunk_regex(chunks[0])}{middle}.*{_chunk_regex(chunks[-1])}"


def _flags(case_insensitive: bool) -> re.RegexFlag:
    return re.DOTALL | (re.IGNORECASE if case_insensitive else re.NOFLAG)


@lru_cache(maxsize=4096)
def compile_wildcard(pattern: str, *, case_insensitive: bool) -> re.Pattern[str]:
    """Compile an EQL wildcard pattern into a regex to use with ``fullmatch`` (the match is anchored)."""
    return re.compile(wildcard_regex(pattern), _flags(case_insensitive))


def compile_wildcards(patterns: tuple[str, ...], *, case_insensitive: bool) -> re.Pattern[str]:
    """Compile several patterns into one regex whose ``fullmatch`` holds when any pattern matches.

    Each alternative is tried once (its stars are atomic), so the cost is the sum of theirs.
    """
    return re.compile("|".join(f"(?:{wildcard_regex(p)})" for p in patterns), _flags(case_insensitive))


def wildcard_match(value: str, pattern: str, *, case_insensitive: bool) -> bool:
    """Whether the whole of ``value`` matches the EQL wildcard ``pattern``."""
    return compile_wildcard(pattern, case_insensitive=case_insensitive).fullmatch(value) is not None


def is_literal(pattern: str) -> bool:
    """Whether ``pattern`` has no wildcard character (so it matches only itself)."""
    return "*" not in pattern and "?" not in pattern


def literal_parts(pattern: str) -> list[str]:
    """Return the non-empty literal runs between wildcards, in order (e.g. for a substring prefilter)."""
    return [part for part in _SPLIT.split(pattern) if part]
