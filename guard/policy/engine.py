"""The streaming detection engine: every rule of a policy at once over a stream of events.

``Engine(rules).process(batch)`` takes a list of ECS events and returns the alerts they complete;
``flush()`` ends the stream. Results equal the offline evaluator's (:mod:`guard.policy.evaluator`)
on the same events, rule by rule, as long as no budget is exceeded:

- **Prefilter** (:mod:`guard.policy.prefilter`): every event filter (a single-event rule, each
  sequence step, missing step and ``until``) is a unit with a compiled predicate
  (:mod:`guard.policy.codegen`); per event only the units the category and field indexes name are
  evaluated.
- **Sequences** are a streaming NFA per rule with Elastic's semantics: one pending partial match
  per (stage, join key), a newer partial replacing an older; ``maxspan`` measured from the first
  event by event time; ``until`` drops a key's partials; ``runs=N`` is N steps (the IR expands it).
  Missing-event steps ``![...]``: one between two steps poisons the partial it falls behind (the
  match is dropped on completion); leading ones are remembered per key (latest time) and checked at
  completion; trailing ones hold a completed match until maxspan has passed by event time (or the
  stream ends), and an event matching the missing step in time rejects it.
- **Budgets** (:class:`Budgets`): per rule and per entity (the first join-key value) caps on
  pending partials, held matches and remembered keys. Partials idle past maxspan are expired;
  a full rule evicts its least recently used partial (``overflow = "evict_oldest"``) or refuses
  the new one (``"drop_new"``); a full entity evicts its own oldest partial. Every eviction is
  counted per rule (:class:`RuleStats`) and reported once, as a :class:`BudgetEvent`, by
  :meth:`Engine.budget_events`. Memory is bounded by the caps whatever the stream.
- **Determinism**: events are processed in (event time, tie-breaker, arrival) order; alerts come
  out in completion order within an event, rules in policy order, so the same events and rules
  give the same alerts, always.
- **Elastic Endpoint's dialect**: a step's alias terms (``event0.process.name``) are decided in
  :meth:`_Sequence.on_step` against the pending partial (its unit holds only the terms that read
  the event); lineage (``descendant of [...]``) is one :class:`~guard.policy.lineage.LineageState`
  for every rule, each event observed before any predicate is decided on it (its parents and
  marks capped by :class:`Budgets`, an overflow counted as ``lineage_evicted`` for each rule that
  reads it); a condition with either runs as a Python predicate whatever the rule's runtime.
  ``sample`` rules (:mod:`guard.policy.samples`) record their filters' hits during a batch and feed
  them in arrival order at its end, as Elasticsearch samples stored events; their alerts follow
  the batch's others.

Size: over 700 lines on purpose: one streaming engine; the sequence NFA, its budgets, the lineage and
sample wiring and the dispatch loop share the per-rule state and must change together.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from itertools import pairwise
from typing import Final

from guard.errors import PolicyError
from guard.policy.ast import EventFilter, Expr
from guard.policy.ast import Field as FieldNode
from guard.policy.codegen import compile_predicate, fast_getter
from guard.policy.evaluator import (
    CompiledStep,
    EvalContext,
    compile_step,
    key_tuples,
    residual_holds,
    split_alias,
)
from guard.policy.lineage import LineageState, filter_key
from guard.policy.loader import Rule
from guard.policy.predicates import backend
from guard.policy.predicates.abi import Budget, UserModule
from guard.policy.predicates.batch import TRAP_KINDS, BatchPredicate
from guard.policy.prefilter import DEFAULT_MEMO_CAP, CategoryIndex, build_indexes
from guard.policy.samples import SampleMatcher
from guard.policy.schema import ECS, Schema
from guard.policy.semantics import Event, Getter, Value, timestamp_ms, to_number
from guard.policy.walker import stateful

__all__ = [
    "OVERFLOW_COUNTERS",
    "Alert",
    "ArmSignal",
    "BudgetEvent",
    "Budgets",
    "Engine",
    "RuleStats",
    "ruleset_hash",
]


@dataclass(frozen=True, slots=True)
class Budgets:
    """Caps on engine state; each exceeded cap is counted and reported, never a crash or growth."""

    max_pending_per_rule: int = 10_000
    max_pending_per_entity: int = 256
    max_held_per_rule: int = 10_000  # completed matches waiting out a trailing missing step
    max_keys_per_rule: int = 10_000  # keys remembered for a leading missing step (or a sample done)
    memo_per_field: int = DEFAULT_MEMO_CAP
    max_lineage_processes: int = 65_536  # recorded parents, shared by every lineage test
    max_lineage_marks: int = 65_536  # processes remembered per lineage filter

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise PolicyError(f"budgets: {f.name}: must be at least 1, got {getattr(self, f.name)}")


@dataclass(frozen=True, slots=True)
class Alert:
    """A rule's match: its events in step order (None in a missing step's slot)."""

    rule: Rule
    events: tuple[Event | None, ...]
    join_keys: tuple[Value, ...] | None
    ts_ms: float  # the completing event's time
    seq: int  # completion order in this engine: 0, 1, 2, ...


@dataclass(frozen=True, slots=True)
class ArmSignal:
    """A sequence's partial match reached (``arm``) or left without completing (``disarm``) its last stage.

    Reported only for the rules named in ``Engine(armed=...)``: every step but the last has matched
    for ``join_keys``, so the agent can deny the last step in the kernel before it happens.
    ``first_ms`` is the first event's time: the match can complete until ``first_ms + maxspan``.
    """

    kind: str  # "arm" | "disarm"
    rule: Rule
    join_keys: tuple[Value, ...]
    events: tuple[Event, ...]
    first_ms: float
    maxspan_ms: float | None


@dataclass(slots=True)
class RuleStats:
    """Per-rule counters."""

    matches: int = 0  # alerts emitted
    partials: int = 0  # pending partial matches now
    expired: int = 0  # partials dropped after maxspan (not an overflow)
    evicted_lru: int = 0
    evicted_entity: int = 0
    refused: int = 0  # new partials refused (overflow = drop_new)
    held_released: int = 0  # held matches released early by the held cap
    keys_evicted: int = 0  # leading-missing (or sampled) keys forgotten by the key cap
    lineage_evicted: int = 0  # lineage entries this rule reads forgotten by the lineage caps
    rejected: int = 0  # completed matches a missing step rejected
    escaped: int = 0  # events a wasm/lua predicate left to the host (values its columns cannot carry)
    trap_fuel: int = 0  # events given the rule's fail mode: user code out of fuel / instructions,
    trap_memory: int = 0  # out of memory,
    trap_stack: int = 0  # too deep,
    trap_error: int = 0  # or failing

    def to_json(self) -> dict[str, int]:
        """Return the counters as a dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: the RuleStats counters that are budget overflows (audited)
