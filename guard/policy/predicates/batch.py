"""The host side of the ABI: pack a batch of events into columns, run a runtime once, apply fail modes.

:class:`BatchPredicate` is what the engine holds for a rule on the ``wasm`` or ``lua`` runtime:

1. **Columns**: each field the native leaves read is fetched for every event of the batch; a value
   the column cannot carry natively (a list, an object, a type its leaves do not test, an int wider
   than the runtime's, a non-ASCII string under ASCII folding) makes that event *escape*.
2. **Host leaves**: their evaluator closures give a tri-state column.
3. **One call** decides every event that did not escape: the runtime returns a bitmask.
4. **Escaped events** are decided on the host by the same lowered tree, each native leaf through its
   evaluator closure (so an escape never changes a result, only its cost); a user call there runs
   in the runtime on that one event (a multi-valued argument makes it null).
5. **Traps**: when user code exceeds the budget or fails, the batch is bisected to find the events
   that trap, at most :data:`MAX_ISOLATION_CALLS` extra calls per batch; a trapping event, and
   every undecided event once that allowance is spent, gets the rule's fail mode (``open``: no
   match, ``closed``: match). Each is counted by trap kind in :class:`PredicateStats`, which the
   engine turns into audit-able budget events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Final

from guard.errors import PredicateTrap
from guard.policy.ast import Expr
from guard.policy.predicates.abi import (
    Backend,
    Budget,
    CompiledBatch,
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
    UserModule,
)
from guard.policy.predicates.lowering import Lowered, int_range, lower
from guard.policy.predicates.reference import evaluate as reference_evaluate
from guard.policy.schema import ECS, Schema
from guard.policy.semantics import Event

__all__ = ["FAIL_MODES", "MAX_ISOLATION_CALLS", "TRAP_KINDS", "BatchPredicate", "PredicateStats"]

FAIL_MODES: Final = ("open", "closed")
TRAP_KINDS: Final = ("fuel", "memory", "stack", "error")
#: extra runtime calls one batch may spend isolating trapping events before the rest fail
MAX_ISOLATION_CALLS: Final = 32

Truth = bool | None


@dataclass(slots=True)
class PredicateStats:
    """Per-predicate counters (cumulative)."""

    batches: int = 0
    events: int = 0
    escaped: int = 0  # events decided on the host (a value the columns cannot carry)
    fuel: int = 0  # events given the fail mode, by trap kind
    memory: int = 0
    stack: int = 0
    error: int = 0
    calls: int = 0  # runtime calls, isolation included

    def to_json(self) -> dict[str, int]:
        """Return the counters as a dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class _Run:
    """One batch's trap bookkeeping."""

    allowance: int = MAX_ISOLATION_CALLS
    failed: dict[int, str] = field(default_factory=dict)  # event position -> trap kind
    last: PredicateTrap | None = None


