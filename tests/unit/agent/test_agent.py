"""The agent over the FakeBackend: kernel decisions, arming, modes, confirm-within, storms, targets."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

import pytest

from guard.actions.protection import SELF_RULE
from guard.agent.daemon import Agent, AgentSettings
from guard.agent.processes import ProcessCache
from guard.audit.record import Kind
from guard.audit.sink import MemoryAudit
from guard.errors import ConfigError
from guard.lsm.abi import ModeId
from guard.lsm.fake import FakeBackend
from guard.lsm.verdicts import kernel_dev
from guard.model import Hook, Mode
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy

POLICIES = Path(__file__).resolve().parents[3] / "policies"
CG = 77


class Lineage(TypedDict):
    """A caller's parent, as the fake hooks take it."""

    ppid: int
    parent_start_ns: int


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_agent(
    tmp_path: Path,
    *,
    settings: AgentSettings | None = None,
    processes: list[tuple[int, str, str]] | None = None,
) -> tuple[Agent, FakeBackend, MemoryAudit, Clock]:
    fake = FakeBackend()
    audit = MemoryAudit()
    clock = Clock()
    agent = Agent(
        compile_policy(load_policy(POLICIES)),
        fake,
        audit,
        settings or AgentSettings(scope_cgroups=(CG,)),
        processes=ProcessCache(read_proc=False),
        monotonic=clock,
        alive=lambda tgid, start: tgid in (50, 60),
        list_processes=lambda: processes or [],
    )
    agent.start()
    return agent, fake, audit, clock


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory outside /tmp (exec from /tmp is what block_tmp_exec denies)."""
    path = Path(tempfile.mkdtemp(prefix="guard-test-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def kinds(audit: MemoryAudit, rule: str | None = None) -> list[Kind]:
    return [d.kind for d in audit.decisions if rule is None or d.rule_id == rule]


def mode_now(agent: Agent) -> Mode:
    """The agent's mode, read afresh (a checker would keep an asserted property narrowed across step())."""
    return agent.mode


def test_start_writes_modes_scope_tables_and_audits(tmp_path: Path) -> None:
    agent, fake, audit, _ = make_agent(tmp_path)
    assert fake.modes() == dict.fromkeys(Hook, ModeId.ENFORCE)
    assert kinds(audit) == [Kind.AGENT_START]
    rules = audit.decisions[0].detail["rules"]
    assert isinstance(rules, dict)
    assert rules["block_download_chmod_exec"] == "sequence-armed"
    # the agent protects itself: ptrace of its own tgid is denied (from a governed task)
    assert fake.ptrace(900, target_tgid=os.getpid(), cgroup=CG) == errno.EPERM
    agent.step(timeout_ms=0)
    assert audit.decisions[-1].rule_id == "guard_self_protect"
    assert agent.rule_ids[SELF_RULE] == "guard_self_protect"


def test_inline_deny_is_audited_and_only_in_scope(tmp_path: Path) -> None:
    agent, fake, audit, _ = make_agent(tmp_path)
    assert fake.exec(300, path="/tmp/x", cgroup=CG, ppid=50, start_ns=9, parent_start_ns=5) == errno.EPERM
    assert fake.exec(301, path="/tmp/x", cgroup=CG + 1) == 0
    assert fake.open(302, path="/etc/shadow", cgroup=CG) == errno.EPERM
    assert fake.connect(303, address="127.66.0.1", port=4444, cgroup=CG) == errno.EPERM
    assert fake.connect(303, address="127.66.0.1", port=80, cgroup=CG) == 0
    agent.step(timeout_ms=0)
    denies = [d for d in audit.decisions if d.kind is Kind.DENY]
    assert [d.rule_id for d in denies] == ["block_tmp_exec", "block_shadow_read", "block_c2_connect"]
    assert denies[0].process is not None
    assert denies[0].process.entity_id == "300-9"
    assert denies[0].process.ppid == 50
    assert agent.status()["decisions"] == {"deny": 3}


