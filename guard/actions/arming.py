"""Arming: a sequence's arm signal becomes a per-entity dynamic verdict in the kernel, and back.

When every step of a sequence-armed rule but the last has matched, the engine signals ``arm``:
the last step is denied in the kernel for the entity its join key names (and that entity's later
descendants: one entity group), only while the entity is the same process (tgid + start time),
only for the (dev, inode) the kernel reported for the target, until first event + maxspan. An
``until`` or a budget eviction signals ``disarm``. Every arm, disarm and skipped arm is audited.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard.audit.record import Decision, Kind, ProcessIdentity
from guard.audit.sink import AuditSink
from guard.lsm.backend import KernelBackend
from guard.lsm.verdicts import Action, DynamicVerdict
from guard.plan.compiler import ArmPlan
from guard.policy.engine import ArmSignal
from guard.policy.semantics import Event, timestamp_ms

__all__ = ["ArmRecord", "Arming"]


@dataclass(frozen=True, slots=True)
class ArmRecord:
    """An armed verdict the agent holds, and when its signal arrived."""

    rule: str
    entity: str
    verdict: DynamicVerdict
    latency_ns: int  # from the arming event entering the ring buffer to the map write


def _identity_seen(events: Sequence[Event], path: str) -> tuple[int, int] | None:
    """Return the (dev, inode) the kernel reported for ``path`` in a match's events (latest first)."""
    for ev in reversed(events):
        file = ev.get("file") if isinstance(ev, Mapping) else None
        if isinstance(file, Mapping) and file.get("path") == path:
            dev, ino = file.get("device"), file.get("inode")
            if isinstance(dev, int) and isinstance(ino, int) and ino:
                return dev, ino
    return None


def _event_ns(doc: Mapping[str, Any]) -> int:
    """Return an ECS document's @timestamp as epoch nanoseconds (0 when absent)."""
    ts = doc.get("@timestamp")
    if ts is None:
        return 0
    return int(timestamp_ms(ts) * 1_000_000)


class Arming:
    """The armed verdicts: arm and disarm them from arm signals, drop those of rules gone."""

    def __init__(
        self,
        backend: KernelBackend,
        audit: AuditSink,
        *,
        offset_ns: int,
        alive: Callable[[int, int | None], bool],
        exe_identity: Callable[[str], tuple[int, int] | None],
    ) -> None:
        self.backend = backend
        self.audit = audit
        self.offset_ns = offset_ns
        self._alive = alive
        self._exe_identity = exe_identity
        self._groups: dict[str, int] = {}
        self._next_group = 1
        self.armed: dict[tuple[str, tuple[object, ...]], ArmRecord] = {}
        self.latencies_ns: list[int] = []

    def entity(self, value: object) -> tuple[int, str] | None:
        """(tgid, entity key) of a join-key value naming a live process (None: gone or not a process)."""
        if isinstance(value, str) and "-" in value:
            tgid_text, _, start_text = value.partition("-")
            if not (tgid_text.isdigit() and start_text.isdigit()):
                return None
            tgid, start = int(tgid_text), int(start_text)
            return (tgid, value) if self._alive(tgid, start) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return (value, str(value)) if self._alive(value, None) else None
        return None

    def on_signal(self, sig: ArmSignal, arm: ArmPlan, number: Callable[[str], int]) -> bool:
        """Arm or disarm for one signal (``number``: a rule id's kernel number); return whether it armed."""
        slot = (sig.rule.id, tuple(sig.join_keys))
        if sig.kind == "disarm":
            self._disarm(sig, slot)
            return False
        entity = self.entity(sig.join_keys[arm.entity_key])
        hook_name = arm.hook.value
        if entity is None:
            value = sig.join_keys[arm.entity_key]
            self._skipped(sig, hook_name, f"the entity {value!r} is no longer running: nothing to arm")
            return False
        tgid, key = entity
        dev = ino = 0
        target = ""
        if arm.target_key is not None:
            target = str(sig.join_keys[arm.target_key])
            identity = _identity_seen(sig.events, target) or self._exe_identity(target)
            if identity is None:
                self._skipped(
                    sig, hook_name, f"the target {target!r} cannot be resolved (it no longer exists)"
                )
                return False
            dev, ino = identity
        group = self._groups.get(key)
        if group is None or self.backend.group_of(tgid) != group:
            group = self._next_group
            self._next_group += 1
            self._groups[key] = group
            self.backend.track(tgid, group)
        expires = 0
        if sig.maxspan_ms is not None:
            expires = int((sig.first_ms + sig.maxspan_ms) * 1_000_000) - self.offset_ns
        verdict = DynamicVerdict(group, arm.hook, number(sig.rule.id), Action.DENY, expires, dev, ino)
        self.backend.arm(verdict)
        now = time.monotonic_ns()
        last = sig.events[-1] if sig.events else {}
        latency = now - (_event_ns(last) - self.offset_ns) if last else 0
        self.latencies_ns.append(latency)
        self.armed[slot] = ArmRecord(sig.rule.id, key, verdict, latency)
        self.audit.append(
            Decision(
                Kind.ARM,
                rule_id=sig.rule.id,
                hook=hook_name,
                process=ProcessIdentity(pid=tgid, entity_id=key),
                verdict="arm",
                outcome="armed",
                reason=f"every step but the last matched: {hook_name} of "
                f"{target or 'any target'} denied for entity {key} and its descendants",
                detail={
                    "group": group,
                    "target": target,
                    "device": dev,
                    "inode": ino,
                    "expires_monotonic_ns": expires,
                    "latency_ns": latency,
                },
            )
        )
        return True

    def drop_rules_not_in(self, kept: Collection[str]) -> None:
        """Disarm (unaudited) every verdict armed by a rule not in ``kept`` (a policy swap removed it)."""
        for slot, held in list(self.armed.items()):
            if held.rule not in kept:
                v = held.verdict
                self.backend.disarm(v.group, v.hook, dev=v.dev, ino=v.ino)
                del self.armed[slot]

    def _disarm(self, sig: ArmSignal, slot: tuple[str, tuple[object, ...]]) -> None:
        held = self.armed.pop(slot, None)
        if held is None:
            return
        v = held.verdict
        self.backend.disarm(v.group, v.hook, dev=v.dev, ino=v.ino)
        self.audit.append(
            Decision(
                Kind.DISARM,
                rule_id=sig.rule.id,
                hook=v.hook.value,
                verdict="disarm",
                outcome="disarmed",
                reason="the sequence can no longer complete (until, or a budget eviction)",
                detail={"entity": held.entity, "group": v.group},
            )
        )

    def _skipped(self, sig: ArmSignal, hook: str, reason: str) -> None:
        self.audit.append(
            Decision(
                Kind.ARM, rule_id=sig.rule.id, hook=hook, verdict="arm", outcome="skipped", reason=reason
            )
        )
