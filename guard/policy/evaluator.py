"""The offline evaluator: run a :class:`~guard.policy.ir.QueryIR` over a list of events.

Used by the conformance suite and as the reference the streaming engine is tested against; the
engine shares its compiled expressions (:func:`compile_expr`, :func:`compile_step`). Values are
decided by :mod:`guard.policy.semantics`. Semantics follow Elasticsearch:

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

Elastic Endpoint's dialect:

- a step's alias (``[...] as event0``): a later step's condition is split into the terms that read
  only its event (the step's filter) and the terms that read an alias (:func:`split_alias`); the
  latter are decided against the pending partial's events, so a step advances only the partial
  whose aliased events satisfy it (a partial they reject stays pending);
- lineage (``descendant of [...]``): decided by :class:`~guard.policy.lineage.LineageState` from the
  events seen so far, each event observed before any condition is decided on it; every condition
  of an event is decided at the event's own place in the order (missing steps included);
- ``sample``: as Elasticsearch samples, in the order events arrive (not by time): per join key,
  each filter's first N matching events (N filters), then the first choice of N distinct events,
  one per filter, in filter order (:func:`match_sample`); one sample per key, by ascending key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Final

from guard.errors import PolicySemanticError
from guard.policy import functions
from guard.policy.ast import (
    AliasField,
    And,
    Arithmetic,
    Call,
    Comparison,
    Expr,
    Field,
    InSet,
    Lineage,
    Literal,
    Negate,
    Not,
    Or,
    StringMatch,
)
from guard.policy.ir import QueryIR, StepIR
from guard.policy.lineage import LineageState
from guard.policy.regex import FullMatcher
from guard.policy.schema import ECS, Kind, Schema
from guard.policy.semantics import (
    Event,
    Getter,
    Value,
    as_dates,
    compare,
    compare_versions,
    compile_regex,
    field_getter,
    flatten,
    is_null,
    timestamp_ms,
    to_number,
    truth,
    values_equal,
)
from guard.policy.walker import Node, Walker, iter_nodes
from guard.policy.wildcard import compile_wildcard

__all__ = [
    "DEFAULT_LIMIT",
    "CompiledStep",
    "EvalContext",
    "Match",
    "compile_expr",
    "compile_step",
    "evaluate",
    "key_tuples",
    "limit_rows",
    "match_sample",
    "residual_holds",
    "sample_key_order",
    "split_alias",
]

#: Results returned when a query has no head/tail pipe (as Elasticsearch's default fetch size).
DEFAULT_LIMIT: Final = 50

_ARITH: Final = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "%": "modulo"}


@dataclass(frozen=True, slots=True)
class Match:
    """One result: an event, or a sequence's events in step order (None in a missing step's slot)."""

    events: tuple[Event | None, ...]
    join_keys: tuple[Value, ...] | None = None


@dataclass(slots=True)
class EvalContext:
    """What a condition may read besides its event: the lineage state and earlier steps' aliased events.

    ``bound`` is set by the sequence matcher before it decides a step's alias terms against a
    partial match; compiled conditions read it when called. Without a context, a lineage test is
    false and an alias field null.
    """

    lineage: LineageState | None = None
    bound: dict[str, Event] = field(default_factory=dict)


# --------------------------------------------------------------------------- expressions


def compile_expr(e: Expr, schema: Schema = ECS, context: EvalContext | None = None) -> Getter:
    """Compile an AST expression into a function of an event (lineage and aliases read ``context``)."""
    return _ExprCompiler(schema, context).visit(e)


class _ExprCompiler(Walker[Getter]):
    """Each node to a closure over its children's closures (compiled once, called per event)."""

    def __init__(self, schema: Schema, context: EvalContext | None = None) -> None:
        self.schema = schema
        self.context = context

    def generic_visit(self, node: Node, *args: object) -> Getter:
        raise PolicySemanticError(f"cannot evaluate {type(node).__name__}")  # pragma: no cover

    def visit_Literal(self, e: Literal) -> Getter:
        value = e.value
        return lambda _ev: value

    def visit_Field(self, e: Field) -> Getter:
        return field_getter(e.name, e.path, self.schema.null_values.get(e.name))

    def visit_AliasField(self, e: AliasField) -> Getter:
        ctx = self.context
        if ctx is None:
            return lambda _ev: None
        get = field_getter(e.name, e.path, self.schema.null_values.get(e.name))
        alias = e.alias

        def aliased(_ev: Event) -> Value:
            bound = ctx.bound.get(alias)
            return None if bound is None else get(bound)

        return aliased

    def visit_Lineage(self, e: Lineage) -> Getter:
        state = self.context.lineage if self.context is not None else None
        if state is None:
            return lambda _ev: False
        fid, relation = state.id_of(e.filter), e.relation
        return lambda ev: state.holds(relation, fid, ev)

    def visit_Not(self, e: Not) -> Getter:
        inner = self.visit(e.expr)

        def not_(ev: Event) -> Value:
            t = truth(inner(ev))
            return None if t is None else not t

        return not_

    def visit_And(self, e: And) -> Getter:
        return _junction([self.visit(t) for t in e.terms], decisive=False)

    def visit_Or(self, e: Or) -> Getter:
        return _junction([self.visit(t) for t in e.terms], decisive=True)

    def visit_Comparison(self, e: Comparison) -> Getter:
        left, right, op = self.visit(e.left), self.visit(e.right), e.op
        kinds = {self.schema.kind(side.name) for side in (e.left, e.right) if isinstance(side, Field)}
        if Kind.VERSION in kinds and op not in ("==", "!="):
            return lambda ev: compare_versions(op, left(ev), right(ev))
        if Kind.DATE in kinds:
            return lambda ev: compare(op, as_dates(left(ev)), as_dates(right(ev)))
        return lambda ev: compare(op, left(ev), right(ev))

    def visit_InSet(self, e: InSet) -> Getter:
        value = self.visit(e.value)
        items = [self.visit(i) for i in e.items]
        ci, negated = e.case_insensitive, e.negated

        def in_(ev: Event) -> Value:
            v = value(ev)
            if is_null(v):
                hit = any(is_null(i(ev)) for i in items)
                return (not hit) if negated else hit
            hit = any(values_equal(v, i(ev), ci) for i in items)
            return (not hit) if negated else hit

        return in_

    def visit_StringMatch(self, e: StringMatch) -> Getter:
        value = self.visit(e.value)
        regexes: list[FullMatcher]
        if e.op == "regex":
            regexes = [compile_regex(p, e.case_insensitive) for p in e.patterns]
        else:
            ci = e.op == ":" or e.case_insensitive
            regexes = [compile_wildcard(p, case_insensitive=ci) for p in e.patterns]

        def match(ev: Event) -> Value:
            v = value(ev)
            if is_null(v):
                return None
            return any(isinstance(x, str) and r.fullmatch(x) is not None for x in flatten(v) for r in regexes)

        return match

    def visit_Arithmetic(self, e: Arithmetic) -> Getter:
        return self._call(_ARITH[e.op], [e.left, e.right], False)

    def visit_Negate(self, e: Negate) -> Getter:
        # multiply is null for a null operand; the operand is visited (and evaluated) once
        return self._call("multiply", [e.expr, Literal(-1)], False)

    def visit_Call(self, e: Call) -> Getter:
        return self._call(e.name, list(e.args), e.case_insensitive)

    def _call(self, name: str, args: list[Expr], ci: bool) -> Getter:
        spec = functions.lookup(name)
        if spec is None:
            raise PolicySemanticError(f"unknown function '{name}'")
        getters = [self.visit(a) for a in args]
        impl = spec.impl

        def call(ev: Event) -> Value:
            try:
                result: Value = impl([g(ev) for g in getters], ci)
            except functions.FunctionError:
                return None  # a value the function cannot take (number("abc")): null for this event
            return result

        return call


