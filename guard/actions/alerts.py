"""Alert lines: a kernel decision or an engine match as one ECS JSON line of the alerts file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from guard.plan.compiler import RulePlan
from guard.policy.semantics import Event

__all__ = ["AlertWriter", "describe", "engine_outcome"]


def describe(doc: Mapping[str, Any]) -> str:
    """One line naming an event's object: the file, the destination or the ptrace target."""
    file = doc.get("file") or {}
    if isinstance(file, dict) and file.get("path"):
        return str(file["path"])
    dest = doc.get("destination") or {}
    if isinstance(dest, dict) and dest.get("ip"):
        return f"{dest['ip']}:{dest.get('port', 0)}"
    target = doc.get("target") or {}
    if isinstance(target, dict):
        pid = (target.get("process") or {}).get("pid")
        if pid:
            return f"pid {pid}"
    return ""


def engine_outcome(last: Event) -> str:
    """Return an engine alert's verdict: ``blocked`` when the kernel denied or killed its last event."""
    kestrel = last.get("kestrel") if isinstance(last, dict) else None
    if isinstance(kestrel, dict) and kestrel.get("decision") in ("denied", "killed"):
        return "blocked"
    return "alert"


class AlertWriter:
    """Writes alerts as ECS JSON lines (``rule.*``, ``kestrel.verdict``) to a text stream, or nowhere."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out

    def write(
        self, rule_id: str, events: Sequence[Event], outcome: str, *, plan: RulePlan | None, ruleset: str
    ) -> None:
        """Write one alert: the last event with the rule, the verdict, and a sequence's objects."""
        if self.out is None:
            return
        last: dict[str, Any] = dict(events[-1]) if events else {}
        event: dict[str, Any] = dict(last.get("event") or {})
        event.update(kind="alert", outcome=event.get("outcome", "success"))
        doc = {
            **last,
            "event": event,
            "rule": {
                "id": rule_id,
                "name": plan.rule.name if plan else rule_id,
                "ruleset": ruleset,
            },
            "kestrel": {**(last.get("kestrel") or {}), "verdict": outcome, "path": plan.path if plan else ""},
        }
        if len(events) > 1:
            doc["kestrel"]["sequence"] = [describe(e) for e in events]
        self.out.write(json.dumps(doc, default=str, separators=(",", ":")) + "\n")
        self.out.flush()
