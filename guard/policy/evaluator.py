"""The offline evaluator: run a :class:`~guard.policy.ir.QueryIR` over a list of events.

Used by ``guardctl query`` and the conformance suite; the streaming engine shares its expression
semantics. Semantics follow Elasticsearch:

- a missing field and an explicit null are null; a field with a mapping ``null_value`` reads as
  that value when it is explicitly null; multi-valued fields match when any value does;
- ``==``/``!=``/``in``/``like``/``regex`` and functions are case-sensitive, ``:``/``in~``/``like~``/
  ``regex~``/``fn~`` case-insensitive; ``x == null`` tests for null, other comparisons with null are
  false, and ``!=``/``not in`` hold for a missing field (they exclude matching values);
- a function that cannot take an event's value (``number("abc")``, a bad CIDR) is null for that
  event instead of failing the whole query;
- events are ordered by (timestamp, tie-breaker); sequences keep one pending match per key and
  step (a newer partial replaces an older one), expire partials older than maxspan, drop a key's
  partials on ``until``, and check missing-event steps against the interval between neighbours.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import product
from typing import Final

from guard.errors import PolicySemanticError
from guard.policy import functions
from guard.policy.ast import (
    And,
    Arithmetic,
    Call,
    Comparison,
    Expr,
    Field,
    InSet,
    Literal,
    Negate,
    Not,
    Or,
    StringMatch,
)
from guard.policy.ir import QueryIR, StepIR
from guard.policy.schema import ECS, Kind, Schema
from guard.policy.wildcard import compile_wildcard

__all__ = [
    "DEFAULT_LIMIT",
    "Event",
    "Match",
    "Value",
    "compile_expr",
    "evaluate",
    "field_getter",
    "timestamp_ms",
]

Value = None | bool | int | float | str | list["Value"]
Event = Mapping[str, object]
Getter = Callable[[Event], Value]

#: Results returned when a query has no head/tail pipe (as Elasticsearch's default fetch size).
DEFAULT_LIMIT: Final = 50

_ARITH: Final = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "%": "modulo"}


@dataclass(frozen=True, slots=True)
class Match:
    """One result: an event, or a sequence's events in step order (None in a missing step's slot)."""

    events: tuple[Event | None, ...]
    join_keys: tuple[Value, ...] | None = None


# --------------------------------------------------------------------------- field access


def _lookup(obj: object, path: tuple[str, ...]) -> Value:
    cur: object = obj
    for i, part in enumerate(path):
        if isinstance(cur, Mapping):
            if part in cur:
                cur = cur[part]
                continue
            rest = ".".join(path[i:])
            return _as_value(cur.get(rest))
        if isinstance(cur, list):
            out: list[Value] = []
            for item in cur:
                v = _lookup(item, path[i:])
                if isinstance(v, list):
                    out.extend(v)
                elif v is not None:
                    out.append(v)
            return out or None
        return None
    return _as_value(cur)


def _as_value(v: object) -> Value:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, list):
        return [_as_value(x) for x in v]
    return str(v)


def field_getter(name: str, path: tuple[str, ...], null_value: object = None) -> Getter:
    """Return a function reading a field from an event (flat dotted keys or nested objects)."""
    replacement = _as_value(null_value)

    def get(event: Event) -> Value:
        v = _as_value(event[name]) if name in event else _lookup(event, path)
        if replacement is not None:
            if v is None and _present(event, name, path):
                return replacement
            if isinstance(v, list):
                return [replacement if x is None else x for x in v]
        return v

    return get


def _present(event: Event, name: str, path: tuple[str, ...]) -> bool:
    if name in event:
        return True
    cur: object = event
    for part in path:
        if not isinstance(cur, Mapping) or part not in cur:
            return False
        cur = cur[part]
    return True


# --------------------------------------------------------------------------- value semantics


def _flat(v: Value) -> list[Value]:
    if isinstance(v, list):
        out: list[Value] = []
        for x in v:
            out.extend(_flat(x))
        return out
    return [v]


def _num(v: Value) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    return None


def _eq1(a: Value, b: Value, ci: bool) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold() if ci else a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if type(a) is int and type(b) is int:
        return a == b  # longs compare exactly, also beyond a double's 2**53
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return na == nb
    if isinstance(a, str) and nb is not None:
        return _str_num_eq(a, nb)
    if isinstance(b, str) and na is not None:
        return _str_num_eq(b, na)
    return False


def _str_num_eq(text: str, number: float) -> bool:
    try:
        return float(text) == number
    except ValueError:
        return False


def _is_null(v: Value) -> bool:
    return v is None or (isinstance(v, list) and all(_is_null(x) for x in v))


def values_equal(a: Value, b: Value, ci: bool = False) -> bool:
    """Test ``a == b``, multi-values matching when any value does (nulls never equal a value)."""
    return any(_eq1(x, y, ci) for x in _flat(a) if x is not None for y in _flat(b) if y is not None)


def _order1(a: Value, b: Value) -> int | None:
    if type(a) is int and type(b) is int:
        return (a > b) - (a < b)
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return (na > nb) - (na < nb)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    if isinstance(a, str) and nb is not None:
        try:
            fa = float(a)
        except ValueError:
            return None
        return (fa > nb) - (fa < nb)
    if isinstance(b, str) and na is not None:
        try:
            fb = float(b)
        except ValueError:
            return None
        return (na > fb) - (na < fb)
    return None


_ORDER_OPS: Final[dict[str, Callable[[int], bool]]] = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def _compare(op: str, a: Value, b: Value) -> Value:
    if op == "==":
        if _is_null(b):
            return _is_null(a)
        if _is_null(a):
            return False
        return values_equal(a, b)
    if op == "!=":
        if _is_null(b):
            return not _is_null(a)
        if _is_null(a):
            return True
        return not values_equal(a, b)
    if _is_null(a) or _is_null(b):
        return None
    test = _ORDER_OPS[op]
    for x in _flat(a):
        for y in _flat(b):
            c = _order1(x, y)
            if c is not None and test(c):
                return True
    return False


_SEMVER: Final = re.compile(r"(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")


def _version_key(text: str) -> tuple[object, ...]:
    """Semantic-version order as Elasticsearch's version type: pre-releases first, invalid last."""
    m = _SEMVER.fullmatch(text)
    if m is None:
        return (1, text)
    numbers = tuple(int(x) for x in m.group(1).split("."))
    pre = m.group(2)
    if pre is None:
        return (0, numbers, 1, ())
    ids = tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in pre.split("."))
    return (0, numbers, 0, ids)