def _junction(terms: list[Getter], *, decisive: bool) -> Getter:
    """Three-valued and (decisive False) / or (decisive True): null only when nothing decides."""

    def junction(ev: Event) -> Value:
        unknown = False
        for term in terms:
            t = truth(term(ev))
            if t is decisive:
                return decisive
            if t is None:
                unknown = True
        return None if unknown else not decisive

    return junction


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class CompiledStep:
    """A step ready to match events: its category, condition and join keys as closures.

    ``condition`` reads only the event; ``residual`` (None when there is none) is the conjunction
    of the terms that read an earlier step's alias, decided against a partial match.
    """

    category: str | None
    condition: Getter
    keys: tuple[Getter, ...]
    optional_keys: tuple[bool, ...]
    missing: bool
    residual: Getter | None = None


def split_alias(condition: Expr) -> tuple[Expr, Expr | None]:
    """Split a condition into the terms that read only the event and those that read an alias (or None).

    The condition holds exactly when both parts hold: the alias terms are whole conjuncts.
    """
    terms = list(condition.terms) if isinstance(condition, And) else [condition]
    own = [t for t in terms if not _reads_alias(t)]
    aliased = [t for t in terms if _reads_alias(t)]
    if not aliased:
        return condition, None

    def conj(ts: list[Expr]) -> Expr:
        return ts[0] if len(ts) == 1 else And(tuple(ts))

    return (conj(own) if own else Literal(True)), conj(aliased)


