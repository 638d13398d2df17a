"""Modes: the hook mode and per-rule overrides the kernel decides in, and every way they change.

Modes live in the kernel (hook modes in the config map, per-rule overrides in the rule-mode map),
so a switch is one map write; :class:`Modes` keeps the same state to report and to revert. A
switch with ``confirm_within`` is rolled back to the previous modes unless confirmed in time; a
rule that denies more than the storm threshold within the window is demoted to detect (a block
storm) — only while a storm can be the operator's doing: within ``storm_confirm_s`` of the agent's
start, a policy swap or an operator's switch to enforce, never later (a governed process spamming
denies must not demote the rule that stops it); a threshold of 0 turns demotion off. A policy
swap keeps the operator's and the storms' overrides of the rules it keeps. With no agent running,
:func:`switch_pinned` writes the maps the last agent pinned. Every change is audited with who
asked (peer uid) and why.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from guard.audit.record import Decision, JsonValue, Kind
from guard.audit.sink import AuditSink
from guard.errors import ConfigError, KernelError
from guard.lsm.abi import ModeId
from guard.lsm.backend import KernelBackend
from guard.model import HOOKS, Mode
from guard.plan.compiler import CompiledPolicy

if TYPE_CHECKING:
    from guard.lsm.pinned import PinnedControl

__all__ = ["MODE_IDS", "ModeSwap", "Modes", "switch_pinned"]

#: a mode as the kernel's maps hold it
MODE_IDS: Final = {Mode.OFF: ModeId.OFF, Mode.DETECT: ModeId.DETECT, Mode.ENFORCE: ModeId.ENFORCE}


@dataclass(frozen=True, slots=True)
class _Confirm:
    """A switch waiting for ``confirm``: when it reverts, to what, and who asked why."""

    deadline: float
    previous: tuple[Mode, dict[str, Mode]]
    uid: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ModeSwap:
    """The rule modes of a policy swap: kept overrides and the new policy's own, as kernel numbers."""

    modes: dict[str, Mode]
    declared: frozenset[str]
    old_numbers: dict[int, ModeId]
    new_numbers: dict[int, ModeId]


