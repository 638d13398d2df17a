"""``guardctl query``: search a recording with one EQL query through the streaming engine."""

from __future__ import annotations

from collections.abc import Iterable

from guard.offline.stream import stream_alerts
from guard.policy.engine import Engine
from guard.policy.evaluator import Match, limit_rows
from guard.policy.loader import Rule
from guard.policy.semantics import Event

__all__ = ["run_query"]


def run_query(rule: Rule, events: Iterable[Event], *, batch: int = 4096) -> list[Match]:
    """Every match of the query in the (streamed) events, in completion order; ``| head``/``| tail`` apply."""
    rows = [Match(a.events, a.join_keys) for a in stream_alerts(Engine([rule]), events, batch=batch)]
    return limit_rows(rows, rule.ir.head, rule.ir.tail, None)
