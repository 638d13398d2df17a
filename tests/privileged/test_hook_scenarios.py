"""The hook scenario table (tests/hook_scenarios.py) on both kernel planes.

The lsm plane runs where BPF-LSM programs load (the vm-tests guests); the compat plane on a root
host (the guests skip it, as tests/privileged/test_compat.py). Only a child moved into the cgroup
the test created is governed: every deny stays inside it. Each hook's call is real: an exec of a
copy of true(1) and an open of a file on a private tmpfs, a TCP connect to a loopback listener, a
PTRACE_SEIZE of a sleeping child.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from guard.lsm import abi
from guard.lsm.abi import Counter, Match
from guard.lsm.bcc_backend import CompatBackend, LsmBackend
from guard.lsm.verdicts import (
    InodeRule,
    KernelPolicy,
    NetRule,
    PathRule,
    PtraceRule,
    build_tables,
    kernel_dev,
)
from guard.model import Hook, Reaction
from tests.hook_scenarios import (
    COUNTED,
    IDS,
    SCENARIOS,
    Expect,
    Scenario,
    cleared,
    decision,
    modes,
    reaction,
    sees,
)
from tests.privileged.kit import delta, install, tmpfs
from tests.privileged.scoping import PausedChild, exec_action, loopback_listeners, seize, sleeper

RULE = 41

#: the hook-specific fields of the call's event
Check = Callable[[abi.Event], None]


@dataclass(frozen=True)
class Trigger:
    """A hook's call: the policy that matches it, the table it matches in, and a child to make it."""

    policy: KernelPolicy
    match: Match
    #: a child (moved into the cgroup when given) that makes the call when released
    child: Callable[[Path | None], PausedChild]
    check: Check


@contextmanager
def trigger(hook: Hook, plane: LsmBackend | CompatBackend, tmp_path: Path) -> Iterator[Trigger]:
    """The call on ``hook``; a file rule is by path where the plane has path verdicts, else by inode."""
    if hook.on_file:
        with tmpfs(tmp_path / "fs") as d:
            target = install(d / "tool") if hook is Hook.BPRM_CHECK_SECURITY else d / "secret"
            target.touch()
            st = target.stat()
            real = os.path.realpath(target)
            dev = kernel_dev(st.st_dev)
            if plane.path_verdicts and hook is Hook.FILE_OPEN:
                policy, match = KernelPolicy(paths=(PathRule(hook, "exact", real, RULE),)), Match.PATH
            else:
                policy, match = KernelPolicy(inodes=(InodeRule(hook, dev, st.st_ino, RULE),)), Match.INODE

            def check_file(e: abi.Event) -> None:
                path = real if plane.path_verdicts else ""  # 5.10: no bpf_d_path, no path in events
                assert (os.fsdecode(e.path), e.dev, e.ino) == (path, dev, st.st_ino)

            if hook is Hook.BPRM_CHECK_SECURITY:
                action = exec_action(str(target))
            else:
                action = lambda: os.close(os.open(target, os.O_RDONLY))  # noqa: E731
            yield Trigger(policy, match, lambda cg: PausedChild(cg, action), check_file)
    elif hook is Hook.SOCKET_CONNECT:
        with loopback_listeners() as port:

            def check_net(e: abi.Event) -> None:
                assert (e.family, e.port) == (socket.AF_INET, port)
                assert bytes(e.addr) == ipaddress.IPv6Address("::ffff:127.0.0.1").packed

            def connect() -> None:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.settimeout(5)
                    s.connect(("127.0.0.1", port))

            policy = KernelPolicy(nets=(NetRule(ipaddress.ip_network("127.0.0.0/8"), port, RULE),))
            yield Trigger(policy, Match.NET, lambda cg: PausedChild(cg, connect), check_net)
    else:
        with sleeper() as target_tgid:

            def check_ptrace(e: abi.Event) -> None:
                assert e.target_tgid == target_tgid

            policy = KernelPolicy(ptrace=(PtraceRule(target_tgid, RULE),))
            yield Trigger(
                policy, Match.PTRACE, lambda cg: PausedChild(cg, lambda: seize(target_tgid)), check_ptrace
            )


def outcome(child: PausedChild) -> int | str:
    """Release the child: ``"killed"`` (SIGKILL), else its call's errno (0: it succeeded)."""
    err, status = child.finish()
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL, status
        return "killed"
    if err is not None:
        return err
    assert os.WIFEXITED(status), status
    assert os.WEXITSTATUS(status) == 0, status
    return 0


def run(plane: LsmBackend | CompatBackend, scope: Path, scenario: Scenario, call: Trigger) -> None:
    """Set the scenario up on the plane and meet it; without a rule override, meet the hook's mode again."""
    plane.set_scope(cgroups=[scope.stat().st_ino])
    plane.apply(build_tables(call.policy if scenario.rule else KernelPolicy()))
    plane.configure(modes(scenario), agent_tgid=os.getpid())
    if scenario.rule_mode is None:
        meet(plane, scope, scenario, call)
        return
    plane.set_rule_modes({RULE: scenario.rule_mode})
    assert plane.rule_modes() == {RULE: scenario.rule_mode}
    meet(plane, scope, scenario, call)
    plane.set_rule_modes({})
    assert plane.rule_modes() == {}
    meet(plane, scope, cleared(scenario), call)


def meet(plane: LsmBackend | CompatBackend, scope: Path, scenario: Scenario, call: Trigger) -> None:
    """Make the call once; check its result, its event and the hook's counters."""
    hook = scenario.hook
    plane.poll_events(0)
    before = plane.counters(hook)

    child = call.child(scope if scenario.in_scope else None)
    result = outcome(child)

    after = plane.counters(hook)
    events = [e for e in plane.poll_events(50) if e.hook == hook.abi]
    if scenario.expect is not Expect.DENY:
        assert result == 0
    elif reaction(plane.name, hook) is Reaction.KILL_REACTION:
        assert result == "killed"
    else:
        assert result == errno.EPERM
    expected = decision(scenario, plane.name)
    if expected is None:
        assert events == []
    else:
        assert [(e.decision, e.rule_id, e.match) for e in events] == [(expected, RULE, call.match)]
        assert (events[0].tgid, events[0].cgroup_id) == (child.pid, scope.stat().st_ino)
        call.check(events[0])
    if scenario.expect is Expect.UNCOUNTED:
        assert after == before  # off returns before counting
    else:
        d = delta(before, after)
        assert {k: d[k] for k in COUNTED[scenario.expect]} == COUNTED[scenario.expect]
        if sees(plane.name, scenario):
            assert d[Counter.CALLS] >= 1
        else:
            assert d[Counter.CALLS] == 0


@pytest.mark.privileged
@pytest.mark.requires_feature("lsm_program")
@pytest.mark.requires_feature("bcc")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_lsm_plane(plane: LsmBackend, scope: Path, tmp_path: Path, scenario: Scenario) -> None:
    with trigger(scenario.hook, plane, tmp_path) as call:
        run(plane, scope, scenario, call)


@pytest.mark.privileged
@pytest.mark.requires_feature("cgroup_sock_addr")
@pytest.mark.requires_feature("raw_tracepoint")
@pytest.mark.requires_feature("send_signal")
@pytest.mark.requires_feature("bcc")
@pytest.mark.skipif(
    os.environ.get("VMTEST_GUEST") == "1", reason="the compat backend is tested on the host (no guest time)"
)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_compat_plane(compat: CompatBackend, scope: Path, tmp_path: Path, scenario: Scenario) -> None:
    with trigger(scenario.hook, compat, tmp_path) as call:
        run(compat, scope, scenario, call)
