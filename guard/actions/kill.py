"""The kill action: SIGKILL to a rule's process, and when a decision or an alert calls for it."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from guard.audit.record import Decision, Kind, ProcessIdentity
from guard.model import Mode
from guard.plan.compiler import INLINE, RulePlan
from guard.policy.semantics import Event

__all__ = ["alert_kill_target", "kill_process", "kills_on_deny"]


def kills_on_deny(plan: RulePlan | None, kind: Kind) -> bool:
    """Return whether a kernel decision kills its process: a deny by a ``kill`` rule."""
    return plan is not None and plan.rule.action == "kill" and kind is Kind.DENY


def alert_kill_target(plan: RulePlan, mode: Mode, last: Event) -> int | None:
    """Return the pid an engine alert kills: a ``kill`` rule the kernel does not decide, under enforce."""
    if plan.rule.action != "kill" or plan.path == INLINE or mode is not Mode.ENFORCE:
        return None
    process = last.get("process") if isinstance(last, dict) else None
    pid = process.get("pid") if isinstance(process, dict) else None
    return pid if isinstance(pid, int) else None


def kill_process(pid: int, rule_id: str, hook: str | None, doc: Mapping[str, Any]) -> Decision:
    """Send SIGKILL to ``pid``; return the audit record of the attempt (killed, gone or failed)."""
    try:
        os.kill(pid, signal.SIGKILL)
        outcome, reason = "killed", f"action = kill: SIGKILL sent to {pid}"
    except ProcessLookupError:
        outcome, reason = "gone", f"action = kill: process {pid} had already exited"
    except PermissionError:
        outcome, reason = "failed", f"action = kill: not permitted to signal {pid}"
    return Decision(
        Kind.KILL,
        rule_id=rule_id,
        hook=hook or None,
        process=ProcessIdentity(pid=pid, exe=str((doc.get("process") or {}).get("executable", ""))),
        verdict="kill",
        outcome=outcome,
        reason=reason,
    )
