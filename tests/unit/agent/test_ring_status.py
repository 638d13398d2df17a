"""A ring record of the wrong size shows in the agent's status (JSON and text), never only in a log."""

from __future__ import annotations

from pathlib import Path

from guard.cli.status import render_status
from guard.lsm.ring import EVENT_SIZE
from tests.unit.agent.test_agent import make_agent


def test_status_reports_ring_records_of_the_wrong_size(tmp_path: Path) -> None:
    agent, fake, _audit, _clock = make_agent(tmp_path)
    status = agent.status()
    assert status["plane"] == {"ring_bad_size": 0}
    assert "wrong size" not in render_status(status)

    fake.submit(bytes(EVENT_SIZE - 8))
    fake.submit(bytes(EVENT_SIZE + 8))
    agent.step()
    status = agent.status()
    assert status["plane"] == {"ring_bad_size": 2}
    assert "ring buffer: 2 records of the wrong size, not decoded" in render_status(status).splitlines()
