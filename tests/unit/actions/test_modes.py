"""A mode switch with no agent: one write to the pinned maps, audited; an unknown rule changes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import pytest

from guard.actions.modes import switch_pinned
from guard.audit.record import Kind
from guard.audit.sink import MemoryAudit
from guard.errors import ConfigError
from guard.lsm.abi import ModeId
from guard.model import HOOKS, Hook, Mode


class FakeControl:
    """PinnedControl's surface, in memory."""

    def __init__(self) -> None:
        self.hooks = {hook: ModeId.ENFORCE for hook in HOOKS}
        self.rules: dict[int, ModeId] = {}
        self.writes = 0

    def __enter__(self) -> FakeControl:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def modes(self) -> dict[Hook, ModeId]:
        return dict(self.hooks)

    def set_modes(self, modes: dict[Hook, ModeId]) -> None:
        self.writes += 1
        self.hooks.update(modes)

    def rule_modes(self) -> dict[int, ModeId]:
        return dict(self.rules)

    def set_rule_mode(self, number: int, mode: ModeId) -> None:
        self.writes += 1
        self.rules[number] = mode


def test_every_hook_is_switched_in_one_write_and_audited() -> None:
    control, audit = FakeControl(), MemoryAudit()
    result = switch_pinned(
        cast(Any, control),
        audit,
        Mode.DETECT,
        rule=None,
        numbers={},
        state_file=Path("state.json"),
        reason="",
    )
    assert result == {"ok": True, "mode": "detect", "rule": None, "agent": False}
    assert control.writes == 1
    assert set(control.hooks.values()) == {ModeId.DETECT}
    (d,) = audit.decisions
    assert (d.kind, d.rule_id, d.verdict, d.outcome) == (Kind.MODE_CHANGE, None, "detect", "changed")
    assert d.reason == "mode -> detect (no agent running: written to the pinned maps)"
    assert d.detail == {
        "from": {"exec": "enforce", "file_open": "enforce", "connect": "enforce", "ptrace": "enforce"},
        "to": "detect",
        "uid": os.getuid(),
        "agent": False,
    }


def test_one_rule_is_switched_by_its_number() -> None:
    control, audit = FakeControl(), MemoryAudit()
    switch_pinned(
        cast(Any, control), audit, Mode.OFF, rule="r1", numbers={"r1": 7}, state_file=Path("s"), reason="why"
    )
    assert control.rules == {7: ModeId.OFF}
    (d,) = audit.decisions
    assert (d.rule_id, d.reason, d.detail["from"]) == ("r1", "why", {"r1": "follows its hook"})


def test_a_rule_the_last_agent_did_not_have_changes_nothing() -> None:
    control, audit = FakeControl(), MemoryAudit()
    with pytest.raises(ConfigError, match=r"--rule r2: not a rule of the last agent's policy \(s.json\)"):
        switch_pinned(
            cast(Any, control),
            audit,
            Mode.OFF,
            rule="r2",
            numbers={"r1": 7},
            state_file=Path("s.json"),
            reason="",
        )
    assert control.writes == 0
    assert audit.decisions == []