def _reads_alias(e: Expr) -> bool:
    return any(isinstance(n, AliasField) for n in iter_nodes(e))


def compile_step(step: StepIR, schema: Schema = ECS, context: EvalContext | None = None) -> CompiledStep:
    """Compile a step's condition (split from its alias terms) and join keys."""
    own, aliased = split_alias(step.condition)
    return CompiledStep(
        step.category,
        compile_expr(own, schema, context),
        tuple(compile_expr(k, schema, context) for k in step.keys),
        tuple(isinstance(k, Field) and k.optional for k in step.keys),
        step.missing,
        None if aliased is None else compile_expr(aliased, schema, context),
    )


def _matches(step: CompiledStep, event: Event, category: Getter) -> bool:
    if step.category is not None and not values_equal(category(event), step.category):
        return False
    return truth(step.condition(event)) is True


def key_tuples(step: CompiledStep, event: Event) -> list[tuple[Value, ...]]:
    """Every join-key tuple of an event.

    Multi-valued keys join on each distinct non-null value; a null key excludes the event, unless
    the key is an optional field (``?field``), which then joins as null.
    """
    if not step.keys:
        return [()]
    per_key: list[list[Value]] = []
    for getter, optional in zip(step.keys, step.optional_keys, strict=True):
        values = sorted({_hashable(x) for x in flatten(getter(event)) if x is not None}, key=repr)
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


def limit_rows(rows: list[Match], head: int | None, tail: int | None, limit: int | None) -> list[Match]:
    """Apply ``| head N`` / ``| tail N``, else the default ``limit`` (None: every row)."""
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
        tb = to_number(tb_get(ev)) if tb_get else None
        return (timestamp_ms(ts_get(ev)), tb if tb is not None else float(index), index)

    arrived = list(events)
    order = sorted(range(len(arrived)), key=lambda i: order_key((i, arrived[i])))
    ordered = [arrived[i] for i in order]
    context = EvalContext(LineageState(ir.lineage, schema) if ir.lineage else None)
    steps = [compile_step(s, schema, context) for s in ir.steps]
    until = compile_step(ir.until, schema, context) if ir.until is not None else None
    decide = _Decider(ordered, [*steps, *([until] if until else [])], schema, context, ir)
    if ir.is_sample:
        for idx in range(len(ordered)):
            decide.advance(idx)
        by_arrival = [0] * len(order)
        for idx, i in enumerate(order):
            by_arrival[i] = idx
        rows = _samples([(ordered[j], decide.hits[j]) for j in by_arrival], steps)
        return limit_rows(rows, ir.head, ir.tail, limit)
    if not ir.is_sequence:
        rows = []
        for idx, ev in enumerate(ordered):
            if decide.advance(idx)[0]:
                rows.append(Match((ev,)))
        return limit_rows(rows, ir.head, ir.tail, limit)
    times = [timestamp_ms(ts_get(ev)) for ev in ordered]
    aliases = {s.alias: k for k, s in enumerate(x for x in ir.steps if not x.missing) if s.alias is not None}
    rows = _sequences(ordered, times, steps, until, ir.maxspan_ms, decide, aliases, context)
    return limit_rows(rows, ir.head, ir.tail, limit)


class _Decider:
    """Decides every filter of a query on each event at the event's own place in the order.

    Lineage is observed first (process starts, then each lineage filter's match, inner ones first),
    then the query's filters (steps, then until) are decided and remembered per event.
    """

    def __init__(
        self,
        ordered: Sequence[Event],
        steps: Sequence[CompiledStep],
        schema: Schema,
        context: EvalContext,
        ir: QueryIR,
    ) -> None:
        cat_name = schema.category_fields[0]
        self.category = field_getter(cat_name, tuple(cat_name.split(".")))
        self.ordered = ordered
        self.steps = steps
        self.lineage = context.lineage
        self.lineage_filters = [(f.category, compile_expr(f.condition, schema, context)) for f in ir.lineage]
        self.hits: list[tuple[bool, ...]] = []

    def advance(self, idx: int) -> tuple[bool, ...]:
        """Observe event ``idx`` (the next one) and return whether each filter holds for it."""
        ev = self.ordered[idx]
        cat = self.category(ev)
        state = self.lineage
        if state is not None:
            state.note_start(ev)
            for fid, (fcat, cond) in enumerate(self.lineage_filters):
                if (fcat is None or values_equal(cat, fcat)) and truth(cond(ev)) is True:
                    state.mark(fid, ev)
        hits = tuple(
            (s.category is None or values_equal(cat, s.category)) and truth(s.condition(ev)) is True
            for s in self.steps
        )
        self.hits.append(hits)
        return hits


