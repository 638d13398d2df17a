r"""``regex``/``regex~`` patterns matched in linear time (RE2), with the syntax and meaning of Python ``re``.

A governed process chooses the values rules match (a command line), so a backtracking engine would let
it pick a value that costs a pattern exponential time (``(a*)*b`` against ``aaaa…c``). Patterns run on
RE2 (google-re2), whose automata match in O(len(value) * len(pattern)) steps; the value is never
searched by backtracking.

The pattern language stays the one the analyzer always accepted — Python's ``re`` syntax with ``.``
matching line breaks, anchored at both ends — translated to RE2 before compiling:

- ``\d``, ``\s``, ``\w`` and their negations keep Python's Unicode meaning (RE2's are ASCII): ``\d`` is
  ``\p{Nd}``, ``\w`` is ``[\p{L}\p{N}_]``, ``\s`` the whitespace set of ``str.isspace``; ``\Z`` is
  ``\z``; ``\uXXXX``/``\UXXXXXXXX`` become ``\x{…}``; ``{,n}`` is ``{0,n}``; ``[\b]`` is a backspace.
- **Refused at load** (:class:`RegexError`, which the analyzer turns into a one-line policy error
  naming the rule): what RE2 cannot match in linear time (backreferences ``\1``, lookaround
  ``(?=…)``/``(?<=…)``, atomic groups, possessive quantifiers, conditionals), a repeat count over 1000,
  and what would silently change meaning: word boundaries ``\b``/``\B`` (RE2's are ASCII only), the
  byte escape ``\C``, a negated class ``\D``/``\S``/``\W`` inside ``[...]``, and ``[:`` inside a class
  (a POSIX class in RE2, literal characters in Python). Elasticsearch's Lucene regexps have no
  backreferences, lookaround or word boundaries either; of an Elastic rule only a repeat count over
  1000 is refused.

Case-insensitive matching (``regex~``) folds by Unicode simple case folding (``K`` matches the Kelvin
sign, ``s`` the long s), as Python's ``re`` did, except that Python also equated ``i``/``I`` with the
Turkish dotted and dotless i (U+0130, U+0131); RE2 does not (nor does Elasticsearch, which folds ASCII only).
Values are matched as UTF-8; a lone surrogate (from undecodable bytes) is one code point, as in ``str``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, Protocol

import re2  # type: ignore[import-untyped]

__all__ = ["FullMatcher", "LinearRegex", "RegexError", "compile_regex", "translate"]


class RegexError(ValueError):
    """A ``regex`` pattern is invalid or cannot be matched in linear time with its meaning."""


_SPACE: Final = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)
_CLASS_BODY: Final = {"d": r"\p{Nd}", "s": _SPACE, "w": r"\p{L}\p{N}_"}
_UPTO: Final = re.compile(r"\{,(\d*)\}")
_REFUSED: Final = {
    "b": r"word boundaries (\b) are not supported",
    "B": r"word boundaries (\B) are not supported",
    "C": r"the byte escape \C is not supported",
}


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape at ``pattern[i]`` (a backslash); return RE2 text and the next index."""
    if i + 1 >= len(pattern):
        raise RegexError("bad escape (end of pattern)")
    e = pattern[i + 1]
    if e in _CLASS_BODY:
        body = _CLASS_BODY[e]
        return (body if in_class else f"[{body}]"), i + 2
    if e.lower() in _CLASS_BODY:
        if in_class:
            raise RegexError(f"\\{e} inside a character class is not supported")
        return f"[^{_CLASS_BODY[e.lower()]}]", i + 2
    if e == "b" and in_class:
        return r"\x08", i + 2
    if e in _REFUSED:
        raise RegexError(_REFUSED[e])
    if e == "Z":
        return r"\z", i + 2
    if e in "uU":
        width = 4 if e == "u" else 8
        digits = pattern[i + 2 : i + 2 + width]
        if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise RegexError(f"incomplete escape \\{e}{digits}")
        return f"\\x{{{digits}}}", i + 2 + width
    return pattern[i : i + 2], i + 2


def translate(pattern: str) -> str:
    """Return the RE2 source with the meaning of the Python ``re`` pattern, or raise :class:`RegexError`."""
    out: list[str] = []
    i, n = 0, len(pattern)
    class_start = -1  # index of the first character of the current class body, -1 outside a class
    while i < n:
        c = pattern[i]
        if c == "\\":
            text, i = _escape(pattern, i, class_start >= 0)
            out.append(text)
            continue
        if class_start >= 0:
            if c == "]" and i > class_start:
                class_start = -1
            elif c == "[" and pattern.startswith(":", i + 1):
                raise RegexError("'[:' inside a character class is not supported")
        elif c == "[":
            class_start = i + 1 + (pattern.startswith("^", i + 1))
        elif c == "{" and (m := _UPTO.match(pattern, i)) is not None and m.group(1):
            out.append(f"{{0,{m.group(1)}}}")
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


class FullMatcher(Protocol):
    """What the evaluators use of a compiled pattern: a whole-value match (a ``re.Pattern`` is one)."""

    def fullmatch(self, string: str, /) -> object:
        """Return a non-None value when the whole of ``string`` matches."""
        ...


class LinearRegex:
    """One compiled pattern: :meth:`fullmatch` in linear time (the ``re.Pattern`` subset callers use)."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str, compiled: object) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def fullmatch(self, value: str) -> bool | None:
        """Return True when the whole of ``value`` matches, else None (as ``re`` returns no match)."""
        data = value.encode("utf-8", "surrogatepass")
        return True if self._compiled.fullmatch(data) is not None else None  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"LinearRegex({self.pattern!r})"


@lru_cache(maxsize=4096)
def compile_regex(pattern: str, ci: bool) -> LinearRegex:
    """Compile a ``regex``/``regex~`` pattern (``.`` matches line breaks; use ``fullmatch``), cached."""
    options = re2.Options()
    options.dot_nl = True
    options.case_sensitive = not ci
    options.never_capture = True
    options.log_errors = False
    source = translate(pattern).encode("utf-8", "surrogatepass")
    try:
        compiled = re2.compile(source, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        raise RegexError(text) from None
    return LinearRegex(pattern, compiled)
