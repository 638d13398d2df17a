"""The prefilter: which of many event filters can possibly hold for an event, without evaluating them.

Every filter (a single-event rule, a sequence step, an ``until``) is a *unit*. For each unit,
:func:`guard_of` derives a necessary condition on one field from its condition: a set of exact
strings (``==``, ``in``, ``like "lit"``), of case-folded exact strings (``:`` / ``in~`` literals),
of numbers (``destination.port in (22, 23)``), of case-folded substrings (the longest literal run of
a wildcard pattern, ``startsWith`` / ``endsWith`` / ``stringContains`` arguments), or, when a
condition reads one field and offers no literal, the condition itself evaluated once per distinct
value. ``and`` takes its most selective term's guard, ``or`` merges its terms' guards when they
all guard the same field. A unit without a guard is evaluated on every event of its category.

Units are indexed by event category; per category and field one :class:`FieldIndex` answers
"which units may hold for this value" with dict lookups and one Aho-Corasick automaton
(pyahocorasick) over all substrings, and remembers the answer per distinct value (bounded: the
memo is cleared when it reaches its cap). The answer is a superset: a unit it names is evaluated
in full; a unit it does not name cannot hold. Case folding is only trusted on ASCII (a value or
literal outside ASCII makes the case-insensitive part of the answer "every such unit").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import ahocorasick

from guard.policy.ast import (
    And,
    Call,
    Comparison,
    Expr,
    Field,
    InSet,
    Literal,
    Or,
    StringMatch,
)
from guard.policy.codegen import compile_predicate, fast_getter
from guard.policy.schema import ECS, Schema
from guard.policy.semantics import Event, Getter, Value, non_null, plain_field
from guard.policy.walker import Node, Walker, fields_read, iter_nodes, stateful
from guard.policy.wildcard import is_literal, literal_parts

__all__ = ["CategoryIndex", "FieldIndex", "Guard", "build_indexes", "guard_of"]

#: Distinct values remembered per field before the memo is cleared.
DEFAULT_MEMO_CAP: Final = 65_536
_AFFIX_FUNCTIONS: Final = frozenset({"startswith", "endswith", "stringcontains"})
#: ECS fields with few distinct values: a guard on them lets most events through
_LOW_CARDINALITY_PREFIXES: Final = (
    "event.", "host.os.", "network.", "agent.", "ecs.", "data_stream.", "cloud.",
)  # fmt: skip
_LOW_CARDINALITY_FIELDS: Final = frozenset(
    {"process.interactive", "file.type", "file.extension", "event_type"}
)


def _low_cardinality(name: str) -> bool:
    return name in _LOW_CARDINALITY_FIELDS or name.startswith(_LOW_CARDINALITY_PREFIXES)


@dataclass(frozen=True, slots=True)
class Guard:
    """A necessary condition on one field: the unit can hold only if one of these parts does."""

    field: Field
    exact: frozenset[str] = frozenset()
    exact_ci: frozenset[str] = frozenset()  # ASCII, lower-cased
    numbers: frozenset[int | float] = frozenset()
    contains: frozenset[str] = frozenset()  # ASCII, lower-cased, non-empty
    conditions: tuple[Expr, ...] = ()  # evaluated on the field's value alone

    @property
    def score(self) -> int:
        """Lower is expected to pass fewer events.

        Exact sets, then long substrings, then per-value conditions; any of them on a field with
        few distinct values (``event.type`` is "start" for half of all events) after all of them.
        """
        if self.conditions:
            rank = 3
        elif self.contains:
            rank = 1 if min(len(c) for c in self.contains) >= 4 else 2
        else:
            rank = 0
        return rank + (4 if _low_cardinality(self.field.name) else 0)

    def merge(self, other: Guard) -> Guard:
        """Return the guard of ``self or other`` (same field)."""
        return Guard(
            self.field,
            self.exact | other.exact,
            self.exact_ci | other.exact_ci,
            self.numbers | other.numbers,
            self.contains | other.contains,
            self.conditions + other.conditions,
        )


def _calls_user(e: Expr) -> bool:
    """Whether an expression calls a user function (``lua:name(...)``, ``wasm:name(...)``)."""
    return any(isinstance(n, Call) and ":" in n.name for n in iter_nodes(e))


def _folded(text: str) -> str | None:
    """Lower-case ASCII text; None outside ASCII (where case folding is not trusted)."""
    return text.lower() if text.isascii() else None


class _Extractor(Walker[Guard | None]):
    """A condition's guard: a literal test's own, the best of an ``and``, the merge of an ``or``."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def single_field(self, e: Expr) -> Guard | None:
        if _calls_user(e):
            return None  # user code runs only in its runtime, under its budget
        if stateful(e):
            return None  # lineage and aliases: not a function of one field's value
        read = fields_read(e)
        if len(read) != 1:
            return None
        ((name, f),) = read.items()
        if name in self.schema.null_values:
            return None  # null and missing differ there; a one-value memo cannot tell them apart
        return Guard(f, conditions=(e,))

    def generic_visit(self, node: Node, *args: object) -> Guard | None:
        """Return a literal test's guard, else the guard of the one field the node reads."""
        assert isinstance(node, Expr)  # noqa: S101 - conditions hold only expressions
        method = self.handler(node, "literal_")
        found: Guard | None = None if method is None else method(node)
        return found if found is not None else self.single_field(node)

    def visit_And(self, e: And) -> Guard | None:
        guards = [g for g in (self.visit(t) for t in e.terms) if g is not None]
        if guards:
            return min(guards, key=lambda g: g.score)
        return self.single_field(e)

    def visit_Or(self, e: Or) -> Guard | None:
        parts = [self.visit(t) for t in e.terms]
        if all(p is not None for p in parts):
            merged = [p for p in parts if p is not None]
            if len({p.field.name for p in merged}) == 1:
                out = merged[0]
                for p in merged[1:]:
                    out = out.merge(p)
                return out
        return self.single_field(e)

    # ---- literal tests (``literal_<Node>``): their own guard, or None
    def literal_Comparison(self, e: Comparison) -> Guard | None:
        if e.op != "==":
            return None
        f, lit = (e.left, e.right) if isinstance(e.right, Literal) else (e.right, e.left)
        pf = plain_field(f, self.schema)
        if pf is None or not isinstance(lit, Literal):
            return None
        return self._equal_to(pf, [lit.value], case_insensitive=False)

    def literal_InSet(self, e: InSet) -> Guard | None:
        if e.negated:
            return None
        pf = plain_field(e.value, self.schema)
        if pf is None or not all(isinstance(i, Literal) for i in e.items):
            return None
        values = [i.value for i in e.items if isinstance(i, Literal)]
        return self._equal_to(pf, values, case_insensitive=e.case_insensitive)

    def literal_StringMatch(self, e: StringMatch) -> Guard | None:
        if e.op == "regex":
            return None
        pf = plain_field(e.value, self.schema)
        if pf is None:
            return None
        return self._patterns(pf, e.patterns, case_insensitive=e.op == ":" or e.case_insensitive)

    def literal_Call(self, e: Call) -> Guard | None:
        if len(e.args) < 2:
            return None
        name = e.name.lower()
        pf = plain_field(e.args[0], self.schema)
        lits = e.args[1:]
        if pf is None or not all(isinstance(a, Literal) and isinstance(a.value, str) for a in lits):
            return None
        texts = [str(a.value) for a in lits if isinstance(a, Literal)]
        if name == "wildcard":
            return self._patterns(pf, tuple(texts), case_insensitive=e.case_insensitive)
        if name in _AFFIX_FUNCTIONS and len(texts) == 1:
            folded = _folded(texts[0])
            if folded:
                return Guard(pf, contains=frozenset({folded}))
        return None

    def _equal_to(self, f: Field, values: Sequence[object], *, case_insensitive: bool) -> Guard | None:
        exact: set[str] = set()
        exact_ci: set[str] = set()
        numbers: set[int | float] = set()
        for v in values:
            if isinstance(v, str):
                if case_insensitive:
                    folded = v.casefold()
                    if not folded.isascii():
                        return None
                    exact_ci.add(folded)
                else:
                    exact.add(v)
            elif isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v):
                numbers.add(v)
            else:
                return None  # null and booleans: no literal guard
        return Guard(f, frozenset(exact), frozenset(exact_ci), frozenset(numbers))

    def _patterns(self, f: Field, patterns: Sequence[str], *, case_insensitive: bool) -> Guard | None:
        exact: set[str] = set()
        exact_ci: set[str] = set()
        contains: set[str] = set()
        for p in patterns:
            if is_literal(p):
                if not case_insensitive:
                    exact.add(p)
                    continue
                folded = _folded(p)
                if folded is None:
                    return None
                exact_ci.add(folded)
                continue
            parts = [x for x in (_folded(part) for part in literal_parts(p)) if x]
            if not parts or any(_folded(part) is None for part in literal_parts(p)):
                return None
            contains.add(max(parts, key=len))
        return Guard(f, frozenset(exact), frozenset(exact_ci), contains=frozenset(contains))