def _dates(v: Value) -> Value:
    """Date values as epoch milliseconds (numbers stay, strings are parsed)."""
    if isinstance(v, list):
        return [_dates(x) for x in v]
    if isinstance(v, str):
        ms = timestamp_ms(v)
        return None if math.isnan(ms) else ms
    return v


def _compare_versions(op: str, a: Value, b: Value) -> Value:
    """Order comparison of version strings in semantic order (1.10.0 > 1.5.0)."""
    if _is_null(a) or _is_null(b):
        return None
    test = _ORDER_OPS[op]
    for x in _flat(a):
        for y in _flat(b):
            if x is None or y is None:
                continue
            kx, ky = _version_key(str(x)), _version_key(str(y))
            if test((kx > ky) - (kx < ky)):
                return True
    return False


@lru_cache(maxsize=4096)
def _regex(pattern: str, ci: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.DOTALL if ci else re.DOTALL)


def _truth(v: Value) -> bool | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, list):
        return any(_truth(x) for x in v) if v else None
    return bool(v)


# --------------------------------------------------------------------------- expressions


def compile_expr(e: Expr, schema: Schema = ECS) -> Getter:
    """Compile an AST expression into a function of an event."""
    if isinstance(e, Literal):
        value = e.value
        return lambda _ev: value
    if isinstance(e, Field):
        return field_getter(e.name, e.path, schema.null_values.get(e.name))
    if isinstance(e, Not):
        inner = compile_expr(e.expr, schema)

        def not_(ev: Event) -> Value:
            t = _truth(inner(ev))
            return None if t is None else not t

        return not_
    if isinstance(e, And | Or):
        return _junction([compile_expr(t, schema) for t in e.terms], decisive=isinstance(e, Or))
    if isinstance(e, Comparison):
        left, right, op = compile_expr(e.left, schema), compile_expr(e.right, schema), e.op
        kinds = {schema.kind(side.name) for side in (e.left, e.right) if isinstance(side, Field)}
        if Kind.VERSION in kinds and op not in ("==", "!="):
            return lambda ev: _compare_versions(op, left(ev), right(ev))
        if Kind.DATE in kinds:
            return lambda ev: _compare(op, _dates(left(ev)), _dates(right(ev)))
        return lambda ev: _compare(op, left(ev), right(ev))
    if isinstance(e, InSet):
        return _compile_in(e, schema)
    if isinstance(e, StringMatch):
        return _compile_match(e, schema)
    if isinstance(e, Arithmetic):
        return _compile_call(_ARITH[e.op], [e.left, e.right], False, schema)
    if isinstance(e, Negate):
        inner = compile_expr(e.expr, schema)
        neg = _compile_call("multiply", [e.expr, Literal(-1)], False, schema)
        return lambda ev: None if inner(ev) is None else neg(ev)
    if isinstance(e, Call):
        return _compile_call(e.name, list(e.args), e.case_insensitive, schema)
    raise PolicySemanticError(f"cannot evaluate {type(e).__name__}")  # pragma: no cover


