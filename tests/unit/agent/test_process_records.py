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
from guard.policy.elastic import import_elastic, write_policy
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


def test_dns_is_asked_for_only_when_a_rule_reads_it_and_an_elastic_dns_rule_fires(tmp_path: Path) -> None:
    """Elastic Defend's crypto-miner DNS rule (vendored, imported as is) on the fake's records."""
    rules = Path(__file__).parents[2] / "data" / "elastic-rules" / "protections-artifacts"
    report = import_elastic(
        [rules / "behavior/rules/linux/command_and_control_dns_request_to_crypto_miner_service.toml"]
    )
    write_policy(report, tmp_path / "dns")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "rule.guard").write_text(RULE)
    answer = bytes.fromhex(  # pool.supportxmr.com: one address
        "12348180000100010000000004706f6f6c0a737570706f7274786d7203636f6d0000010001"
        "c00c000100010000003c0004c000020a"
    )
    for policy, wants_dns in ((tmp_path / "plain", False), (tmp_path / "dns", True)):
        fake, alerts = FakeBackend(), io.StringIO()
        agent = Agent(
            compile_policy(load_policy(policy)),
            fake,
            MemoryAudit(),
            AgentSettings(scope_cgroups=(CG,)),
            alerts=alerts,
            processes=ProcessCache(read_proc=False),
        )
        agent.start()
        fake.dns(49, message=answer, server="192.0.2.53", answer=True, cgroup=CG)
        assert len(fake.process_records()) == wants_dns  # the kernel is asked for DNS or not
    assert fake.exec(50, path="/usr/bin/python3", args=["python3", "-c", "..."], cgroup=CG, start_ns=9) == 0
    fake.dns(50, message=answer, server="192.0.2.53", answer=True, cgroup=CG, start_ns=9)
    agent.step(timeout_ms=0)
    (alert,) = [json.loads(line) for line in alerts.getvalue().splitlines()]
    assert alert["rule"]["name"] == "DNS Request to Crypto Miner Service"


def captures(fake: FakeBackend, policy: str, tmp_path: Path) -> tuple[bool, bool, bool, bool]:
    """What an agent with ``policy`` asks the fake for: (syscall changes, modifications, DNS, env)."""
    (tmp_path / "rule.guard").write_text(policy)
    agent = Agent(
        compile_policy(load_policy(tmp_path)),
        fake,
        MemoryAudit(),
        AgentSettings(scope_cgroups=(CG,)),
        processes=ProcessCache(read_proc=False),
    )
    agent.start()
    return fake._syscalls, fake._modify, fake._dns, fake._env_vars


def rule(query: str) -> str:
    return f'[[rule]]\nid = "r"\nname = "r"\nseverity = "low"\naction = "alert"\nquery = \'{query}\'\n'


def test_each_capture_is_asked_for_only_when_some_rule_could_match_its_kinds(tmp_path: Path) -> None:
    cases = [
        ('process where event.action == "exec" and process.name == "nc"', (False, False, False, False)),
        (
            'file where event.action == "deletion" and file.path == "/var/log/wtmp"',
            (True, False, False, False),
        ),
        (
            'file where event.action == "modification" and file.path == "/etc/passwd"',
            (False, True, False, False),
        ),
        ('file where file.path == "/etc/passwd"', (True, True, False, False)),  # any file kind
        ('dns where dns.question.name == "x.top"', (False, False, True, False)),
        ("network where destination.port == 4444", (True, False, True, False)),  # accepts, DNS too
        ('process where process.env_vars == "LD_PRELOAD=*"', (True, False, False, True)),
    ]
    for n, (query, want) in enumerate(cases):
        (tmp_path / str(n)).mkdir()
        assert captures(FakeBackend(), rule(query), tmp_path / str(n)) == want, query