def guard_of(condition: Expr, schema: Schema = ECS) -> Guard | None:
    """Return a necessary condition on one field for ``condition`` to hold, or None."""
    return _Extractor(schema).visit(condition)


@dataclass(slots=True)
class FieldIndex:
    """Every guard on one field within a category; answers "which units may hold" per value."""

    name: str
    get: Getter
    memo_cap: int = DEFAULT_MEMO_CAP
    exact: dict[str, set[int]] = field(default_factory=dict)
    exact_ci: dict[str, set[int]] = field(default_factory=dict)
    numbers: dict[int | float, set[int]] = field(default_factory=dict)
    contains: dict[str, set[int]] = field(default_factory=dict)
    conditions: list[tuple[int, Callable[[Event], bool]]] = field(default_factory=list)
    memo: dict[str, tuple[int, ...]] = field(default_factory=dict)
    memo_lists: dict[tuple[str, ...], tuple[int, ...]] = field(default_factory=dict)
    memo_other: dict[tuple[type, object], tuple[int, ...]] = field(default_factory=dict)
    memo_resets: int = 0
    _automaton: object = None
    _string_units: frozenset[int] = frozenset()
    _folded_units: frozenset[int] = frozenset()
    _none: tuple[int, ...] = ()

    def add(self, unit: int, guard: Guard, schema: Schema) -> None:
        """Index one unit's guard."""
        for text in guard.exact:
            self.exact.setdefault(text, set()).add(unit)
        for text in guard.exact_ci:
            self.exact_ci.setdefault(text, set()).add(unit)
        for number in guard.numbers:
            self.numbers.setdefault(number, set()).add(unit)
        for text in guard.contains:
            self.contains.setdefault(text, set()).add(unit)
        for n, cond in enumerate(guard.conditions):
            pred = compile_predicate(cond, schema, name=f"guard_{unit}_{n}")
            self.conditions.append((unit, pred.fn))

    def seal(self) -> None:
        """Build the automaton and the conservative sets, once every unit is added."""
        if self.contains:
            automaton = ahocorasick.Automaton()
            for text, units in self.contains.items():
                automaton.add_word(text, tuple(sorted(units)))
            automaton.make_automaton()
            self._automaton = automaton
        self._string_units = frozenset().union(*self.exact.values(), *self.exact_ci.values())
        self._folded_units = frozenset().union(*self.exact_ci.values(), *self.contains.values())
        self._none = self._conditions_on(None)

    def _conditions_on(self, value: Value) -> tuple[int, ...]:
        probe = {self.name: value}
        return tuple(unit for unit, fn in self.conditions if fn(probe))

    def _literals(self, v: Value) -> set[int]:
        out: set[int] = set()
        t = type(v)
        if t is str:
            assert isinstance(v, str)  # noqa: S101 - narrowing for mypy
            out.update(self.exact.get(v, ()))
            if v.isascii():
                low = v.lower()
                out.update(self.exact_ci.get(low, ()))
                if self._automaton is not None:
                    for _end, units in self._automaton.iter(low):  # type: ignore[attr-defined]
                        out.update(units)
            else:
                out.update(self._folded_units)
            if self.numbers:
                with contextlib.suppress(ValueError):
                    out.update(self.numbers.get(float(v), ()))
        elif t is int or t is float:
            out.update(self.numbers.get(v, ()))  # type: ignore[arg-type]
            out.update(self._string_units)  # "22" == 22: strings compare to numbers as numbers
        return out

    def resolve(self, v: Value) -> tuple[int, ...]:
        """Return the units that may hold when the field has value ``v`` (memoised per distinct value)."""
        if type(v) is str:
            found = self.memo.get(v)
            return found if found is not None else self._remember(self.memo, v, v)
        if v is None:
            return self._none
        if type(v) is list:
            key = tuple(v)
            if all(type(x) is str for x in key):  # only all-string lists: (1,) == (True,) as keys
                found = self.memo_lists.get(key)  # type: ignore[arg-type]
                return found if found is not None else self._remember(self.memo_lists, key, v)
            return self._compute(v)
        other = (type(v), v)  # True and 1 (and 1 and 1.0) must not share an answer
        found = self.memo_other.get(other)
        return found if found is not None else self._remember(self.memo_other, other, v)

    def _remember(self, memo: dict[Any, tuple[int, ...]], key: object, v: Value) -> tuple[int, ...]:
        if len(memo) >= self.memo_cap:
            memo.clear()
            self.memo_resets += 1
        found = memo[key] = self._compute(v)
        return found

    def _compute(self, v: Value) -> tuple[int, ...]:
        if isinstance(v, list):
            units: set[int] = set()
            for item in non_null(v):
                units |= self._literals(item)
        else:
            units = self._literals(v)
        if self.conditions:
            units.update(self._conditions_on(v))
        return tuple(sorted(units))


