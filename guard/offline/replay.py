"""Replay: run a policy over a recording and say what it would have decided, deterministically.

The recording streams through the detection engine (:class:`~guard.policy.engine.Engine`) as the
agent's events would: in (event time, ``event.sequence``) order, in batches, every rule whose mode is
not ``off`` at once. A match of a ``block`` rule is a ``deny`` under enforce and a ``would_block``
under detect; a ``kill`` rule's match is a ``kill`` (``would_block`` under detect); ``alert`` matches
are counted but are not enforcement decisions, so they are not audited. Decisions come in completion
order (rules in policy order within an event), so the same recording and policy always give the same
decisions. Written to an audit trail, they read like a real run's, marked ``outcome: replayed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from guard.audit.record import Decision, JsonValue, Kind, ProcessIdentity
from guard.model import Hook
from guard.offline.stream import stream_alerts
from guard.policy.engine import Budgets, Engine
from guard.policy.loader import Policy, Rule
from guard.policy.semantics import Event, field_getter

__all__ = ["ReplayDecision", "replay", "summarize"]


@dataclass(frozen=True, slots=True)
class ReplayDecision:
    """What one rule would have decided on one match (the match's last event decides)."""

    rule: Rule
    kind: str  # deny | would_block | kill | alert
    events: tuple[Event, ...]
    ts_ns: int

    @property
    def event_ids(self) -> tuple[str, ...]:
        """The ``event.id`` of each event of the match ("" where absent)."""
        return tuple(str(_first(_get(e, "event.id")) or "") for e in self.events)

    @property
    def event(self) -> Event:
        """The deciding event."""
        return self.events[-1]

    def to_audit(self, source: str) -> Decision:
        """Return the audit record this decision becomes (not for alerts)."""
        ev = self.event
        category = _first(_get(ev, "event.category"))
        hook = Hook.for_category(str(category)) if category is not None else None
        detail: dict[str, JsonValue] = {
            "replay": True,
            "source": source,
            "action": self.rule.action,
            "event_ids": list(self.event_ids),
        }
        return Decision(
            Kind(self.kind),
            rule_id=self.rule.id,
            hook=hook.value if hook is not None else None,
            process=_identity(ev),
            verdict="deny" if self.kind in ("deny", "kill") else "allow",
            outcome="replayed",
            reason=f"{self.rule.name} ({self.rule.severity})",
            detail=detail,
            ts=self.ts_ns,
        )


def _get(event: Event, name: str) -> object:
    return field_getter(name, tuple(name.split(".")))(event)


def _first(value: object) -> object:
    return value[0] if isinstance(value, list) and value else value


def _int(value: object) -> int | None:
    value = _first(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _identity(ev: Event) -> ProcessIdentity:
    return ProcessIdentity(
        pid=_int(_get(ev, "process.pid")) or 0,
        exe=str(_first(_get(ev, "process.executable")) or ""),
        uid=_int(_get(ev, "user.id")),
        entity_id=str(_first(_get(ev, "process.entity_id")) or ""),
        ppid=_int(_get(ev, "process.parent.pid")),
        parent_exe=str(_first(_get(ev, "process.parent.executable")) or ""),
        comm=str(_first(_get(ev, "process.name")) or ""),
    )


def _kind(rule: Rule, mode: str) -> str:
    if rule.action == "alert":
        return "alert"
    if mode == "detect":
        return "would_block"
    return "kill" if rule.action == "kill" else "deny"


#: events handed to the engine per call (the agent's ring-buffer batches are of this order)
REPLAY_BATCH: Final = 4096


def replay(
    policy: Policy,
    events: Iterable[Event],
    *,
    default_mode: str = "enforce",
    budgets: Budgets | None = None,
    engine: Engine | None = None,
) -> list[ReplayDecision]:
    """Return every decision the policy would have made on the events (streamed once), in a stable order."""
    if engine is None:
        live = [r for r in policy.rules if (r.mode or default_mode) != "off"]
        engine = Engine(live, budgets=budgets, modules=policy.modules)
    decisions = []
    for alert in stream_alerts(engine, events, batch=REPLAY_BATCH):
        rule = alert.rule
        present = tuple(e for e in alert.events if e is not None)
        ts_ns = int(alert.ts_ms * 1_000_000) if alert.ts_ms == alert.ts_ms else 0  # NaN: no timestamp
        decisions.append(ReplayDecision(rule, _kind(rule, rule.mode or default_mode), present, ts_ns))
    return decisions


def summarize(decisions: Sequence[ReplayDecision], policy: Policy) -> list[Mapping[str, object]]:
    """Per rule: action, mode and how many decisions of each kind."""
    rows: list[Mapping[str, object]] = []
    for rule in policy.rules:
        mine = [d for d in decisions if d.rule.id == rule.id]
        counts = {k: sum(1 for d in mine if d.kind == k) for k in ("deny", "would_block", "kill", "alert")}
        rows.append({"rule": rule.id, "action": rule.action, "mode": rule.mode or "enforce", **counts})
    return rows