class BatchPredicate:
    """A condition compiled for a runtime; :meth:`decide` answers a batch of events."""

    def __init__(
        self,
        condition: Expr,
        backend: Backend,
        *,
        schema: Schema = ECS,
        budget: Budget | None = None,
        modules: Sequence[UserModule] = (),
        fail_mode: str = "open",
        name: str = "pred",
    ) -> None:
        if fail_mode not in FAIL_MODES:
            raise ValueError(f"fail mode: expected open or closed, got {fail_mode!r}")
        self.backend = backend
        self.budget = budget or Budget()
        self.modules = tuple(modules)
        self.fail_closed = fail_mode == "closed"
        self.name = name
        self.lowered: Lowered = lower(condition, schema, int_bits=backend.int_bits)
        lw = self.lowered
        self.compiled: CompiledBatch = backend.compile(
            lw.expr, lw.columns, len(lw.host), budget=self.budget, modules=self.modules, name=name
        )
        self.stats = PredicateStats()
        self._finders = [self._finder(i) for i in range(len(lw.columns))]
        #: per column, whether one value travels natively (the finder on a one-value column)
        self._checks = [partial(_native, find) for find in self._finders]
        self._single: dict[PExpr, CompiledBatch] = {}

    @property
    def source(self) -> str:
        """The generated WAT or Lua."""
        return self.compiled.source

    def _finder(self, index: int) -> Callable[[Sequence[object]], list[int]]:
        """Return a function listing the positions of a column's values that must escape.

        Generated per column so the common case (every value native) is one comprehension with
        inline type tests, no call per value.
        """
        spec = self.lowered.columns[index]
        lo, hi = int_range(self.backend.int_bits)
        tests = []
        if "str" in spec.kinds:
            tests.append("(t is str and v.isascii())" if spec.ascii_only else "t is str")
        if "int" in spec.kinds:
            tests.append(f"(t is int and {lo} <= v <= {hi})")
        if "float" in spec.kinds:
            tests.append("t is float")
        if "bool" in spec.kinds:
            tests.append("t is bool")
        ok = " or ".join(tests) or "False"
        source = (
            "def escapes(col):\n"
            f"    return [i for i, v in enumerate(col)\n"
            f"            if v is not None and not ((t := type(v)) and ({ok}))]\n"
        )
        namespace: dict[str, object] = {}
        exec(compile(source, f"<escapes {spec.field}>", "exec"), namespace)  # noqa: S102 - our own generated source
        finder: Callable[[Sequence[object]], list[int]] = namespace["escapes"]  # type: ignore[assignment]
        return finder

    # ---- the batch
    def decide(self, events: Sequence[Event]) -> list[bool]:
        """Return, per event, whether the condition is True (the fail mode where user code trapped)."""
        n = len(events)
        stats = self.stats
        stats.batches += 1
        stats.events += n
        if n == 0:
            return []
        lw = self.lowered
        columns: list[list[NativeValue]] = []
        escaped: set[int] = set()
        for getter, finder in zip(lw.getters, self._finders, strict=True):
            col = [getter(ev) for ev in events]
            bad = finder(col)
            if bad:
                escaped.update(bad)
            columns.append(col)  # type: ignore[arg-type]
        host: list[list[Truth]] = [[h(ev) for ev in events] for h in lw.host]
        results = [False] * n
        run = _Run()
        try:
            self._run_live(columns, host, escaped, results, run)
        except UnicodeEncodeError:  # a lone surrogate a runtime cannot encode: those events escape
            escaped.update(_unencodable(columns))
            results, run = [False] * n, _Run()
            self._run_live(columns, host, escaped, results, run)
        for pos, kind in run.failed.items():
            setattr(stats, kind, getattr(stats, kind) + 1)
            results[pos] = self.fail_closed
        if escaped:
            stats.escaped += len(escaped)
            for i in sorted(escaped):
                try:
                    truth = self._host_decide(events[i], [c[i] for c in columns], [h[i] for h in host])
                except PredicateTrap as trap:
                    kind = trap.kind if trap.kind in TRAP_KINDS else "error"
                    setattr(stats, kind, getattr(stats, kind) + 1)
                    results[i] = self.fail_closed
                    continue
                results[i] = truth is True
        return results

    def _run_live(
        self,
        columns: list[list[NativeValue]],
        host: list[list[Truth]],
        escaped: set[int],
        results: list[bool],
        run: _Run,
    ) -> None:
        """Decide every event that did not escape, in one call (bisected on traps)."""
        n = len(results)
        live = [i for i in range(n) if i not in escaped] if escaped else list(range(n))
        if not live:
            return
        if escaped:
            self._run(
                [[c[i] for i in live] for c in columns],
                [[h[i] for i in live] for h in host],
                live,
                results,
                run,
            )
        else:
            self._run(columns, host, live, results, run)

    def _run(
        self,
        columns: Sequence[Sequence[NativeValue]],
        host: Sequence[HostColumn],
        positions: list[int],
        results: list[bool],
        run: _Run,
    ) -> None:
        """Decide ``positions`` in one call; bisect on a trap while the allowance lasts."""
        self.stats.calls += 1
        try:
            mask = self.compiled.run(columns, host, len(positions))
        except PredicateTrap as trap:
            kind = trap.kind if trap.kind in TRAP_KINDS else "error"
            run.last = trap
            if len(positions) == 1 or run.allowance < 2:
                for pos in positions:
                    run.failed[pos] = kind
                return
            run.allowance -= 2
            half = len(positions) // 2
            for lo, hi in ((0, half), (half, len(positions))):
                self._run(
                    [c[lo:hi] for c in columns], [h[lo:hi] for h in host], positions[lo:hi], results, run
                )
            return
        if mask:
            bits = bin(mask)[:1:-1]  # bit k is character k
            k = bits.find("1")
            while k != -1:
                results[positions[k]] = True
                k = bits.find("1", k + 1)

    # ---- escaped events: the lowered tree with evaluator leaves
    def _host_decide(self, ev: Event, row: list[NativeValue], host: list[Truth]) -> Truth:
        lw = self.lowered
        checks = self._checks

        def leaf(e: PExpr) -> Truth:
            if isinstance(e, PCompare | PIn | PWildcard | PAffix):
                if checks[e.col](row[e.col]):
                    return reference_evaluate(e, row, host)
                return lw.fallback[e](ev)
            if isinstance(e, PUser):
                return self._user_one(e, row)
            return walk(e)

        def walk(e: PExpr) -> Truth:
            if isinstance(e, PConst):
                return e.value
            if isinstance(e, PHost):
                return host[e.index]
            if isinstance(e, PNot):
                v = walk(e.expr)
                return None if v is None else not v
            if isinstance(e, PAnd | POr):
                decisive = isinstance(e, POr)
                seen_null = False
                for t in e.terms:
                    v = walk(t)
                    if v is decisive:
                        return decisive
                    seen_null = seen_null or v is None
                return None if seen_null else not decisive
            return leaf(e)

        return walk(lw.expr)

    def _user_one(self, e: PUser, row: list[NativeValue]) -> Truth:
        """Run one user call on one event in the runtime (its truth: the call, then its negation).

        A non-native argument makes the call null; a trap propagates (the event gets the fail mode).
        """
        for tag, arg in e.args:
            if tag == "col" and not self._checks[arg](row[arg]):  # type: ignore[index]
                return None
        single = [[v] for v in row]
        if self._one(e).run(single, [], 1) & 1:
            return True
        return False if self._one(PNot(e)).run(single, [], 1) & 1 else None

    def _one(self, e: PExpr) -> CompiledBatch:
        compiled = self._single.get(e)
        if compiled is None:
            lw = self.lowered
            compiled = self._single[e] = self.backend.compile(
                e, lw.columns, 0, budget=self.budget, modules=self.modules, name=f"{self.name}_one"
            )
        return compiled


def _native(find: Callable[[Sequence[object]], list[int]], value: object) -> bool:
    """Whether one value travels natively, by its column's escape finder."""
    return not find((value,))


def _unencodable(columns: Sequence[Sequence[NativeValue]]) -> set[int]:
    """Positions whose strings UTF-8 cannot encode (lone surrogates)."""
    bad: set[int] = set()
    for col in columns:
        for i, v in enumerate(col):
            if type(v) is str:
                try:
                    v.encode()
                except UnicodeEncodeError:
                    bad.add(i)
    return bad
