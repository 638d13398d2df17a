"""EQL value semantics, one definition shared by every evaluator of a condition.

The offline evaluator, the generated predicates (:mod:`guard.policy.codegen`), the streaming engine,
the prefilter, the predicate runtimes' lowering and the policy compiler decide values by these
functions, as Elasticsearch decides them:

- **Values** are JSON-like (:data:`Value`): None, bool, int, float, str or a list of them. An event
  value of another type reads as its ``str`` (:func:`as_value`).
- **Fields** (:func:`field_getter`) are read as a flat dotted key first, then through nested objects;
  a list on the way reads the field of every element (a multi-valued field). A field with a mapping
  ``null_value`` reads as that value when it is explicitly null.
- **Null**: a missing field, an explicit null and a list of nulls are null (:func:`is_null`).
- **Multi-valued fields** match when any value does (:func:`flatten`, :func:`values_equal`).
- **Equality** (:func:`values_equal`): strings compare exactly, or case-folded (``casefold``) when
  case-insensitive; booleans equal only booleans; integers compare exactly (beyond 2**53); other
  numbers as doubles; a numeric string equals the number it spells.
- **Comparison** (:func:`compare`): ``x == null`` tests for null, other comparisons with null are
  null (not true), ``!=`` holds for a null side against a value; ordering of a string and a number
  parses the string (no order when it is not a number). Versions order semantically
  (:func:`compare_versions`), dates as epoch milliseconds (:func:`as_dates`).
- **Truth** (:func:`truth`): three-valued; a list is true when any element is, null when empty.

Pure: no I/O, no clock (event times are parsed from the events, :func:`timestamp_ms`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Final

from guard.policy.ast import Comparison, Expr, Field, Literal, LiteralValue
from guard.policy.regex import compile_regex
from guard.policy.schema import Kind, Schema

__all__ = [
    "FLIPPED_OPS",
    "Event",
    "Getter",
    "Value",
    "as_dates",
    "as_value",
    "compare",
    "compare_versions",
    "compile_regex",
    "field_getter",
    "field_vs_literal",
    "flatten",
    "is_null",
    "non_null",
    "plain_field",
    "timestamp_ms",
    "to_number",
    "truth",
    "values_equal",
]

Value = None | bool | int | float | str | list["Value"]
Event = Mapping[str, object]
Getter = Callable[[Event], Value]

#: A comparison operator with its sides swapped (``1 < x`` is ``x > 1``).
FLIPPED_OPS: Final = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


# --------------------------------------------------------------------------- field access


def as_value(v: object) -> Value:
    """Return an event value as a :data:`Value` (lists element by element; other types as ``str``)."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, list):
        return [as_value(x) for x in v]
    return str(v)


def _lookup(obj: object, path: tuple[str, ...]) -> Value:
    cur: object = obj
    for i, part in enumerate(path):
        if isinstance(cur, Mapping):
            if part in cur:
                cur = cur[part]
                continue
            rest = ".".join(path[i:])
            return as_value(cur.get(rest))
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
    return as_value(cur)


def _present(event: Event, name: str, path: tuple[str, ...]) -> bool:
    if name in event:
        return True
    cur: object = event
    for part in path:
        if not isinstance(cur, Mapping) or part not in cur:
            return False
        cur = cur[part]
    return True


def field_getter(name: str, path: tuple[str, ...], null_value: object = None) -> Getter:
    """Return a function reading a field from an event (flat dotted keys or nested objects)."""
    replacement = as_value(null_value)

    def get(event: Event) -> Value:
        v = as_value(event[name]) if name in event else _lookup(event, path)
        if replacement is not None:
            if v is None and _present(event, name, path):
                return replacement
            if isinstance(v, list):
                return [replacement if x is None else x for x in v]
        return v

    return get


# --------------------------------------------------------------------------- multi-valued and null


def flatten(v: Value) -> list[Value]:
    """Return the values of a (possibly nested) multi-valued value, nulls included; a scalar as itself."""
    if isinstance(v, list):
        out: list[Value] = []
        for x in v:
            out.extend(flatten(x))
        return out
    return [v]