def test_sequence_arms_the_last_step_for_the_entity(tmp_path: Path, work: Path) -> None:
    agent, fake, audit, _ = make_agent(tmp_path)
    payload = work / "payload"
    payload.write_bytes(b"\x7fELF")
    st = os.stat(payload)
    dev, ino = kernel_dev(st.st_dev), st.st_ino
    lineage: Lineage = {"ppid": 50, "parent_start_ns": 500}
    fake.open(
        101, path=str(payload), created=True, write=True, comm=b"curl", cgroup=CG, start_ns=1, **lineage
    )
    fake.chmod(102, path=str(payload), mode=0o100755, cgroup=CG, comm=b"chmod", start_ns=2, **lineage)
    agent.step(timeout_ms=0)
    assert Kind.ARM in kinds(audit, "block_download_chmod_exec")
    (armed,) = fake.armed()
    assert (armed.hook, armed.dev, armed.ino) == (Hook.BPRM_CHECK_SECURITY, dev, ino)
    assert fake.group_of(50) == armed.group
    # a child the entity forks after arming inherits the verdict: its exec of the payload is denied
    fake.fork(50, 103)
    assert (
        fake.exec(103, path=str(payload), dev=dev, ino=ino, cgroup=CG, start_ns=3, **lineage) == errno.EPERM
    )
    # another session's exec of the same file is not
    fake.fork(60, 104)
    assert fake.exec(104, path=str(payload), dev=dev, ino=ino, cgroup=CG, ppid=60, parent_start_ns=600) == 0
    agent.step(timeout_ms=0)
    assert Kind.DENY in kinds(audit, "block_download_chmod_exec")


def test_creation_by_another_tool_does_not_arm(tmp_path: Path, work: Path) -> None:
    agent, fake, audit, _ = make_agent(tmp_path)
    payload = work / "payload"
    payload.write_bytes(b"x")
    lineage: Lineage = {"ppid": 50, "parent_start_ns": 500}
    fake.open(101, path=str(payload), created=True, comm=b"vim", cgroup=CG, **lineage)
    fake.chmod(102, path=str(payload), mode=0o755, cgroup=CG, **lineage)
    agent.step(timeout_ms=0)
    assert fake.armed() == []
    assert Kind.ARM not in kinds(audit)


def test_arming_a_gone_entity_is_audited_as_skipped(tmp_path: Path, work: Path) -> None:
    agent, fake, audit, _ = make_agent(tmp_path)
    payload = work / "payload"
    payload.write_bytes(b"x")
    lineage: Lineage = {"ppid": 70, "parent_start_ns": 700}  # alive() says 70 is gone
    fake.open(101, path=str(payload), created=True, comm=b"wget", cgroup=CG, **lineage)
    fake.chmod(102, path=str(payload), mode=0o755, cgroup=CG, **lineage)
    agent.step(timeout_ms=0)
    arm = [d for d in audit.decisions if d.kind is Kind.ARM]
    assert [d.outcome for d in arm] == ["skipped"]
    assert fake.armed() == []


def test_modes_global_and_per_rule_are_kernel_writes_and_audited(tmp_path: Path) -> None:
    agent, fake, audit, _ = make_agent(tmp_path)
    agent.set_mode(Mode.DETECT, uid=1234, reason="rollout")
    assert fake.modes() == dict.fromkeys(Hook, ModeId.DETECT)
    assert fake.exec(300, path="/tmp/x", cgroup=CG) == 0
    agent.set_mode(Mode.ENFORCE, rule="block_tmp_exec", uid=0, reason="this one is safe")
    number = agent.compiled.number("block_tmp_exec")
    assert fake.rule_modes() == {number: ModeId.ENFORCE}
    assert fake.exec(301, path="/tmp/x", cgroup=CG) == errno.EPERM
    assert fake.open(302, path="/etc/shadow", cgroup=CG) == 0  # still detect
    agent.step(timeout_ms=0)
    changes = [d for d in audit.decisions if d.kind is Kind.MODE_CHANGE]
    assert [(c.rule_id, c.verdict, c.detail["uid"]) for c in changes] == [
        (None, "detect", 1234),
        ("block_tmp_exec", "enforce", 0),
    ]
    assert changes[0].reason == "rollout"
    assert kinds(audit, "block_shadow_read") == [Kind.WOULD_BLOCK]
    with pytest.raises(ConfigError, match="no such rule"):
        agent.set_mode(Mode.OFF, rule="nope")


