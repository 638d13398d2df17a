"""Input limits checked at the boundary, before any recursive pass can see the input.

Every pass over a query (transformer, analyzer, walker, codegen, evaluators) and Python's own
``json``/``tomllib`` recurse once per level of nesting, so a deeply nested input would end in a
``RecursionError`` (or a ``MemoryError`` for a huge ``runs``). These limits are checked on the text
or on lark's tree (built without recursion) first, and each refusal is one line naming where.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "MAX_DOCUMENT_DEPTH",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_DEPTH",
    "MAX_RUNS",
    "nesting_overflow",
]

#: characters of one query (an Elastic rule's longest is a few KiB; a 10 MiB text took 1.76 GB to parse)
MAX_QUERY_CHARS: Final = 256 * 1024
#: levels of one query's syntax tree (parentheses alone do not nest; operators and calls do)
MAX_QUERY_DEPTH: Final = 64
#: ``with runs=N`` repeats a step N times in the compiled sequence; Elasticsearch allows 1..100
MAX_RUNS: Final = 100
#: levels of ``[`` / ``{`` in one recorded event or one policy file (ECS events and policies use < 10)
MAX_DOCUMENT_DEPTH: Final = 64

#: strings (JSON, TOML basic/literal/multi-line), TOML comments, and brackets
_DOCUMENT_TOKENS: Final = re.compile(
    r'"""(?:[^\\]|\\[\s\S])*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]'
)
_OPEN: Final = frozenset("[{")
_CLOSE: Final = frozenset("]}")


def nesting_overflow(text: str, limit: int = MAX_DOCUMENT_DEPTH) -> int | None:
    """Return the offset where a JSON or TOML text nests ``[``/``{`` deeper than ``limit``, else None.

    Strings and TOML comments are skipped; a text with at most ``limit`` brackets is not scanned.
    """
    if text.count("[") + text.count("{") <= limit:
        return None
    depth = 0
    for m in _DOCUMENT_TOKENS.finditer(text):
        tok = m.group()
        if tok in _OPEN:
            depth += 1
            if depth > limit:
                return m.start()
        elif tok in _CLOSE:
            depth -= 1
    return None