def _junction(terms: list[Getter], *, decisive: bool) -> Getter:
    """Three-valued and (decisive False) / or (decisive True): null only when nothing decides."""

    def junction(ev: Event) -> Value:
        unknown = False
        for term in terms:
            t = _truth(term(ev))
            if t is decisive:
                return decisive
            if t is None:
                unknown = True
        return None if unknown else not decisive

    return junction


def _compile_in(e: InSet, schema: Schema) -> Getter:
    value = compile_expr(e.value, schema)
    items = [compile_expr(i, schema) for i in e.items]
    ci, negated = e.case_insensitive, e.negated

    def in_(ev: Event) -> Value:
        v = value(ev)
        if _is_null(v):
            hit = any(_is_null(i(ev)) for i in items)
            return (not hit) if negated else hit
        hit = any(values_equal(v, i(ev), ci) for i in items)
        return (not hit) if negated else hit

    return in_


def _compile_match(e: StringMatch, schema: Schema) -> Getter:
    value = compile_expr(e.value, schema)
    if e.op == "regex":
        regexes = [_regex(p, e.case_insensitive) for p in e.patterns]
    else:
        ci = e.op == ":" or e.case_insensitive
        regexes = [compile_wildcard(p, case_insensitive=ci) for p in e.patterns]

    def match(ev: Event) -> Value:
        v = value(ev)
        if _is_null(v):
            return None
        return any(isinstance(x, str) and r.fullmatch(x) is not None for x in _flat(v) for r in regexes)

    return match


def _compile_call(name: str, args: list[Expr], ci: bool, schema: Schema) -> Getter:
    spec = functions.lookup(name)
    if spec is None:
        raise PolicySemanticError(f"unknown function '{name}'")
    getters = [compile_expr(a, schema) for a in args]
    impl = spec.impl

    def call(ev: Event) -> Value:
        try:
            result: Value = impl([g(ev) for g in getters], ci)
        except functions.FunctionError:
            return None  # a value the function cannot take (number("abc")): null for this event
        return result

    return call


# --------------------------------------------------------------------------- queries


def timestamp_ms(value: object) -> float:
    """Return an event time in milliseconds: epoch ms (number or numeric string) or an ISO-8601 date."""
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000.0
        except ValueError:
            return math.nan
    return math.nan


@dataclass(frozen=True, slots=True)
class _Step:
    category: str | None
    condition: Getter
    keys: tuple[Getter, ...]
    optional_keys: tuple[bool, ...]
    missing: bool


def _compile_step(step: StepIR, schema: Schema) -> _Step:
    return _Step(
        step.category,
        compile_expr(step.condition, schema),
        tuple(compile_expr(k, schema) for k in step.keys),
        tuple(isinstance(k, Field) and k.optional for k in step.keys),
        step.missing,
    )


def _matches(step: _Step, event: Event, category: Getter) -> bool:
    if step.category is not None and not values_equal(category(event), step.category):
        return False
    return _truth(step.condition(event)) is True


def _key_tuples(step: _Step, event: Event) -> list[tuple[Value, ...]]:
    """Every join-key tuple of an event.

    Multi-valued keys join on each distinct non-null value; a null key excludes the event, unless
    the key is an optional field (``?field``), which then joins as null.
    """
    if not step.keys:
        return [()]
    per_key: list[list[Value]] = []
    for getter, optional in zip(step.keys, step.optional_keys, strict=True):
        values = sorted({_hashable(x) for x in _flat(getter(event)) if x is not None}, key=repr)
        if not values:
            if not optional:
                return []
            values = [None]
        per_key.append(values)
    return [tuple(combo) for combo in product(*per_key)]


def _hashable(v: Value) -> Value:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _limit(rows: list[Match], head: int | None, tail: int | None, limit: int | None) -> list[Match]:
    if head is not None:
        rows = rows[:head]
    if tail is not None:
        rows = rows[-tail:] if tail else []
    if head is None and tail is None and limit is not None:
        rows = rows[:limit]
    return rows