class Modes:
    """The agent's modes, written to the kernel: switches, confirm-within, block storms, swaps."""

    def __init__(
        self,
        backend: KernelBackend,
        audit: AuditSink,
        compiled: CompiledPolicy,
        *,
        mode: Mode,
        agent_tgid: int,
        monotonic: Callable[[], float],
        storm_threshold: int,
        storm_window_s: float,
        storm_confirm_s: float = 300.0,
    ) -> None:
        self.backend = backend
        self.audit = audit
        self.compiled = compiled
        self.mode = mode
        self.rules: dict[str, Mode] = {p.rule.id: Mode(p.rule.mode) for p in compiled.plans if p.rule.mode}
        #: rules whose override is the policy's own `mode` (an operator's or a storm's survives a swap)
        self._declared = set(self.rules)
        self._ids = {p.rule.id for p in compiled.plans}
        self._agent_tgid = agent_tgid
        self._monotonic = monotonic
        self._storm_threshold = storm_threshold
        self._storm_window_s = storm_window_s
        self._storm_confirm_s = storm_confirm_s
        #: block storms count until then (the agent's start, a swap or an operator's switch to enforce)
        self._storm_until = monotonic() + storm_confirm_s
        self._confirm: _Confirm | None = None
        self._storm: dict[str, collections.deque[float]] = {}

    def adopt(self) -> str:
        """Take the modes a previous agent (or ``guardctl`` without one) left in the pinned maps."""
        modes = set(self.backend.modes().values())
        by_id = {mid: mode for mode, mid in MODE_IDS.items()}
        if len(modes) == 1:
            self.mode = by_id[modes.pop()]
        numbers = {n: rule for rule, n in ((p.rule.id, p.number) for p in self.compiled.plans)}
        for number, mid in self.backend.rule_modes().items():
            if number in numbers:
                self.rules[numbers[number]] = by_id[mid]
        return " (adopted from the pinned maps)"

    def effective(self, rule_id: str) -> Mode:
        """Return the mode a rule runs in: its override, else the agent's (off when the agent is off)."""
        if self.mode is Mode.OFF:
            return Mode.OFF
        return self.rules.get(rule_id, self.mode)

    def write(self) -> None:
        """Write every hook's mode and every rule override to the kernel."""
        self.backend.configure({hook: MODE_IDS[self.mode] for hook in HOOKS}, agent_tgid=self._agent_tgid)
        numbers = {self.compiled.number(rule): MODE_IDS[mode] for rule, mode in self.rules.items()}
        self.backend.set_rule_modes(numbers)

    def pending_s(self) -> float | None:
        """Return the seconds left to confirm a pending switch (None: nothing pending)."""
        pending = self._confirm
        return round(pending.deadline - self._monotonic(), 3) if pending else None

    def set(
        self,
        mode: Mode,
        *,
        rule: str | None = None,
        uid: int | None = None,
        reason: str = "",
        confirm_within: float | None = None,
    ) -> None:
        """Switch the agent's (or one rule's) mode; with ``confirm_within``, revert unless confirmed."""
        if rule is not None and rule not in self._ids:
            raise ConfigError(f"--rule {rule}: no such rule in the active policy")
        if confirm_within is not None and confirm_within <= 0:
            raise ConfigError(f"--confirm-within: must be positive, got {confirm_within}")
        previous = (self.mode, dict(self.rules))
        before = self.mode if rule is None else self.effective(rule)
        if rule is None:
            self.mode = mode
        else:
            self.rules[rule] = mode
        try:
            self.write()
        except KernelError:
            self.mode, self.rules = previous[0], previous[1]
            raise
        if confirm_within is not None:
            self._confirm = _Confirm(self._monotonic() + confirm_within, previous, uid, reason)
        if mode is Mode.ENFORCE:
            self._open_storm_window()
        self._audit(before, mode, rule, uid, reason, confirm_within=confirm_within)

    def confirm(self, *, uid: int | None = None, reason: str = "") -> None:
        """Keep the modes a ``confirm_within`` switch set."""
        if self._confirm is None:
            raise ConfigError("confirm: no mode change is waiting for confirmation")
        self._confirm = None
        self.audit.append(
            Decision(
                Kind.MODE_CHANGE,
                verdict=str(self.mode),
                outcome="confirmed",
                reason=reason or "the pending mode change was confirmed",
                detail={"uid": uid, "mode": str(self.mode)},
            )
        )

    def expire(self, now: float) -> None:
        """Roll back to the previous modes when a pending switch's deadline passed unconfirmed."""
        pending = self._confirm
        if pending is None or now < pending.deadline:
            return
        self._confirm = None
        before = self.mode
        self.mode, self.rules = pending.previous[0], dict(pending.previous[1])
        self.write()
        self._audit(
            before,
            self.mode,
            None,
            pending.uid,
            "not confirmed in time: the previous modes are restored",
            outcome="reverted",
        )

    def _open_storm_window(self) -> None:
        self._storm_until = self._monotonic() + self._storm_confirm_s
        self._storm.clear()

    def storm_tick(self, rule: str) -> None:
        """Count one denial by ``rule``; demote it to detect when its denials make a block storm.

        Only within ``storm_confirm_s`` of the last policy or mode change (and never with a threshold
        of 0): a governed process that provokes denials later cannot switch its rule to detect.
        """
        if self._storm_threshold <= 0 or self.effective(rule) is not Mode.ENFORCE:
            return
        now = self._monotonic()
        if now > self._storm_until:
            self._storm.clear()
            return
        window = self._storm.setdefault(rule, collections.deque())
        window.append(now)
        while window and window[0] < now - self._storm_window_s:
            window.popleft()
        if len(window) > self._storm_threshold:
            window.clear()
            self.rules[rule] = Mode.DETECT
            self.write()
            self._audit(
                Mode.ENFORCE,
                Mode.DETECT,
                rule,
                None,
                f"block storm: more than {self._storm_threshold} denials within "
                f"{self._storm_window_s:g} s, within {self._storm_confirm_s:g} s of the last policy or "
                "mode change; the rule is demoted to detect",
                outcome="demoted",
            )

    def begin_swap(self, compiled: CompiledPolicy) -> ModeSwap:
        """Write the rule modes of both policies (the new one's win) before a swap; return them."""
        new_ids = {p.rule.id for p in compiled.plans}
        declared = {p.rule.id: Mode(p.rule.mode) for p in compiled.plans if p.rule.mode}
        kept = {r: m for r, m in self.rules.items() if r in new_ids and r not in self._declared}
        new_modes = {**declared, **kept}
        old_numbers = {self.compiled.number(r): MODE_IDS[m] for r, m in self.rules.items()}
        new_numbers = {compiled.number(r): MODE_IDS[m] for r, m in new_modes.items()}
        self.backend.set_rule_modes({**old_numbers, **new_numbers})
        return ModeSwap(new_modes, frozenset(declared), old_numbers, new_numbers)

    def abort_swap(self, swap: ModeSwap) -> None:
        """Write back the old policy's rule modes (the swap failed)."""
        self.backend.set_rule_modes(swap.old_numbers)

    def commit_swap(self, compiled: CompiledPolicy, swap: ModeSwap) -> None:
        """Take the new policy's rule modes, and write them alone."""
        self.rules, self._declared = swap.modes, set(swap.declared)
        self.backend.set_rule_modes(swap.new_numbers)
        self.compiled = compiled
        self._ids = {p.rule.id for p in compiled.plans}
        self._open_storm_window()

    def _audit(
        self,
        before: Mode,
        after: Mode,
        rule: str | None,
        uid: int | None,
        reason: str,
        *,
        confirm_within: float | None = None,
        outcome: str = "changed",
    ) -> None:
        detail: dict[str, JsonValue] = {"from": str(before), "to": str(after), "uid": uid}
        if confirm_within is not None:
            detail["confirm_within_s"] = confirm_within
        self.audit.append(
            Decision(
                Kind.MODE_CHANGE,
                rule_id=rule,
                verdict=str(after),
                outcome=outcome,
                reason=reason or f"mode {before} -> {after}",
                detail=detail,
            )
        )