def test_confirm_within_reverts_unless_confirmed(tmp_path: Path) -> None:
    agent, fake, audit, clock = make_agent(
        tmp_path, settings=AgentSettings(mode=Mode.DETECT, scope_cgroups=(CG,))
    )
    agent.set_mode(Mode.ENFORCE, uid=0, reason="try", confirm_within=300)
    assert fake.modes()[Hook.BPRM_CHECK_SECURITY] == ModeId.ENFORCE
    clock.now += 299
    agent.step(timeout_ms=0)
    assert mode_now(agent) is Mode.ENFORCE
    clock.now += 2
    agent.step(timeout_ms=0)
    assert mode_now(agent) is Mode.DETECT
    assert fake.modes()[Hook.BPRM_CHECK_SECURITY] == ModeId.DETECT
    assert audit.decisions[-1].outcome == "reverted"
    # confirmed in time: kept
    agent.set_mode(Mode.ENFORCE, uid=0, confirm_within=10)
    agent.confirm(uid=0)
    clock.now += 60
    agent.step(timeout_ms=0)
    assert mode_now(agent) is Mode.ENFORCE
    assert audit.decisions[-1].outcome == "confirmed"
    with pytest.raises(ConfigError, match="no mode change is waiting"):
        agent.confirm(uid=0)


def test_block_storm_demotes_the_rule_to_detect(tmp_path: Path) -> None:
    settings = AgentSettings(scope_cgroups=(CG,), storm_threshold=3, storm_window_s=10)
    agent, fake, audit, clock = make_agent(tmp_path, settings=settings)
    for i in range(3):
        assert fake.exec(400 + i, path="/tmp/x", cgroup=CG) == errno.EPERM
    agent.step(timeout_ms=0)
    assert "block_tmp_exec" not in agent.rule_modes
    clock.now += 11  # the window slides: old denials no longer count
    for i in range(3):
        fake.exec(410 + i, path="/tmp/x", cgroup=CG)
    agent.step(timeout_ms=0)
    assert "block_tmp_exec" not in agent.rule_modes
    fake.exec(420, path="/tmp/x", cgroup=CG)
    agent.step(timeout_ms=0)
    assert agent.rule_modes["block_tmp_exec"] is Mode.DETECT
    assert fake.rule_modes()[agent.compiled.number("block_tmp_exec")] == ModeId.DETECT
    assert fake.exec(421, path="/tmp/x", cgroup=CG) == 0
    demoted = [d for d in audit.decisions if d.outcome == "demoted"]
    assert len(demoted) == 1
    assert "block storm" in demoted[0].reason
    assert fake.open(422, path="/etc/shadow", cgroup=CG) == errno.EPERM  # other rules keep enforcing


def test_protected_names_resolve_to_ptrace_verdicts(tmp_path: Path) -> None:
    procs = [(555, "kestrel-vault", "/var/tmp/kestrel-vault"), (556, "bash", "/usr/bin/bash")]
    agent, fake, _, clock = make_agent(tmp_path, processes=procs)
    assert fake.ptrace(900, target_tgid=555, cgroup=CG) == errno.EPERM
    assert fake.ptrace(900, target_tgid=556, cgroup=CG) == 0
    assert agent.protected_pids()[555] == "block_ptrace_protected"
    procs.append((557, "ssh-agent", "/usr/bin/ssh-agent"))
    clock.now += 2
    agent.step(timeout_ms=0)
    assert fake.ptrace(900, target_tgid=557, cgroup=CG) == errno.EPERM


def test_stop_audits_and_releases(tmp_path: Path) -> None:
    agent, fake, audit, _ = make_agent(tmp_path)
    agent.stop("test")
    assert kinds(audit)[-1] is Kind.AGENT_STOP
    assert not fake.loaded


def test_a_restarted_agent_without_mode_adopts_the_pinned_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeBackend()
    monkeypatch.setattr(fake, "adopted", True, raising=False)  # as a bcc plane that found its maps pinned
    policy = compile_policy(load_policy(POLICIES))
    number = policy.number("block_shadow_read")
    original_load = fake.load

    def load() -> None:  # the pinned state the previous agent (or guardctl off) left
        original_load()
        fake.configure(dict.fromkeys(Hook, ModeId.DETECT), agent_tgid=1)
        fake.set_rule_modes({number: ModeId.OFF, 12345: ModeId.ENFORCE})

    monkeypatch.setattr(fake, "load", load)
    agent = Agent(
        policy,
        fake,
        MemoryAudit(),
        AgentSettings(mode=None, scope_cgroups=(CG,)),
        processes=ProcessCache(read_proc=False),
        list_processes=list,
    )
    agent.start()
    assert agent.mode is Mode.DETECT
    assert agent.rule_modes == {"block_shadow_read": Mode.OFF}  # an unknown number is not adopted
    assert fake.rule_modes() == {number: ModeId.OFF}
