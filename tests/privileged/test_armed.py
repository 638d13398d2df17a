"""Armed (dynamic) verdicts in the kernel: per entity group, inherited on fork, left on exit, expiring.

This is what a block sequence arms: the last step denied for the entity that ran the earlier steps
and its descendants, nobody else, until maxspan expires or user space disarms it.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.lsm.abi import Decision, Match, ModeId
from guard.lsm.bcc_backend import LsmBackend
from guard.lsm.verdicts import DynamicVerdict, KernelPolicy, kernel_dev
from guard.model import Hook
from tests.privileged.kit import decisions, govern, install, set_mode, tmpfs
from tests.privileged.scoping import (
    PausedChild,
    exec_action,
    exec_in,
    fork_exec_action,
    loopback_listeners,
    seize,
    sleeper,
)

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]

GROUP = 0x5EED


@pytest.fixture
def tools(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    with tmpfs(tmp_path / "fs") as d:
        yield install(d / "payload"), install(d / "other")


def armed_exec(tool: Path, rule_id: int, expires_ns: int = 0) -> DynamicVerdict:
    st = tool.stat()
    return DynamicVerdict(
        GROUP,
        Hook.BPRM_CHECK_SECURITY,
        rule_id,
        expires_ns=expires_ns,
        dev=kernel_dev(st.st_dev),
        ino=st.st_ino,
    )


def test_armed_exec_denies_only_the_tracked_entity_and_that_file(
    plane: LsmBackend, scope: Path, tools: tuple[Path, Path]
) -> None:
    payload, other = tools
    govern(plane, scope, KernelPolicy(), Hook.BPRM_CHECK_SECURITY, ModeId.ENFORCE)
    plane.arm(armed_exec(payload, 41))

    tracked = PausedChild(scope, exec_action(str(payload)))
    plane.track(tracked.pid, GROUP)
    assert plane.group_of(tracked.pid) == GROUP
    assert tracked.release() == errno.EPERM

    assert exec_in(scope, str(payload)) == 0  # same scope, not in the group
    tracked_other = PausedChild(scope, exec_action(str(other)))
    plane.track(tracked_other.pid, GROUP)
    assert tracked_other.release() == 0  # in the group, another file

    got = [(e.decision, e.rule_id, e.match, e.tgid) for e in decisions(plane, Hook.BPRM_CHECK_SECURITY)]
    assert got == [(Decision.DENIED, 41, Match.DYNAMIC, tracked.pid)]


def test_descendants_inherit_the_group_and_leave_it_on_exit(
    plane: LsmBackend, scope: Path, tools: tuple[Path, Path]
) -> None:
    payload, _ = tools
    govern(plane, scope, KernelPolicy(), Hook.BPRM_CHECK_SECURITY, ModeId.ENFORCE)
    plane.arm(armed_exec(payload, 42))
    parent = PausedChild(scope, fork_exec_action(str(payload)))
    plane.track(parent.pid, GROUP)
    assert parent.release() == errno.EPERM  # the grandchild's exec, denied in kernel
    events = decisions(plane, Hook.BPRM_CHECK_SECURITY)
    assert [(e.rule_id, e.match) for e in events] == [(42, Match.DYNAMIC)]
    grandchild = events[0].tgid
    assert grandchild != parent.pid
    assert plane.group_of(grandchild) is None, "an exited process leaves its group"
    assert plane.group_of(parent.pid) is None


def test_armed_verdict_expires_in_the_kernel(
    plane: LsmBackend, scope: Path, tools: tuple[Path, Path]
) -> None:
    payload, _ = tools
    govern(plane, scope, KernelPolicy(), Hook.BPRM_CHECK_SECURITY, ModeId.ENFORCE)
    span_ns = 3_000_000_000
    expires = time.monotonic_ns() + span_ns  # bpf_ktime_get_ns is CLOCK_MONOTONIC too
    plane.arm(armed_exec(payload, 43, expires))
    first = PausedChild(scope, exec_action(str(payload)))
    plane.track(first.pid, GROUP)
    if first.release() != errno.EPERM:
        assert time.monotonic_ns() > expires, "allowed before its expiry"
        pytest.fail("the guest was too slow to exec within the armed span")
    time.sleep(max(0.0, (expires - time.monotonic_ns()) / 1e9) + 0.05)
    later = PausedChild(scope, exec_action(str(payload)))
    plane.track(later.pid, GROUP)
    assert later.release() == 0
    assert plane.armed() == [], "the hook that met the expired verdict deleted it"


def test_hook_wide_armed_connect_under_detect_then_enforce_then_disarmed(
    plane: LsmBackend, scope: Path
) -> None:
    def connect_action(port: int) -> PausedChild:
        def act() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass

        child = PausedChild(scope, act)
        plane.track(child.pid, GROUP)
        return child

    with loopback_listeners() as port:
        govern(plane, scope, KernelPolicy(), Hook.SOCKET_CONNECT, ModeId.DETECT)
        plane.arm(DynamicVerdict(GROUP, Hook.SOCKET_CONNECT, 44))
        assert connect_action(port).release() == 0
        set_mode(plane, Hook.SOCKET_CONNECT, ModeId.ENFORCE)
        assert connect_action(port).release() == errno.EPERM
        plane.disarm(GROUP, Hook.SOCKET_CONNECT)
        assert connect_action(port).release() == 0
    got = [(e.decision, e.rule_id, e.match) for e in decisions(plane, Hook.SOCKET_CONNECT)]
    assert got == [(Decision.WOULD_BLOCK, 44, Match.DYNAMIC), (Decision.DENIED, 44, Match.DYNAMIC)]


def test_armed_ptrace_for_the_group(plane: LsmBackend, scope: Path) -> None:
    with sleeper() as target:
        govern(plane, scope, KernelPolicy(), Hook.PTRACE_ACCESS_CHECK, ModeId.ENFORCE)
        plane.arm(DynamicVerdict(GROUP, Hook.PTRACE_ACCESS_CHECK, 45))
        child = PausedChild(scope, lambda: seize(target))
        plane.track(child.pid, GROUP)
        assert child.release() == errno.EPERM
        assert PausedChild(scope, lambda: seize(target)).release() == 0  # untracked
    got = [
        (e.decision, e.rule_id, e.match, e.target_tgid) for e in decisions(plane, Hook.PTRACE_ACCESS_CHECK)
    ]
    assert got == [(Decision.DENIED, 45, Match.DYNAMIC, target)]