def non_null(values: list[Value]) -> Iterator[Value]:
    """Yield the non-null values of a multi-valued value, nested lists flattened."""
    for x in values:
        if isinstance(x, list):
            yield from non_null(x)
        elif x is not None:
            yield x


def is_null(v: Value) -> bool:
    """Whether a value is null: None, or a list of nothing but nulls."""
    return v is None or (isinstance(v, list) and all(is_null(x) for x in v))


def to_number(v: Value) -> float | None:
    """Return a number as a double; None for anything else (booleans are not numbers)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    return None


def truth(v: Value) -> bool | None:
    """Return a value's three-valued truth (a list is true when any element is; null when empty)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, list):
        return any(truth(x) for x in v) if v else None
    return bool(v)


# --------------------------------------------------------------------------- equality and order


def _str_num_eq(text: str, number: float) -> bool:
    try:
        return float(text) == number
    except ValueError:
        return False


def _eq1(a: Value, b: Value, ci: bool) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold() if ci else a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if type(a) is int and type(b) is int:
        return a == b  # longs compare exactly, also beyond a double's 2**53
    na, nb = to_number(a), to_number(b)
    if na is not None and nb is not None:
        return na == nb
    if isinstance(a, str) and nb is not None:
        return _str_num_eq(a, nb)
    if isinstance(b, str) and na is not None:
        return _str_num_eq(b, na)
    return False


def values_equal(a: Value, b: Value, ci: bool = False) -> bool:
    """Test ``a == b``, multi-values matching when any value does (nulls never equal a value)."""
    return any(_eq1(x, y, ci) for x in flatten(a) if x is not None for y in flatten(b) if y is not None)


def _order1(a: Value, b: Value) -> int | None:
    if type(a) is int and type(b) is int:
        return (a > b) - (a < b)
    na, nb = to_number(a), to_number(b)
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
        c = _order1(b, a)  # a number and a string: the string parsed, the order reversed
        return None if c is None else -c
    return None


_ORDER_OPS: Final[dict[str, Callable[[int], bool]]] = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def compare(op: str, a: Value, b: Value) -> Value:
    """Return ``a op b`` (op one of == != < <= > >=): true, false, or null for an order with a null side."""
    if op == "==":
        if is_null(b):
            return is_null(a)
        if is_null(a):
            return False
        return values_equal(a, b)
    if op == "!=":
        if is_null(b):
            return not is_null(a)
        if is_null(a):
            return True
        return not values_equal(a, b)
    if is_null(a) or is_null(b):
        return None
    test = _ORDER_OPS[op]
    for x in flatten(a):
        for y in flatten(b):
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


def compare_versions(op: str, a: Value, b: Value) -> Value:
    """Order comparison of version strings in semantic order (1.10.0 > 1.5.0)."""
    if is_null(a) or is_null(b):
        return None
    test = _ORDER_OPS[op]
    for x in flatten(a):
        for y in flatten(b):
            if x is None or y is None:
                continue
            kx, ky = _version_key(str(x)), _version_key(str(y))
            if test((kx > ky) - (kx < ky)):
                return True
    return False


def as_dates(v: Value) -> Value:
    """Date values as epoch milliseconds (numbers stay, strings are parsed, unparsable ones are null)."""
    if isinstance(v, list):
        return [as_dates(x) for x in v]
    if isinstance(v, str):
        ms = timestamp_ms(v)
        return None if math.isnan(ms) else ms
    return v


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


# --------------------------------------------------------------------------- how a field compares


def plain_field(e: Expr, schema: Schema) -> Field | None:
    """Return ``e`` when it is a field compared as plain values (a date or version field is not)."""
    if not isinstance(e, Field) or schema.kind(e.name) in (Kind.DATE, Kind.VERSION):
        return None
    return e


def field_vs_literal(e: Comparison, schema: Schema) -> tuple[str, Field, LiteralValue] | None:
    """Return (op, field, literal) for a plain field compared with a literal, the field first (op flipped)."""
    op, left, right = e.op, e.left, e.right
    if isinstance(left, Literal) and isinstance(right, Field):
        op, left, right = FLIPPED_OPS[op], right, left
    f = plain_field(left, schema)
    if f is None or not isinstance(right, Literal):
        return None
    return op, f, right.value