def evaluate(
    ir: QueryIR,
    events: Iterable[Event],
    *,
    schema: Schema = ECS,
    timestamp_field: str = "@timestamp",
    tiebreaker_field: str | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> list[Match]:
    """Run a query over events; return results in Elasticsearch's order, limited as it limits them.

    ``limit`` caps results when the query has no head/tail (Elasticsearch's 50); None returns all.
    """
    ts_get = field_getter(timestamp_field, tuple(timestamp_field.split(".")))
    tb_get = field_getter(tiebreaker_field, tuple(tiebreaker_field.split("."))) if tiebreaker_field else None

    def order_key(item: tuple[int, Event]) -> tuple[float, float, int]:
        index, ev = item
        tb = _num(tb_get(ev)) if tb_get else None
        return (timestamp_ms(ts_get(ev)), tb if tb is not None else float(index), index)

    ordered = [ev for _, ev in sorted(enumerate(events), key=order_key)]
    cat_name = schema.category_fields[0]
    category = field_getter(cat_name, tuple(cat_name.split(".")))
    steps = [_compile_step(s, schema) for s in ir.steps]
    if not ir.is_sequence:
        step = steps[0]
        rows = [Match((ev,)) for ev in ordered if _matches(step, ev, category)]
        return _limit(rows, ir.head, ir.tail, limit)
    until = _compile_step(ir.until, schema) if ir.until is not None else None
    times = [timestamp_ms(ts_get(ev)) for ev in ordered]
    rows = _sequences(ordered, times, steps, until, ir.maxspan_ms, category)
    return _limit(rows, ir.head, ir.tail, limit)


def _sequences(
    ordered: Sequence[Event],
    times: Sequence[float],
    steps: Sequence[_Step],
    until: _Step | None,
    maxspan: float | None,
    category: Getter,
) -> list[Match]:
    positive = [i for i, s in enumerate(steps) if not s.missing]
    n = len(positive)
    # pending[k][key] = list of event indexes matched for positive steps 0..k
    pending: list[dict[tuple[Value, ...], list[int]]] = [{} for _ in range(n)]
    done: list[tuple[tuple[Value, ...], list[int]]] = []
    for idx, ev in enumerate(ordered):
        now = times[idx]
        for k in range(n - 1, -1, -1):
            step = steps[positive[k]]
            if not _matches(step, ev, category):
                continue
            for key in _key_tuples(step, ev):
                if k == 0:
                    if n == 1:
                        done.append((key, [idx]))
                    else:
                        pending[0][key] = [idx]
                    continue
                prev = pending[k - 1].get(key)
                if prev is None:
                    continue
                if maxspan is not None and now - times[prev[0]] > maxspan:
                    del pending[k - 1][key]
                    continue
                del pending[k - 1][key]
                seq = [*prev, idx]
                if k == n - 1:
                    done.append((key, seq))
                else:
                    pending[k][key] = seq
        if until is not None and _matches(until, ev, category):
            for key in _key_tuples(until, ev):
                for stage in pending:
                    stage.pop(key, None)
    rows: list[Match] = []
    for key, seq in done:
        slots = _with_missing(seq, key, ordered, times, steps, positive, maxspan, category)
        if slots is not None:
            rows.append(Match(tuple(None if i is None else ordered[i] for i in slots), key if key else None))
    return rows


def _with_missing(
    seq: list[int],
    key: tuple[Value, ...],
    ordered: Sequence[Event],
    times: Sequence[float],
    steps: Sequence[_Step],
    positive: list[int],
    maxspan: float | None,
    category: Getter,
) -> list[int | None] | None:
    """Place missing-step slots (None), or reject the match (return None).

    As Elasticsearch decides it: a missing step between two matched steps rejects the match when a
    matching event (same keys) lies between them. Leading missing steps look back, trailing ones
    forward, as far as maxspan allows from the other end of the match; when a sequence has both,
    the match is rejected only if both are found and fit within maxspan together.
    """
    if len(positive) == len(steps):
        return list(seq)
    at = dict(zip(positive, seq, strict=True))
    slots: list[int | None] = [at.get(s) for s in range(len(steps))]
    first_t, last_t = times[seq[0]], times[seq[-1]]

    def found(s: int, lo: int, hi: int, ok: Callable[[int], bool]) -> list[int]:
        step = steps[s]
        return [
            j
            for j in range(max(lo, 0), min(hi, len(ordered)))
            if ok(j) and _matches(step, ordered[j], category) and key in _key_tuples(step, ordered[j])
        ]

    for k in range(len(positive) - 1):
        for s in range(positive[k] + 1, positive[k + 1]):
            if found(s, at[positive[k]] + 1, at[positive[k + 1]], lambda _j: True):
                return None
    span = maxspan if maxspan is not None else math.inf
    leading = [
        j for s in range(positive[0]) for j in found(s, 0, seq[0], lambda j: last_t - times[j] <= span)
    ]
    trailing = [
        j
        for s in range(positive[-1] + 1, len(steps))
        for j in found(s, seq[-1] + 1, len(ordered), lambda j: times[j] - first_t <= span)
    ]
    has_leading, has_trailing = positive[0] > 0, positive[-1] < len(steps) - 1
    if has_leading and has_trailing:
        if leading and trailing and times[min(trailing)] - times[max(leading)] <= span:
            return None
    elif leading or trailing:
        return None
    return slots
