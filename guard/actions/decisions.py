"""Kernel decisions as audit records: what a data plane denied, would have blocked or killed.

Every backend reports its enforcement through ring-buffer events (:class:`~guard.lsm.abi.Event`):
``denied`` (an LSM hook or a cgroup program returned EPERM), ``would_block`` (detect mode) and
``killed`` (the compat backend's kill reaction: SIGKILL from the kernel before the task ran user
code). :func:`kernel_decision` turns one into the :class:`~guard.audit.record.Decision` the audit
trail records; an allowed event (interest push-down) is not a decision and gives ``None``, except
one whose path the kernel could not resolve (over its path buffer or walk depth): no path verdict
judged that call, so it is recorded as ``unjudged``, never left to a counter alone.
:func:`with_process` adds what the event's ECS document knows of the process, and
:func:`budget_decision` records an engine budget overflow or a predicate trap.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from typing import Any, Final

from guard.audit.record import Decision, JsonValue, Kind, ProcessIdentity
from guard.lsm import abi
from guard.model import Hook
from guard.policy.engine import BudgetEvent

__all__ = ["budget_decision", "kernel_decision", "with_process"]

#: Event flags for another way to a hook's object: an executable mapping, a link, a rename.
_OTHER_WAYS: Final = ((abi.EVF_MMAP, "mmap"), (abi.EVF_LINK, "link"), (abi.EVF_RENAME, "rename"))

_KINDS: Final = {
    abi.Decision.DENIED: (Kind.DENY, "deny", "blocked"),
    abi.Decision.WOULD_BLOCK: (Kind.WOULD_BLOCK, "allow", "would_block"),
    abi.Decision.KILLED: (Kind.KILL, "kill", "killed"),
}


def kernel_decision(
    event: abi.Event,
    *,
    backend: str,
    boot_offset_ns: int,
    rule_ids: Mapping[int, str] | None = None,
) -> Decision | None:
    """Return the audit record of a kernel decision, or None for an allowed event.

    ``rule_ids`` maps the kernel's numeric rule ids to the policy's; an unknown number is written
    as ``#N`` (never dropped), and 0 (a fail-closed over-long path) as no rule.
    """
    try:
        kind, verdict, outcome = _KINDS[abi.Decision(event.decision)]
    except (KeyError, ValueError):
        if event.decision != abi.Decision.ALLOWED or not event.flags & abi.EVF_PATH_TOO_LONG:
            return None
        kind, verdict, outcome = Kind.UNJUDGED, "allow", "unjudged"
    hook = Hook.from_abi(event.hook)
    path = os.fsdecode(event.path) if event.path else ""
    detail: dict[str, JsonValue] = {
        "backend": backend,
        "match": abi.Match(event.match).name.lower(),
        "rule_number": event.rule_id,
        "cgroup_id": event.cgroup_id,
        "thread_id": event.pid,
    }
    if hook.on_file:
        detail.update(path=path, device=event.dev, inode=event.ino)
    elif hook is Hook.SOCKET_CONNECT:
        ip = ipaddress.IPv6Address(bytes(event.addr))
        detail.update(destination_ip=str(ip.ipv4_mapped or ip), destination_port=event.port)
        detail["sendmsg"] = bool(event.flags & abi.EVF_SENDMSG)
    else:
        detail["target_pid"] = event.target_tgid
    if event.flags & abi.EVF_PATH_TOO_LONG:
        detail["path_too_long"] = True
    for flag, action in _OTHER_WAYS:
        if event.flags & flag:
            detail["action"] = action
    rule = None
    if event.rule_id:
        rule = (rule_ids or {}).get(event.rule_id, f"#{event.rule_id}")
    reaction = "killed by the kernel (SIGKILL)" if kind is Kind.KILL else f"{verdict} in kernel"
    if kind is Kind.UNJUDGED:
        reaction = "allowed without a path verdict (the path is over the kernel's limit or unresolvable)"
    mapped = bool(event.flags & abi.EVF_MMAP)
    return Decision(
        kind,
        rule_id=rule,
        hook=hook.value,
        process=ProcessIdentity(
            pid=event.tgid,
            exe=path if hook is Hook.BPRM_CHECK_SECURITY and not mapped else "",
            uid=event.uid,
            comm=event.comm.decode("utf-8", errors="replace"),
        ),
        verdict=verdict,
        outcome=outcome,
        reason=f"{hook.value}: {reaction}",
        detail=detail,
        ts=event.ts_ns + boot_offset_ns,
    )


def with_process(decision: Decision, doc: Mapping[str, Any]) -> Decision:
    """Return the decision with the process identity its event's ECS document adds (entity, parent)."""
    identity = decision.process
    if identity is None:
        return decision
    process = doc.get("process", {})
    parent = process.get("parent") or {}
    identity = dataclasses.replace(
        identity,
        entity_id=str(process.get("entity_id", "")),
        exe=identity.exe or str(process.get("executable", "")),
        ppid=parent.get("pid"),
        parent_exe=str(parent.get("executable", "")),
    )
    return dataclasses.replace(decision, process=identity)


def budget_decision(budget: BudgetEvent) -> Decision:
    """Return the audit record of an engine budget overflow, or of user code a predicate stopped."""
    if budget.kind.startswith("trap_"):
        reason = (
            f"user code of the rule's predicate stopped ({budget.kind.removeprefix('trap_')}): "
            f"{budget.count} event(s) given the rule's fail mode"
        )
    else:
        reason = f"engine budget {budget.kind} exceeded {budget.count} time(s)"
    return Decision(
        Kind.BUDGET_EXCEEDED,
        rule_id=budget.rule_id,
        reason=reason,
        detail={"kind": budget.kind, "count": budget.count},
    )
