r"""EQL wildcard patterns: ``*`` (any run, including none) and ``?`` (exactly one character).

Elasticsearch turns an EQL wildcard string into a ``LikePattern`` (``*`` to ``%``, ``?`` to ``_``) with an
escape character chosen so that it never occurs in user text: there is **no escape syntax** in EQL wildcard
patterns. ``"\\*"`` in a query is a backslash (the string-literal escape ``\\``) followed by a wildcard, and
every character other than ``*`` and ``?`` matches itself. A pattern matches the whole value.

Used by ``:`` (case-insensitive), ``like`` (case-sensitive) and ``like~`` (case-insensitive). ``*`` and
``?`` also match line breaks, as the Lucene wildcard query Elasticsearch runs against a field does; ``?``
matches one code point.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

__all__ = [
    "WILDCARD_CHARS",
    "compile_wildcard",
    "is_literal",
    "literal_parts",
    "wildcard_match",
    "wildcard_regex",
]

WILDCARD_CHARS: Final = frozenset("*?")
_SPLIT: Final = re.compile(r"[*?]")


def wildcard_regex(pattern: str) -> str:
    """Return the regex source of an EQL wildcard pattern (to use anchored, with ``re.DOTALL``)."""
    pieces: list[str] = []
    start = 0
    for m in _SPLIT.finditer(pattern):
        pieces.append(re.escape(pattern[start : m.start()]))
        pieces.append(".*" if m.group() == "*" else ".")
        start = m.end()
    pieces.append(re.escape(pattern[start:]))
    return "".join(pieces)


@lru_cache(maxsize=4096)
def compile_wildcard(pattern: str, *, case_insensitive: bool) -> re.Pattern[str]:
    """Compile an EQL wildcard pattern into a regex to use with ``fullmatch`` (the match is anchored)."""
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    return re.compile(wildcard_regex(pattern), flags)


def wildcard_match(value: str, pattern: str, *, case_insensitive: bool) -> bool:
    """Whether the whole of ``value`` matches the EQL wildcard ``pattern``."""
    return compile_wildcard(pattern, case_insensitive=case_insensitive).fullmatch(value) is not None


def is_literal(pattern: str) -> bool:
    """Whether ``pattern`` has no wildcard character (so it matches only itself)."""
    return "*" not in pattern and "?" not in pattern


def literal_parts(pattern: str) -> list[str]:
    """Return the non-empty literal runs between wildcards, in order (e.g. for a substring prefilter)."""
    return [part for part in _SPLIT.split(pattern) if part]
