"""The intermediate representation every evaluator consumes: a checked, normalised query.

Normalisation: ``runs=N`` steps are expanded, the sequence-wide ``by`` keys are prepended to every
step's own keys, pipes become ``head``/``tail`` limits, maxspan is in milliseconds. Expressions stay
:mod:`guard.policy.ast` nodes (already normalised by the parser), with each field's kind recorded, and
two rewrites by the analyzer: a field of an earlier step's alias is an :class:`~guard.policy.ast.AliasField`,
and an integer literal compared for equality with a string field is its string form (``user.id == 0``
is ``user.id == "0"``, as Elastic Endpoint compares keyword fields with numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from guard.policy.ast import EventFilter, Expr, Query
from guard.policy.schema import Kind

__all__ = ["QueryIR", "StepIR"]


@dataclass(frozen=True, slots=True)
class StepIR:
    """One event filter: an event query's only step, or one sequence step (``missing`` for ``![...]``).

    ``alias`` names the step's event for the conditions of later steps (``[...] as event0``); with
    ``runs=N`` it names the last of the N events.
    """

    category: str | None  # None: any
    condition: Expr
    keys: tuple[Expr, ...] = ()
    missing: bool = False
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class QueryIR:
    """A query ready to evaluate.

    ``is_sequence`` is true for every query whose results are tuples of events: a sequence, or a
    sample (``is_sample``: unordered filters, one event each, sharing the join keys). ``lineage``
    holds the distinct filters of every ``descendant/child/event of [...]`` test, inner ones first.
    """

    query: Query
    steps: tuple[StepIR, ...]
    is_sequence: bool
    until: StepIR | None
    maxspan_ms: float | None
    head: int | None
    tail: int | None
    field_kinds: Mapping[str, Kind]
    schema: str
    is_sample: bool = False
    lineage: tuple[EventFilter, ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        """Every field the query reads."""
        return frozenset(self.field_kinds)

    @property
    def key_count(self) -> int:
        """Join keys per step (0 for event queries and sequences without ``by``)."""
        return len(self.steps[0].keys) if self.steps else 0
