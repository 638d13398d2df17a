"""The agent with process records on (FakeBackend): an exec reaches the engine once, with its argv."""

from __future__ import annotations

import io
import json
from pathlib import Path

from guard.agent.daemon import Agent, AgentSettings
from guard.agent.processes import ProcessCache
from guard.audit.sink import MemoryAudit
from guard.lsm.fake import FakeBackend
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy

CG = 9
RULE = """
[[rule]]
id = "shell_one_liner"
name = "shell one-liner"
severity = "low"
action = "alert"
query = 'process where event.type == "start" and process.args == "-c" and host.os.type == "linux"'
"""


def test_an_exec_reaches_the_engine_once_with_its_argv_and_host(tmp_path: Path) -> None:
    (tmp_path / "rule.guard").write_text(RULE)
    fake, audit, alerts = FakeBackend(), MemoryAudit(), io.StringIO()
    agent = Agent(
        compile_policy(load_policy(tmp_path)),
        fake,
        audit,
        AgentSettings(scope_cgroups=(CG,)),
        alerts=alerts,
        processes=ProcessCache(read_proc=False),
    )
    agent.start()
    assert agent.process_events  # an engine rule: the kernel is asked for process records
    assert fake.exec(40, path="/usr/bin/bash", args=["bash", "-c", "id"], cgroup=CG, start_ns=7) == 0
    assert fake.exec(41, path="/usr/bin/bash", args=["bash", "-i"], cgroup=CG, start_ns=8) == 0
    agent.step(timeout_ms=0)
    lines = [json.loads(line) for line in alerts.getvalue().splitlines()]
    assert len(lines) == 1  # not also the exec hook's event of the same exec
    event = lines[0]  # an alert line is the event with its rule
    assert event["rule"]["id"] == "shell_one_liner"
    assert event["process"]["args"] == ["bash", "-c", "id"]
    assert event["process"]["pid"] == 40
    assert event["host"]["os"]["type"] == "linux"
