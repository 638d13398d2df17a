"""Every kernel-inline rule's embedded test cases, decided by the kernel tables (FakeBackend).

The compiler's translation must mean what the EQL means: each case of an inline rule of the
bundled policies is played as the hook call its event describes, and the kernel's decision (deny or
not) must be the case's expectation — the same cases `guardctl policy test` runs through the engine.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TypedDict

import pytest

from guard.agent.daemon import Agent, AgentSettings
from guard.agent.processes import ProcessCache
from guard.audit.sink import MemoryAudit
from guard.lsm.fake import FakeBackend
from guard.plan.compiler import INLINE, compile_policy
from guard.policy.loader import Policy, load_policy

POLICIES = Path(__file__).resolve().parents[3] / "policies"
CG = 5
EXES = {"/usr/bin/cat": 1001, "/usr/bin/ssh": 1002, "/usr/bin/passwd": 1003}


class Task(TypedDict):
    """The calling task of a file hook: its cgroup and its executable's identity."""

    cgroup: int
    exe_dev: int
    exe_ino: int


def _cases() -> list[tuple[str, int]]:
    policy = load_policy(POLICIES)
    plans = compile_policy(policy).plans
    return [(p.rule.id, n) for p in plans if p.path == INLINE for n in range(len(p.rule.tests))]


@pytest.mark.parametrize(("rule_id", "case"), _cases())
def test_inline_rule_cases_decided_in_kernel(rule_id: str, case: int) -> None:
    full = load_policy(POLICIES)
    rule = full.rule(rule_id)
    policy = Policy((rule,), full.source, full.digest)
    test = rule.tests[case]
    (event,) = test.events
    fake = FakeBackend()
    target_pid = 4242
    procs = [(target_pid, str(event.get("target.process.name", "")), "")]
    agent = Agent(
        compile_policy(policy),
        fake,
        MemoryAudit(),
        AgentSettings(scope_cgroups=(CG,), self_protect=False),
        processes=ProcessCache(read_proc=False),
        exe_identity=lambda path: (1, EXES[path]) if path in EXES else None,
        list_processes=lambda: procs,
    )
    agent.start()
    exe = str(event.get("process.executable", "/usr/bin/cat"))
    task: Task = {"cgroup": CG, "exe_dev": 1, "exe_ino": EXES.get(exe, 9999)}
    category = event["event.category"]
    if category == "process" and event.get("event.action") == "ptrace":
        result = fake.ptrace(100, target_tgid=target_pid, cgroup=CG)
    elif category == "process":
        result = fake.exec(100, path=exe, **task)
    elif category == "file":
        result = fake.open(100, path=str(event["file.path"]), **task)
    else:
        port = event["destination.port"]
        assert isinstance(port, int | str), (rule_id, event)
        result = fake.connect(100, address=str(event["destination.ip"]), port=int(port), cgroup=CG)
    assert (result == errno.EPERM) == (test.expect == "match"), (rule_id, event)
