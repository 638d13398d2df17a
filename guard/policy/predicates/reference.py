"""The lowered condition interpreted in Python: the semantics every backend must reproduce.

:func:`evaluate` decides one event's native column values the way :mod:`.abi` documents; the
backends' differential tests run it against WAT and Lua on the same batches, and
:func:`run_batch` is the same contract as :meth:`CompiledBatch.run` (user calls excepted: they
need a runtime).
"""

from __future__ import annotations

from collections.abc import Sequence

from guard.policy.predicates.abi import (
    HostColumn,
    NativeValue,
    PAffix,
    PAnd,
    PCompare,
    PConst,
    PExpr,
    PHost,
    PIn,
    PNot,
    POr,
    PUser,
    PWildcard,
)
from guard.policy.wildcard import wildcard_match

__all__ = ["evaluate", "run_batch"]

Truth = bool | None


def _compare(v: str | int, op: str, lit: str | int) -> bool:
    if op == "==":
        return v == lit
    if op == "!=":
        return v != lit
    if op == "<":
        return v < lit  # type: ignore[operator]
    if op == "<=":
        return v <= lit  # type: ignore[operator]
    if op == ">":
        return v > lit  # type: ignore[operator]
    return v >= lit  # type: ignore[operator]


def evaluate(e: PExpr, row: Sequence[NativeValue], host: Sequence[Truth]) -> Truth:
    """Return the three-valued truth of ``e`` for one event (``row``: its column values)."""
    if isinstance(e, PConst):
        return e.value
    if isinstance(e, PAnd):
        seen_null = False
        for t in e.terms:
            v = evaluate(t, row, host)
            if v is False:
                return False
            seen_null = seen_null or v is None
        return None if seen_null else True
    if isinstance(e, POr):
        seen_null = False
        for t in e.terms:
            v = evaluate(t, row, host)
            if v is True:
                return True
            seen_null = seen_null or v is None
        return None if seen_null else False
    if isinstance(e, PNot):
        v = evaluate(e.expr, row, host)
        return None if v is None else not v
    if isinstance(e, PHost):
        return host[e.index]
    if isinstance(e, PUser):
        raise ValueError("a user call needs a runtime")
    value = row[e.col]
    if isinstance(e, PCompare):
        if value is None:
            return {"==": False, "!=": True}.get(e.op)
        return _compare(value, e.op, e.value)  # type: ignore[arg-type]
    if isinstance(e, PIn):
        if value is None:
            return e.negated
        probe = value.casefold() if e.case_insensitive and isinstance(value, str) else value
        return (probe in e.values) != e.negated
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"a string leaf got {type(value).__name__}")
    if isinstance(e, PWildcard):
        ci = e.case_insensitive
        return any(wildcard_match(value, p, case_insensitive=ci) for p in e.patterns)
    if not isinstance(e, PAffix):
        raise TypeError(f"not a lowered node: {e!r}")
    text = value.lower() if e.case_insensitive else value
    if e.kind == "startswith":
        return text.startswith(e.value)
    if e.kind == "endswith":
        return text.endswith(e.value)
    return bool(e.value) and e.value in text


def run_batch(e: PExpr, columns: Sequence[Sequence[NativeValue]], host: Sequence[HostColumn], n: int) -> int:
    """Decide ``n`` events; return the bitmask of the events for which ``e`` is True."""
    mask = 0
    for i in range(n):
        row = [c[i] for c in columns]
        if evaluate(e, row, [h[i] for h in host]) is True:
            mask |= 1 << i
    return mask