@dataclass(slots=True)
class CategoryIndex:
    """The units of one event category: per-field indexes plus the units every event must try."""

    fields: tuple[FieldIndex, ...]
    always: tuple[int, ...]
    _probes: tuple[tuple[Getter, dict[str, tuple[int, ...]], Callable[[Value], tuple[int, ...]]], ...] = ()

    def __post_init__(self) -> None:
        self._probes = tuple((fi.get, fi.memo, fi.resolve) for fi in self.fields)

    def candidates(self, event: Event) -> tuple[int, ...]:
        """Return the units that may hold for ``event`` (each at most once; unordered across fields)."""
        out = self.always
        for get, memo, resolve in self._probes:
            v = get(event)
            found = memo.get(v) if type(v) is str else None
            if found is None:
                found = resolve(v)
            if found:
                out = out + found
        return out


def build_indexes(
    units: Sequence[tuple[str | None, Expr]], schema: Schema = ECS, *, memo_cap: int = DEFAULT_MEMO_CAP
) -> tuple[dict[str, CategoryIndex], CategoryIndex, dict[int, Guard | None]]:
    """Index units (category or None for ``any``, condition) by category and guard field.

    Returns the per-category indexes, the index for categories no unit names (only ``any``
    units), and each unit's guard (for explain output and tests).
    """
    guards = {n: guard_of(cond, schema) for n, (_cat, cond) in enumerate(units)}
    categories = sorted({cat for cat, _ in units if cat is not None})

    def index_for(wanted: str | None) -> CategoryIndex:
        by_field: dict[str, FieldIndex] = {}
        always: list[int] = []
        for n, (cat, _cond) in enumerate(units):
            if cat is not None and cat != wanted:
                continue
            g = guards[n]
            if g is None:
                always.append(n)
                continue
            name = g.field.name
            if name not in by_field:
                getter = fast_getter(name, g.field.path, schema.null_values.get(name))
                by_field[name] = FieldIndex(name, getter, memo_cap)
            by_field[name].add(n, g, schema)
        for fi in by_field.values():
            fi.seal()
        return CategoryIndex(tuple(by_field[k] for k in sorted(by_field)), tuple(always))

    return {c: index_for(c) for c in categories}, index_for(None), guards
