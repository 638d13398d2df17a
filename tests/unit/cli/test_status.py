"""`guardctl status`: the agent's JSON as a typed value, its text, and --json printing it unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guard.cli import main
from guard.cli.status import AgentStatus, HookCounters, PredicateStats, render_status

DOC: dict[str, Any] = {
    "pid": 4242,
    "backend": "lsm",
    "mode": "enforce",
    "rule_modes": {"block_tmp_exec": "detect"},
    "confirm_pending_s": 12.5,
    "rules": {"kernel-inline": ["a", "b"], "detect-only": "c"},
    "counters": {
        "file_open": {"calls": 1200, "denies": 3, "would_block": 1, "ringbuf_drops": 0},
        "bprm_check_security": {"calls": 7},
    },
    "predicates": {
        "pred_1": {
            "runtime": "lua",
            "events": 4,
            "escaped": 1,
            "fuel": 1,
            "stack": 2,
            "rules": ["odd_binary"],
        }
    },
    "recent": [{"event": "deny", "rule": f"r{i}", "pid": 100 + i, "what": "/opt/x"} for i in range(12)],
    "armed": [],
}


def test_the_typed_status_reads_every_section() -> None:
    status = AgentStatus.from_json(DOC)
    assert status.counters == (
        HookCounters("file_open", 1200, 3, 1, 0),
        HookCounters("bprm_check_security", 7, 0, 0, 0),
    )
    assert status.predicates == (PredicateStats("pred_1", "lua", 4, 1, 3, ("odd_binary",)),)
    assert [r.rule for r in status.recent] == [f"r{i}" for i in range(2, 12)]  # the last ten
    assert status.to_json() is DOC


def test_the_text_has_one_line_per_row() -> None:
    lines = render_status(DOC).splitlines()
    assert lines[:5] == [
        "agent pid 4242: backend lsm, mode enforce",
        "rule modes: block_tmp_exec=detect",
        "pending confirmation: reverts in 12.5 s unless `guardctl confirm`",
        "kernel-inline   a, b",
        "detect-only     c",
    ]
    assert lines[5:8] == [
        "HOOK                       CALLS   DENIES    WOULD  DROPS",
        "file_open                   1200        3        1      0",
        "bprm_check_security            7        0        0      0",
    ]
    assert lines[8:10] == [
        "PREDICATE  RUNTIME    EVENTS  ESCAPED  TRAPPED  RULES",
        "pred_1     lua             4        1        3  odd_binary",
    ]
    assert lines[10] == "recent decisions:"
    assert lines[11] == "  deny         r2                           pid 102 /opt/x"
    assert len(lines) == 21


def test_a_bare_status_has_the_summary_and_the_counter_header() -> None:
    assert render_status({"pid": 1, "backend": "compat", "mode": "off"}).splitlines() == [
        "agent pid 1: backend compat, mode off",
        "HOOK                       CALLS   DENIES    WOULD  DROPS",
    ]


@pytest.mark.parametrize("as_json", [False, True])
def test_guardctl_status_prints_the_agent_s_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    import guard.agent.service

    monkeypatch.setattr(guard.agent.service, "status", lambda cfg: DOC)
    assert main(["status", *(["--json"] if as_json else [])]) == 0
    out = capsys.readouterr().out
    if as_json:
        assert out == json.dumps(DOC, indent=2) + "\n"
    else:
        assert out == render_status(DOC) + "\n"