OVERFLOW_COUNTERS: Final = (
    "evicted_lru", "evicted_entity", "refused", "held_released", "keys_evicted", "lineage_evicted",
    "trap_fuel", "trap_memory", "trap_stack", "trap_error",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BudgetEvent:
    """A budget overflow during one batch: which rule, which cap, how many times."""

    rule_id: str
    kind: str  # one of OVERFLOW_COUNTERS
    count: int
    ts_ms: float


def ruleset_hash(rules: Sequence[Rule]) -> str:
    """SHA-256 over what decides alerts: ids, actions, modes, overflow policies and canonical queries."""
    canon = [
        {"id": r.id, "action": r.action, "mode": r.mode, "overflow": r.overflow, "query": r.ir.query.render()}
        for r in rules
    ]
    return hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --------------------------------------------------------------------------- sequences


@dataclass(slots=True, eq=False)
class _Partial:
    events: list[Event]
    key: tuple[Value, ...]
    first_t: float
    last_t: float
    last_index: int
    stage: int = 0
    lead_t: float | None = None
    poisoned: bool = False


@dataclass(slots=True, eq=False, order=False)
class _Held:
    partial: _Partial
    ref_t: float
    seq: int
    completed_t: float
    done: bool = False


def _key_getters(keys: Sequence[Expr], schema: Schema) -> tuple[Getter, ...] | None:
    """Fast getters for join keys that are all plain fields (None: the evaluator's general case)."""
    fields_ = [k for k in keys if isinstance(k, FieldNode)]
    if len(fields_) != len(keys):
        return None
    return tuple(fast_getter(k.name, k.path, schema.null_values.get(k.name)) for k in fields_)


class _Sequence:
    """The NFA of one sequence rule."""

    def __init__(self, engine: Engine, rule_index: int, rule: Rule, schema: Schema) -> None:
        ir = rule.ir
        self.engine = engine
        self.rule_index = rule_index
        self.rule = rule
        self.stats = engine.stats[rule.id]
        context = engine._context
        self.context = context
        self.steps: list[CompiledStep] = [compile_step(s, schema, context) for s in ir.steps]
        self.until: CompiledStep | None = (
            compile_step(ir.until, schema, context) if ir.until is not None else None
        )
        #: each alias -> its positive step's place in a partial
        self.aliases = {
            s.alias: k for k, s in enumerate(x for x in ir.steps if not x.missing) if s.alias is not None
        }
        self.positive = [i for i, s in enumerate(ir.steps) if not s.missing]
        self.stage_of = {s: k for k, s in enumerate(self.positive)}
        n = len(self.positive)
        self.n = n
        self.behind = {  # a middle missing step -> the stage whose partials it falls behind
            s: k for k in range(n - 1) for s in range(self.positive[k] + 1, self.positive[k + 1])
        }
        self.leading = frozenset(range(self.positive[0]))
        self.trailing = frozenset(range(self.positive[-1] + 1, len(ir.steps)))
        self.maxspan = ir.maxspan_ms
        self.span = ir.maxspan_ms if ir.maxspan_ms is not None else math.inf
        self.pending: list[dict[tuple[Value, ...], _Partial]] = [{} for _ in range(max(n - 1, 0))]
        self.lru: dict[tuple[int, tuple[Value, ...]], _Partial] = {}
        self.lead: dict[tuple[Value, ...], float] = {}
        self.held: dict[tuple[Value, ...], list[_Held]] = {}
        self.held_order: dict[int, _Held] = {}  # by completion order
        self.drop_new = rule.overflow == "drop_new"
        #: report ArmSignals (the agent arms the last step in the kernel)
        self.arming = rule.id in engine.armed and n >= 2
        self.key_steps = [*self.steps, *([self.until] if self.until is not None else [])]
        self.key_getters = [
            _key_getters(step.keys, schema) for step in [*ir.steps, *([ir.until] if ir.until else [])]
        ]

    def keys(self, s: int, ev: Event) -> Sequence[tuple[Value, ...]]:
        """Return the join-key tuples of an event for step ``s`` (``len(steps)`` is the until step)."""
        getters = self.key_getters[s]
        if getters is not None:
            if len(getters) == 1:
                v = getters[0](ev)
                if type(v) is str or type(v) is int:
                    return ((v,),)
            else:
                if len(getters) == 2:
                    values: tuple[Value, ...] = (getters[0](ev), getters[1](ev))
                else:
                    values = tuple(g(ev) for g in getters)
                if all(type(v) is str or type(v) is int for v in values):
                    return (values,)  # one scalar per key: the evaluator's answer without its general case
        return key_tuples(self.key_steps[s], ev)

    # ---- partial bookkeeping
    def _signal(self, kind: str, p: _Partial) -> None:
        self.engine._arm_signals.append(
            ArmSignal(kind, self.rule, p.key, tuple(p.events), p.first_t, self.maxspan)
        )

    def _remove(self, p: _Partial, *, disarm: bool = True) -> None:
        if disarm and self.arming and p.stage == self.n - 2:
            self._signal("disarm", p)
        del self.pending[p.stage][p.key]
        del self.lru[(p.stage, p.key)]
        self.engine._entity_remove(p.key, self, p.stage)
        self.stats.partials -= 1

    def _place(self, p: _Partial, stage: int, t: float) -> None:
        """Put ``p`` at ``stage`` (replacing what is there), within the rule's and entity's budgets."""
        p.stage = stage
        p.last_t = t
        slot = (stage, p.key)
        old = self.pending[stage].get(p.key)
        if old is not None:
            self._remove(old, disarm=False)  # replaced in its slot: the new partial re-arms
        budgets = self.engine.budgets
        if len(self.lru) >= budgets.max_pending_per_rule:
            if self.drop_new:
                self.stats.refused += 1
                return
            self._remove(next(iter(self.lru.values())))
            self.stats.evicted_lru += 1
        if not self.engine._entity_admit(p.key, self, stage):
            return
        self.pending[stage][p.key] = p
        self.lru[slot] = p
        self.stats.partials += 1
        if self.arming and stage == self.n - 2:
            self._signal("arm", p)

    def expire(self, now: float) -> None:
        """Drop state that can no longer matter by event time ``now`` (the engine calls this per batch).

        Partials idle longer than maxspan can never complete; a leading missing step's key seen
        longer than maxspan ago can no longer reject a match.
        """
        if self.maxspan is None:
            return
        horizon = now - self.maxspan
        while self.lru:
            p = next(iter(self.lru.values()))
            if p.last_t >= horizon:
                break
            self._remove(p, disarm=False)  # an armed verdict carries the same expiry
            self.stats.expired += 1
        while self.lead:
            key = next(iter(self.lead))
            if self.lead[key] >= horizon:
                break
            del self.lead[key]

    # ---- one event: the engine calls these per matching unit, steps last to first, then until, then missing
    def on_step(self, k: int, index: int, ev: Event, t: float, out: list[Alert]) -> None:
        """Positive step ``k`` held for the event: start, replace or advance partial matches."""
        n = self.n
        if k == 0:
            first = self.pending[0] if self.pending else None
            for key in self.keys(self.positive[0], ev):
                lead_t = self.lead.get(key) if self.leading else None
                if first is None:  # a one-step sequence (with missing steps)
                    self._complete(_Partial([ev], key, t, t, index, 0, lead_t), t, out)
                    continue
                old = first.get(key)
                if old is None:
                    self._place(_Partial([ev], key, t, t, index, 0, lead_t), 0, t)
                    continue
                # a newer partial replaces the older one in its slot: same key, same budget
                old.events = [ev]
                old.first_t = old.last_t = t
                old.last_index = index
                old.lead_t = lead_t
                old.poisoned = False
                slot = (0, key)
                del self.lru[slot]
                self.lru[slot] = old
                if self.arming and n == 2:
                    self._signal("arm", old)
            return
        waiting = self.pending[k - 1]
        if not waiting:
            return
        step = self.steps[self.positive[k]]
        for key in self.keys(self.positive[k], ev):
            prev = waiting.get(key)
            if prev is None:
                continue
            if self.maxspan is not None and t - prev.first_t > self.maxspan:
                self._remove(prev, disarm=False)  # the kernel verdict expires too
                self.stats.expired += 1
                continue
            if step.residual is not None and not residual_holds(
                step, ev, prev.events, self.context, self.aliases
            ):
                continue  # its aliased events reject this event: the partial stays pending
            self._remove(prev, disarm=False)  # it advances
            prev.events.append(ev)
            prev.last_index = index
            if k == n - 1:
                self._complete(prev, t, out)
            else:
                self._place(prev, k, t)

    def on_until(self, index: int, ev: Event, t: float, out: list[Alert]) -> None:
        """Drop every partial match of the event's keys (the until step held)."""
        for key in self.keys(len(self.steps), ev):
            for stage in self.pending:
                p = stage.get(key)
                if p is not None:
                    self._remove(p)

    def on_missing(self, s: int, index: int, ev: Event, t: float, out: list[Alert]) -> None:
        """Missing step ``s`` held: poison, remember or reject, by where the step stands."""
        self._missing(index, ev, t, s)

    def _missing(self, index: int, ev: Event, t: float, s: int) -> None:
        keys = self.keys(s, ev)
        if s in self.behind:
            stage = self.pending[self.behind[s]]
            for key in keys:
                p = stage.get(key)
                if p is not None and p.last_index < index:
                    p.poisoned = True
        elif s in self.leading:
            for key in keys:
                self.lead.pop(key, None)
                self.lead[key] = t
                if len(self.lead) > self.engine.budgets.max_keys_per_rule:
                    del self.lead[next(iter(self.lead))]
                    self.stats.keys_evicted += 1
        else:  # trailing
            for key in keys:
                for h in list(self.held.get(key, ())):
                    if not h.done and h.partial.last_index < index and t - h.ref_t <= self.span:
                        self._unhold(h)
                        self.stats.rejected += 1

    # ---- completion
    def _complete(self, p: _Partial, t: float, out: list[Alert]) -> None:
        if p.poisoned:
            self.stats.rejected += 1
            return
        found_lead = p.lead_t is not None and t - p.lead_t <= self.span
        if self.leading and not self.trailing:
            if found_lead:
                self.stats.rejected += 1
            else:
                out.append(self._alert(p, t, self.engine._next_seq()))
            return
        if self.trailing and (found_lead or not self.leading):
            ref_t = p.lead_t if found_lead and p.lead_t is not None else p.first_t
            self._hold(p, ref_t, t, out)
            return
        out.append(self._alert(p, t, self.engine._next_seq()))

    def _hold(self, p: _Partial, ref_t: float, t: float, out: list[Alert]) -> None:
        h = _Held(p, ref_t, self.engine._next_seq(), t)
        self.held.setdefault(p.key, []).append(h)
        self.held_order[h.seq] = h
        self.engine._schedule(ref_t + self.span, h, self)
        if len(self.held_order) > self.engine.budgets.max_held_per_rule:
            self.stats.held_released += 1
            self.release(next(iter(self.held_order.values())), out)

    def _unhold(self, h: _Held) -> None:
        h.done = True
        hs = self.held[h.partial.key]
        hs.remove(h)
        if not hs:
            del self.held[h.partial.key]
        del self.held_order[h.seq]

    def release(self, h: _Held, out: list[Alert]) -> None:
        """Emit a held match (its trailing missing step can no longer reject it)."""
        if h.done:
            return
        self._unhold(h)
        out.append(self._alert(h.partial, h.completed_t, h.seq))

    def held_matches(self) -> list[_Held]:
        """Every held match, in completion order."""
        return list(self.held_order.values())

    def _alert(self, p: _Partial, t: float, seq: int) -> Alert:
        slots: list[Event | None] = [None] * len(self.steps)
        for k, s in enumerate(self.positive):
            slots[s] = p.events[k]
        self.stats.matches += 1
        return Alert(self.rule, tuple(slots), p.key if p.key else None, t, seq)


# --------------------------------------------------------------------------- the engine

_Handler = Callable[[int, Event, float, list[Alert]], None]


@dataclass(slots=True)
class _Clock:
    """Orders a batch: (event time, tie-breaker, arrival)."""

    ts: Callable[[Event], Value]
    tb: Callable[[Event], Value] | None
    arrivals: int = 0
    watermark: float = -math.inf
    late: int = 0
    #: the arrival number of each event of the last batch, in processing order
    positions: list[int] = field(default_factory=list)

    def order(self, events: Sequence[Event]) -> list[tuple[float, Event]]:
        """Return (time, event) in (time, tie-breaker, arrival) order; sort only when arrival is not."""
        base = self.arrivals
        self.arrivals += len(events)
        times = [
            float(v) if type(v) is int or type(v) is float else timestamp_ms(v) for v in map(self.ts, events)
        ]
        ordered = all(a <= b for a, b in pairwise(times))
        if ordered:  # equal times must also be in tie-breaker order
            ordered = all(self._tb_key(events[i], base + i) <= self._tb_key(events[i + 1], base + i + 1)
                          for i, (a, b) in enumerate(pairwise(times)) if a == b)  # fmt: skip
        if ordered:
            pairs = list(zip(times, events, strict=True))
            self.positions = list(range(base, base + len(events)))
        else:
            keys = [
                (t, self._tb_key(ev, base + i), base + i)
                for i, (t, ev) in enumerate(zip(times, events, strict=True))
            ]
            order = sorted(range(len(keys)), key=keys.__getitem__)
            pairs = [(times[j], events[j]) for j in order]
            self.positions = [base + j for j in order]
        if pairs:
            if pairs[0][0] < self.watermark:
                self.late += sum(1 for t, _ in pairs if t < self.watermark)
            last = pairs[-1][0]
            if last == last:  # not NaN
                self.watermark = max(self.watermark, last)
        return pairs

    def _tb_key(self, ev: Event, arrival: int) -> float:
        b = self.tb(ev) if self.tb is not None else None
        n = float(b) if type(b) is int or type(b) is float else to_number(b)
        return n if n is not None else float(arrival)


def _decided_in_batch(ev: Event) -> bool:
    """Stands in the per-event predicate list for a wasm/lua predicate (decided per batch)."""
    raise AssertionError("a batch predicate is decided in _process_batched")


def _candidates(
    by_cat: Mapping[str, CategoryIndex], other: CategoryIndex, c: Value, ev: Event
) -> tuple[int, ...]:
    """Return the units of an index that may hold for an event of category value ``c`` (one, many, none)."""
    if type(c) is str:
        return by_cat.get(c, other).candidates(ev)
    names = {x for x in (c if isinstance(c, list) else [c]) if isinstance(x, str)}
    if not names:
        return other.candidates(ev)
    found: set[int] = set()
    for name in names:
        found.update((by_cat.get(name) or other).candidates(ev))
    return tuple(found)


class Engine:
    """Evaluate many rules over a stream; see the module docstring for the semantics."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        budgets: Budgets | None = None,
        schema: Schema = ECS,
        timestamp_field: str = "@timestamp",
        tiebreaker_field: str | None = "event.sequence",
        armed: frozenset[str] = frozenset(),
        runtime_budget: Budget | None = None,
        modules: Sequence[UserModule] = (),
    ) -> None:
        self.rules = tuple(r for r in rules if r.mode != "off")
        self.runtime_budget = runtime_budget or Budget()
        self.modules = tuple(modules)
        #: wasm / lua predicates by predicate id, decided a batch at a time
        self._batch: dict[int, BatchPredicate] = {}
        self._batch_rules: dict[int, list[str]] = {}
        #: sequence rules whose last-stage progress is reported as ArmSignals
        self.armed = armed
        self._arm_signals: list[ArmSignal] = []
        self.budgets = budgets or Budgets()
        self.schema = schema
        self.ruleset_hash = ruleset_hash(self.rules)
        self.stats: dict[str, RuleStats] = {r.id: RuleStats() for r in self.rules}
        self._seq = 0
        self._index = 0
        self._clock = _Clock(
            fast_getter(timestamp_field, tuple(timestamp_field.split("."))),
            fast_getter(tiebreaker_field, tuple(tiebreaker_field.split("."))) if tiebreaker_field else None,
        )
        cat_name = schema.category_fields[0]
        self._category = fast_getter(cat_name, tuple(cat_name.split(".")))
        self._handlers: list[_Handler] = []  # per unit: what its match does
        self._preds: list[Callable[[Event], bool]] = []  # one per distinct (category, condition)
        self._pred_units: list[list[int]] = []  # the units each predicate decides
        self._pred_ids: dict[tuple[str | None, str, str, str], int] = {}
        self._sequences: dict[int, _Sequence] = {}
        self._entities: dict[Value, dict[tuple[int, int, tuple[Value, ...]], _Sequence]] = {}
        self._timers: list[tuple[float, int, _Held, _Sequence]] = []
        self._reported: dict[tuple[str, str], int] = {}
        self._context = EvalContext()
        self._lineage_init(schema)
        self._samples: dict[int, tuple[Rule, SampleMatcher]] = {}
        self._batch_start = 0
        conditions: list[tuple[str | None, Expr]] = []
        for ri, rule in enumerate(self.rules):
            ir = rule.ir
            if ir.is_sample:
                self._add_sample(ri, rule, conditions)
                continue
            if not ir.is_sequence:
                step = ir.steps[0]
                self._add_unit(step.category, step.condition, conditions, self._single_handler(rule), rule)
                continue
            seq = self._sequences[ri] = _Sequence(self, ri, rule, schema)
            # unit order is processing order within an event: positive steps last to first, until, missing
            for k in range(seq.n - 1, -1, -1):
                step = ir.steps[seq.positive[k]]
                own, _aliased = split_alias(step.condition)  # the alias terms are decided in on_step
                self._add_unit(step.category, own, conditions, partial(seq.on_step, k), rule)
            if ir.until is not None:
                self._add_unit(ir.until.category, ir.until.condition, conditions, seq.on_until, rule)
            for s, step in enumerate(ir.steps):
                if step.missing:
                    self._add_unit(
                        step.category, step.condition, conditions, partial(seq.on_missing, s), rule
                    )
        by_cat, other, guards = build_indexes(conditions, schema, memo_cap=self.budgets.memo_per_field)
        self.guards = {u: guards[pid] for pid, us in enumerate(self._pred_units) for u in us}
        self._by_category: dict[str, CategoryIndex] = by_cat
        self._other = other

    def _lineage_init(self, schema: Schema) -> None:
        """Track the lineage filters of every rule in one state, each filter once, inner ones first."""
        filters: dict[tuple[str | None, str], EventFilter] = {}
        readers: dict[tuple[str | None, str], list[str]] = {}
        for rule in self.rules:
            for f in rule.ir.lineage:
                filters.setdefault(filter_key(f), f)
                readers.setdefault(filter_key(f), []).append(rule.id)
        self._lineage: LineageState | None = None
        self._lineage_readers = [readers[k] for k in filters]
        self._lineage_preds: list[Callable[[Event], bool]] = []
        if not filters:
            return
        state = LineageState(
            list(filters.values()), schema, max_processes=self.budgets.max_lineage_processes,
            max_marks=self.budgets.max_lineage_marks, on_evict=self._lineage_evicted,
        )  # fmt: skip
        self._lineage = self._context.lineage = state
        self._lineage_preds = [
            compile_predicate(f.condition, schema, name=f"lineage_{n}", context=self._context).fn
            for n, f in enumerate(state.filters)
        ]
        units = [(f.category, f.condition) for f in state.filters]
        self._lineage_index = build_indexes(units, schema, memo_cap=self.budgets.memo_per_field)[:2]

    def _lineage_evicted(self, fid: int | None) -> None:
        """Count a forgotten lineage entry for each rule it could answer (every lineage rule for a parent)."""
        readers = (
            self._lineage_readers[fid] if fid is not None else {r for rs in self._lineage_readers for r in rs}
        )
        for rule_id in readers:
            self.stats[rule_id].lineage_evicted += 1

    def _observe(self, ev: Event) -> None:
        """Learn what one event says about processes, before any predicate is decided on it."""
        state = self._lineage
        assert state is not None  # noqa: S101 - called only when lineage is tracked
        state.note_start(ev)
        by_cat, other = self._lineage_index
        preds = self._lineage_preds
        for fid in sorted(_candidates(by_cat, other, self._category(ev), ev)):
            if preds[fid](ev):
                state.mark(fid, ev)

    def _add_sample(self, ri: int, rule: Rule, conditions: list[tuple[str | None, Expr]]) -> None:
        """Add a sample rule: one unit per filter, recording its hits for the end of the batch."""
        steps = [compile_step(s, self.schema, self._context) for s in rule.ir.steps]
        matcher = SampleMatcher(
            steps, self.stats[rule.id], max_keys=self.budgets.max_pending_per_rule,
            max_done=self.budgets.max_keys_per_rule, drop_new=rule.overflow == "drop_new",
        )  # fmt: skip
        self._samples[ri] = (rule, matcher)
        for s, step in enumerate(rule.ir.steps):

            def hit(index: int, ev: Event, t: float, out: list[Alert], s: int = s) -> None:
                matcher.hit(self._clock.positions[index - self._batch_start], s, ev, t)

            self._add_unit(step.category, step.condition, conditions, hit, rule)

    def _sample_alerts(self, found: list[tuple[tuple[Value, ...], tuple[Event, ...], float]], rule: Rule,
                       out: list[Alert]) -> None:  # fmt: skip
        stats = self.stats[rule.id]
        for key, events, t in found:
            stats.matches += 1
            out.append(Alert(rule, events, key, t, self._next_seq()))

    def _single_handler(self, rule: Rule) -> _Handler:
        stats = self.stats[rule.id]

        def matched(index: int, ev: Event, t: float, out: list[Alert]) -> None:
            stats.matches += 1
            out.append(Alert(rule, (ev,), None, t, self._next_seq()))

        return matched

    def _add_unit(
        self,
        category: str | None,
        condition: Expr,
        conditions: list[tuple[str | None, Expr]],
        handler: _Handler,
        rule: Rule,
    ) -> None:
        """Add a unit; units with the same category, condition, runtime and fail mode share one predicate."""
        # not the nodes: 2 == 2.0 and 1 == True as values
        key = (category, condition.render(), rule.runtime, rule.fail_mode)
        pid = self._pred_ids.get(key)
        if pid is None:
            pid = self._pred_ids[key] = len(self._preds)
            name = f"pred_{pid}"
            if rule.runtime == "python" or stateful(condition):  # lineage and aliases: Python only
                pred = compile_predicate(condition, self.schema, name=name, context=self._context)
                self._preds.append(pred.fn)
            else:
                try:
                    self._batch[pid] = BatchPredicate(
                        condition, backend(rule.runtime), schema=self.schema, budget=self.runtime_budget,
                        modules=self.modules, fail_mode=rule.fail_mode, name=name,
                    )  # fmt: skip
                except PolicyError as exc:
                    raise PolicyError(f"{rule.path}: rule '{rule.id}': {exc}") from None
                self._preds.append(_decided_in_batch)
            self._pred_units.append([])
            conditions.append((category, condition))
        if pid in self._batch:
            rules = self._batch_rules.setdefault(pid, [])
            if rule.id not in rules:
                rules.append(rule.id)
        self._pred_units[pid].append(len(self._handlers))  # a unit is its handler's index
        self._handlers.append(handler)

    # ---- budgets shared across rules
    def _entity_admit(self, key: tuple[Value, ...], seq: _Sequence, stage: int) -> bool:
        if not key:
            return True
        members = self._entities.setdefault(key[0], {})
        if len(members) >= self.budgets.max_pending_per_entity:
            if seq.drop_new:
                seq.stats.refused += 1
                return False
            (_ri, st, k), owner = next(iter(members.items()))
            owner._remove(owner.pending[st][k])
            owner.stats.evicted_entity += 1
            members = self._entities.setdefault(key[0], {})
        members[(seq.rule_index, stage, key)] = seq
        return True

    def _entity_remove(self, key: tuple[Value, ...], seq: _Sequence, stage: int) -> None:
        if not key:
            return
        members = self._entities.get(key[0])
        if members is not None:
            members.pop((seq.rule_index, stage, key), None)
            if not members:
                del self._entities[key[0]]

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    def _schedule(self, at: float, h: _Held, seq: _Sequence) -> None:
        if at == math.inf:
            return  # no maxspan: held until the stream ends
        timers = self._timers
        if len(timers) > 1024 and len(timers) > 2 * sum(len(s.held_order) for s in self._sequences.values()):
            timers[:] = [x for x in timers if not x[2].done]  # drop timers of rejected matches
            heapq.heapify(timers)
        heapq.heappush(timers, (at, h.seq, h, seq))

    # ---- the stream
    def process(self, events: Sequence[Event]) -> list[Alert]:
        """Run one batch (any order within it); return the alerts it completes, in order."""
        out: list[Alert] = []
        by_cat = self._by_category
        other = self._other
        preds = self._preds
        pred_units = self._pred_units
        category = self._category
        timers = self._timers
        index = self._batch_start = self._index
        pairs = self._clock.order(events)
        if self._batch:
            preds = self._decide_batches(pairs)
        observe = self._observe if self._lineage is not None else None
        for t, ev in pairs:
            if timers and timers[0][0] < t:
                self._fire(t, out)
            if observe is not None:
                observe(ev)
            c = category(ev)
            index_c = by_cat.get(c, other) if type(c) is str else None
            cands = index_c.candidates(ev) if index_c is not None else self._multi_category(c, ev)
            index += 1
            if not cands:
                continue
            hits = [p for p in cands if preds[p](ev)]
            if not hits:
                continue
            if len(hits) == 1:
                self._dispatch(index - 1, ev, t, pred_units[hits[0]], out)
            else:
                self._dispatch(index - 1, ev, t, sorted([u for p in hits for u in pred_units[p]]), out)
        self._index = index
        for rule, matcher in self._samples.values():
            self._sample_alerts(matcher.drain(), rule, out)
        if events:
            for seq in self._sequences.values():
                seq.expire(self._clock.watermark)
        return out

    def _decide_batches(self, pairs: list[tuple[float, Event]]) -> list[Callable[[Event], bool]]:
        """Decide every wasm/lua candidate of the batch, one call per predicate; return the predicates.

        Predicates are pure functions of the event, so deciding them for the whole batch before
        dispatching in order gives the same alerts as deciding each in turn. In the list returned,
        a wasm/lua predicate answers from those results (by event identity: the batch holds them).
        """
        by_cat, other, category, batch = self._by_category, self._other, self._category, self._batch
        wanted: dict[int, list[Event]] = {}
        for _t, ev in pairs:
            c = category(ev)
            index_c = by_cat.get(c, other) if type(c) is str else None
            for p in index_c.candidates(ev) if index_c is not None else self._multi_category(c, ev):
                if p in batch:
                    wanted.setdefault(p, []).append(ev)
        preds = list(self._preds)
        for p, evs in wanted.items():  # the others are no event's candidate in this batch
            bp = batch[p]
            before = bp.stats.to_json()
            true_ids = {id(ev) for ev, yes in zip(evs, bp.decide(evs), strict=True) if yes}
            self._count_runtime(p, before, bp.stats.to_json())
            preds[p] = lambda ev, ids=true_ids: id(ev) in ids  # type: ignore[misc]
        return preds

    def _count_runtime(self, pid: int, before: Mapping[str, int], after: Mapping[str, int]) -> None:
        """Add a wasm/lua predicate's escapes and traps of one batch to its rules' counters."""
        for rule_id in self._batch_rules.get(pid, ()):
            st = self.stats[rule_id]
            st.escaped += after["escaped"] - before["escaped"]
            for kind in TRAP_KINDS:
                delta = after[kind] - before[kind]
                if delta:
                    setattr(st, f"trap_{kind}", getattr(st, f"trap_{kind}") + delta)

    def predicate_stats(self) -> dict[str, dict[str, object]]:
        """Per wasm/lua predicate: its rules, runtime and counters (for status and benchmarks)."""
        return {
            f"pred_{pid}": {"runtime": bp.backend.name, "rules": list(self._batch_rules.get(pid, [])),
                            **bp.stats.to_json()}
            for pid, bp in self._batch.items()
        }  # fmt: skip

    def _multi_category(self, c: Value, ev: Event) -> tuple[int, ...]:
        return _candidates(self._by_category, self._other, c, ev)

    def _dispatch(self, index: int, ev: Event, t: float, units: list[int], out: list[Alert]) -> None:
        handlers = self._handlers
        for u in units:
            handlers[u](index, ev, t, out)

    def _fire(self, now: float, out: list[Alert]) -> None:
        timers = self._timers
        while timers and timers[0][0] < now:
            _at, _s, h, seq = heapq.heappop(timers)
            seq.release(h, out)

    def run(self, events: Sequence[Event], *, batch: int = 4096) -> list[Alert]:
        """Stream a whole recording in batches, end it; return every alert in completion order."""
        alerts: list[Alert] = []
        for start in range(0, len(events), batch):
            alerts.extend(self.process(events[start : start + batch]))
        alerts.extend(self.flush())
        alerts.sort(key=lambda a: a.seq)
        return alerts

    def flush(self) -> list[Alert]:
        """End of stream: release every match held for a trailing missing step, in completion order.

        Then every sample still undecided, by ascending key.
        """
        out: list[Alert] = []
        held = sorted(
            ((h, seq) for seq in self._sequences.values() for h in seq.held_matches()), key=lambda x: x[0].seq
        )
        for h, seq in held:
            seq.release(h, out)
        self._timers.clear()
        for rule, matcher in self._samples.values():
            self._sample_alerts(matcher.flush(), rule, out)
        return out

    def take_arm_signals(self) -> list[ArmSignal]:
        """Return (and forget) the arm and disarm signals since the last call, in order."""
        out, self._arm_signals = self._arm_signals, []
        return out

    def budget_events(self) -> list[BudgetEvent]:
        """Overflows counted since the last call, one event per (rule, cap)."""
        events: list[BudgetEvent] = []
        for rule_id, st in self.stats.items():
            for kind in OVERFLOW_COUNTERS:
                now = getattr(st, kind)
                before = self._reported.get((rule_id, kind), 0)
                if now > before:
                    events.append(BudgetEvent(rule_id, kind, now - before, self._clock.watermark))
                    self._reported[(rule_id, kind)] = now
        return events

    @property
    def late_events(self) -> int:
        """Events that arrived with a time before an earlier batch's latest (processed anyway)."""
        return self._clock.late

    def pending(self) -> int:
        """Partial matches held now, over every rule."""
        return sum(len(s.lru) for s in self._sequences.values())

    def state_size(self) -> Mapping[str, int]:
        """How much state the engine holds, by kind (bounded by :class:`Budgets`)."""
        return {
            "partials": self.pending(),
            "held": sum(len(s.held_order) for s in self._sequences.values()),
            "lead_keys": sum(len(s.lead) for s in self._sequences.values()),
            "entities": len(self._entities),
            "timers": len(self._timers),
            "samples": sum(len(m.candidates) + len(m.done) for _r, m in self._samples.values()),
            "lineage": self._lineage.size() if self._lineage is not None else 0,
            "memo": sum(
                len(fi.memo) + len(fi.memo_lists) + len(fi.memo_other)
                for ci in [*self._by_category.values(), self._other]
                for fi in ci.fields
            ),
        }
