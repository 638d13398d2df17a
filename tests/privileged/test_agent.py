"""The agent on this kernel's plane (BPF-LSM in the guests, compat on a host without it), in a test cgroup.

The bundled policies plus one exemption rule are compiled and enforced by a running :class:`Agent`;
every denial happens inside the cgroup the module creates. The demo (every scenario in enforce,
detect and off) runs too, as `make demo` runs it.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guard.agent.daemon import Agent, AgentSettings
from guard.agent.demo import run_demo
from guard.agent.service import make_backend
from guard.audit.record import Kind
from guard.audit.sink import MemoryAudit
from guard.config import GuardConfig
from guard.lsm.probe import probe_kernel
from guard.model import Mode
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy
from tests.privileged.scoping import PausedChild, cgroup2_root, exec_action, seize

pytestmark = [pytest.mark.privileged, pytest.mark.requires_feature("bcc")]

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _backend_name() -> str:
    name = probe_kernel().backend.value
    if name == "fake":
        pytest.skip("no BPF data plane on this kernel (guardctl probe chose fake)")
    return name


class Running:
    def __init__(self, agent: Agent, audit: MemoryAudit, cgroup: Path, work: Path) -> None:
        self.agent, self.audit, self.cgroup, self.work = agent, audit, cgroup, work

    def settle(self) -> None:
        assert self.agent.wait_turns(2, timeout=30)

    def since(self, n: int, rule: str) -> list[Kind]:
        return [d.kind for d in self.audit.decisions[n:] if d.rule_id == rule]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    backend = _backend_name()
    work = Path(tempfile.mkdtemp(prefix="guard-agent-test-", dir="/var/tmp"))
    policy_dir = work / "policy"
    shutil.copytree(POLICIES, policy_dir)
    (work / "guarded").write_text("secret\n")
    cat = shutil.which("cat") or "/bin/cat"
    shutil.copy(cat, work / "okcat")
    shutil.copy(cat, work / "othercat")
    (policy_dir / "exempt.guard").write_text(
        "[[rule]]\n"
        'id = "test_exempt"\nname = "guarded file"\nseverity = "low"\naction = "block"\n'
        f"query = '''file where file.path == \"{work}/guarded\" and not process.executable in (\"{work}/okcat\")'''\n"
    )
    cgroup = cgroup2_root() / f"guard-agent-test-{os.getpid()}"
    cgroup.mkdir()
    audit = MemoryAudit()
    cache = tmp_path_factory.mktemp("bcc")
    agent = Agent(
        compile_policy(load_policy(policy_dir)),
        make_backend(backend, GuardConfig(), cache, pin=False),
        audit,
        AgentSettings(scope_cgroups=(os.stat(cgroup).st_ino,), storm_threshold=1000),
    )
    stop = threading.Event()
    agent.start()
    thread = threading.Thread(target=agent.run, args=(stop,), kwargs={"timeout_ms": 50}, daemon=True)
    thread.start()
    try:
        yield Running(agent, audit, cgroup, work)
    finally:
        stop.set()
        thread.join(timeout=30)
        agent.stop("test finished")
        cgroup.rmdir()
        shutil.rmtree(work, ignore_errors=True)


def _run_in(cgroup: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    def join() -> None:
        with open(cgroup / "cgroup.procs", "w") as f:
            f.write("0")

    return subprocess.run(argv, preexec_fn=join, capture_output=True, text=True, timeout=60, check=False)


def _attempt(cgroup: Path | None, action: Callable[[], None]) -> str:
    """``blocked`` (EPERM under LSM, or the compat plane's kill reaction), ``ok``, or the errno's name."""
    err, status = PausedChild(cgroup, action).finish()
    if (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL) or err == errno.EPERM:
        return "blocked"
    if (err is None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0) or err == 0:
        return "ok"
    return errno.errorcode.get(err or 0, str(err))


def _open(path: str | Path) -> Callable[[], None]:
    return lambda: os.close(os.open(path, os.O_RDONLY))


def _blocked(result: subprocess.CompletedProcess[str]) -> bool:
    """A command in the scope was refused (EPERM) or killed by the kernel (compat)."""
    return result.returncode == -signal.SIGKILL or "Operation not permitted" in result.stderr


def test_inline_rules_deny_in_scope_with_entity_audit(running: Running) -> None:
    running.agent.set_mode(Mode.ENFORCE, uid=0, reason="test")
    n = len(running.audit.decisions)
    dropper = Path(tempfile.mkdtemp(prefix="guard-agent-test-", dir="/tmp")) / "dropper"
    shutil.copy(shutil.which("true") or "/bin/true", dropper)
    dropper.chmod(0o755)
    try:
        assert _attempt(running.cgroup, exec_action(str(dropper))) == "blocked"
        assert _attempt(None, exec_action(str(dropper))) == "ok"  # outside the scope: untouched
    finally:
        shutil.rmtree(dropper.parent)
    assert _attempt(running.cgroup, _open("/etc/shadow")) == "blocked"
    running.settle()
    denies = [d for d in running.audit.decisions[n:] if d.kind in (Kind.DENY, Kind.KILL)]
    assert [d.rule_id for d in denies] == ["block_tmp_exec", "block_shadow_read"]
    for d in denies:
        assert d.process is not None
        assert d.process.entity_id.startswith(f"{d.process.pid}-")
        assert d.process.ppid


def test_exemption_by_the_callers_executable(running: Running) -> None:
    """The kernel skips the rule for the exempt binary (by its inode, as the kernel sees it), not a copy."""
    running.agent.set_mode(Mode.ENFORCE, uid=0, reason="test")
    n = len(running.audit.decisions)
    ok = _run_in(running.cgroup, [str(running.work / "okcat"), str(running.work / "guarded")])
    assert ok.returncode == 0
    assert ok.stdout == "secret\n"
    other = _run_in(running.cgroup, [str(running.work / "othercat"), str(running.work / "guarded")])
    assert _blocked(other), other
    running.settle()
    assert running.since(n, "test_exempt") in ([Kind.DENY], [Kind.KILL])


def test_detect_records_would_block_and_allows(running: Running) -> None:
    running.agent.set_mode(Mode.DETECT, uid=0, reason="test")
    n = len(running.audit.decisions)
    try:
        assert _attempt(running.cgroup, _open("/etc/shadow")) == "ok"
        running.settle()
        # one open on overlayfs runs file_open twice (the overlay's file, then the layer's): one
        # would-block record each; never a deny
        kinds = running.since(n, "block_shadow_read")
        assert kinds
        assert set(kinds) == {Kind.WOULD_BLOCK}
    finally:
        running.agent.set_mode(Mode.ENFORCE, uid=0, reason="test")


def test_one_rule_in_detect_while_the_others_enforce(running: Running) -> None:
    agent = running.agent
    agent.set_mode(Mode.DETECT, rule="block_shadow_read", uid=0, reason="test")
    try:
        assert _attempt(running.cgroup, _open("/etc/shadow")) == "ok"  # this rule detects
        assert _attempt(running.cgroup, _open(running.work / "guarded")) == "blocked"  # the others enforce
    finally:
        agent.set_mode(Mode.ENFORCE, rule="block_shadow_read", uid=0, reason="test")


def test_the_agent_cannot_be_ptraced_from_the_scope(running: Running) -> None:
    running.agent.set_mode(Mode.ENFORCE, uid=0, reason="test")
    target = os.getpid()
    assert _attempt(running.cgroup, lambda: seize(target)) == "blocked"
    running.settle()
    assert any(d.rule_id == "guard_self_protect" for d in running.audit.decisions)


def test_demo_rows_are_as_expected(tmp_path: Path) -> None:
    """The demo, as `make demo` runs it: every scenario in enforce, detect and off."""
    backend = _backend_name()
    rows = run_demo(POLICIES, lambda: make_backend(backend, GuardConfig(), tmp_path, pin=False))
    bad = [r.to_json() for r in rows if not r.ok]
    assert bad == []
    assert len(rows) == 21
    sequence = [r for r in rows if "sequence" in r.scenario and r.mode == "enforce"]
    assert sequence[0].actual == ("blocked" if "chmod events" not in sequence[0].detail else "allowed")