def residual_holds(step: CompiledStep, ev: Event, partial: Sequence[Event], context: EvalContext,
                   aliases: dict[str, int]) -> bool:  # fmt: skip
    """Whether a step's alias terms hold for ``ev`` against a partial match's events (True when none).

    ``aliases`` maps each alias to its positive step's place in the partial.
    """
    if step.residual is None:
        return True
    context.bound = {a: partial[k] for a, k in aliases.items() if k < len(partial)}
    return truth(step.residual(ev)) is True


def _sequences(
    ordered: Sequence[Event],
    times: Sequence[float],
    steps: Sequence[CompiledStep],
    until: CompiledStep | None,
    maxspan: float | None,
    decide: _Decider,
    aliases: dict[str, int],
    context: EvalContext,
) -> list[Match]:
    positive = [i for i, s in enumerate(steps) if not s.missing]
    n = len(positive)
    until_slot = len(steps)
    # pending[k][key] = list of event indexes matched for positive steps 0..k
    pending: list[dict[tuple[Value, ...], list[int]]] = [{} for _ in range(n)]
    done: list[tuple[tuple[Value, ...], list[int]]] = []
    for idx, ev in enumerate(ordered):
        hits = decide.advance(idx)
        now = times[idx]
        for k in range(n - 1, -1, -1):
            step = steps[positive[k]]
            if not hits[positive[k]]:
                continue
            for key in key_tuples(step, ev):
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
                if step.residual is not None and not residual_holds(
                    step, ev, [ordered[i] for i in prev], context, aliases
                ):
                    continue  # its aliased events reject this event: the partial stays pending
                del pending[k - 1][key]
                seq = [*prev, idx]
                if k == n - 1:
                    done.append((key, seq))
                else:
                    pending[k][key] = seq
        if until is not None and hits[until_slot]:
            for key in key_tuples(until, ev):
                for stage in pending:
                    stage.pop(key, None)
    rows: list[Match] = []
    for key, seq in done:
        slots = _with_missing(seq, key, ordered, times, steps, positive, maxspan, decide.hits)
        if slots is not None:
            rows.append(Match(tuple(None if i is None else ordered[i] for i in slots), key if key else None))
    return rows


def _with_missing(
    seq: list[int],
    key: tuple[Value, ...],
    ordered: Sequence[Event],
    times: Sequence[float],
    steps: Sequence[CompiledStep],
    positive: list[int],
    maxspan: float | None,
    hits: Sequence[tuple[bool, ...]],
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
            if ok(j) and hits[j][s] and key in key_tuples(step, ordered[j])
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


# --------------------------------------------------------------------------- samples


def match_sample(candidates: Sequence[Sequence[int]], open_: Sequence[bool] = ()) -> tuple[int, ...] | None:
    """Choose one distinct event per filter: the first choice in filter order, candidates in order.

    Elasticsearch's backtracking over each filter's first hits. ``open_[s]`` marks a filter whose
    list may still grow (a stream not yet ended): then the choice is returned only once no later
    event can change it, else None (undecided, or no choice yet). With every list closed, None
    means there is no choice.
    """
    n = len(candidates)
    chosen: list[int] = []

    def search(s: int) -> bool | None:  # True: found; False: none here; None: undecided
        for c in candidates[s]:
            if c in chosen:
                continue
            chosen.append(c)
            if s == n - 1:
                return True
            found = search(s + 1)
            if found is not False:
                return found
            chosen.pop()
        return None if s < len(open_) and open_[s] else False

    return tuple(chosen) if search(0) is True else None


def sample_key_order(key: tuple[Value, ...]) -> tuple[tuple[int, object], ...]:
    """Elasticsearch's order of sample join keys: nulls first, then numbers, then strings, each ascending."""
    out: list[tuple[int, object]] = []
    for v in key:
        if v is None:
            out.append((0, 0))
        elif isinstance(v, bool):
            out.append((1, int(v)))
        elif isinstance(v, int | float):
            out.append((2, v))
        else:
            out.append((3, str(v)))
    return tuple(out)


def _samples(arrived: Sequence[tuple[Event, tuple[bool, ...]]], steps: Sequence[CompiledStep]) -> list[Match]:
    n = len(steps)
    lists: dict[tuple[Value, ...], list[list[int]]] = {}
    for i, (ev, hits) in enumerate(arrived):
        for s, step in enumerate(steps):
            if not hits[s]:
                continue
            for key in key_tuples(step, ev):
                per = lists.setdefault(key, [[] for _ in range(n)])
                if len(per[s]) < n:
                    per[s].append(i)
    rows: list[Match] = []
    for key in sorted(lists, key=sample_key_order):
        chosen = match_sample(lists[key])
        if chosen is not None:
            rows.append(Match(tuple(arrived[i][0] for i in chosen), key))
    return rows