def switch_pinned(
    control: PinnedControl,
    audit: AuditSink,
    mode: Mode,
    *,
    rule: str | None,
    numbers: Mapping[str, Any],
    state_file: Path,
    reason: str,
) -> dict[str, Any]:
    """Switch the mode with no agent: one audited write to the pinned maps (``numbers``: rule numbers)."""
    with control:
        before: dict[str, JsonValue]
        if rule is None:
            before = {h.short: m.name.lower() for h, m in control.modes().items()}
            control.set_modes({hook: MODE_IDS[mode] for hook in HOOKS})
        else:
            if rule not in numbers:
                raise ConfigError(f"--rule {rule}: not a rule of the last agent's policy ({state_file})")
            before = {rule: str(control.rule_modes().get(int(numbers[rule]), "follows its hook")).lower()}
            control.set_rule_mode(int(numbers[rule]), MODE_IDS[mode])
    audit.append(
        Decision(
            Kind.MODE_CHANGE,
            rule_id=rule,
            verdict=str(mode),
            outcome="changed",
            reason=reason or f"mode -> {mode} (no agent running: written to the pinned maps)",
            detail={"from": before, "to": str(mode), "uid": os.getuid(), "agent": False},
        )
    )
    return {"ok": True, "mode": str(mode), "rule": rule, "agent": False}
