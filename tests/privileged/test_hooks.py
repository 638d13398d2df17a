"""Every hook in the kernel: denied in scope under enforce (EPERM) with a DENIED event, allowed with a
would-block event under detect, allowed and uncounted under off, allowed out of scope.

Runs where BPF-LSM programs load (the QEMU guests); the host skips it with the probe's reason.
Only tasks moved into a cgroup the test created are governed.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guard.lsm import abi
from guard.lsm.abi import Counter, Decision, HookId, Match, ModeId
from guard.lsm.bcc_backend import LsmBackend
from guard.lsm.verdicts import (
    InodeRule,
    KernelPolicy,
    NetRule,
    PathRule,
    PtraceRule,
    build_tables,
    kernel_dev,
)
from tests.privileged.kit import decisions, delta, govern, install, set_mode, tmpfs
from tests.privileged.scoping import (
    connect_in,
    exec_in,
    loopback_listeners,
    open_in,
    ptrace_in,
    read_in,
    sleeper,
)

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]

RULE = 41


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs") as d:
        install(d / "tool")
        (d / "secret").write_text("secret\n")
        yield d


def _matrix(
    plane: LsmBackend,
    scope: Path,
    hook: HookId,
    policy: KernelPolicy,
    act: Callable[[Path | None], int],
    check: Callable[[abi.Event], None],
) -> None:
    assert act(scope) == 0  # attached, maps empty: allow
    govern(plane, scope, policy, hook, ModeId.ENFORCE)
    before = plane.counters(hook)
    assert act(scope) == errno.EPERM
    assert act(None) == 0  # out of scope
    denied = [e for e in decisions(plane, hook) if e.decision == Decision.DENIED]
    assert len(denied) == 1, denied
    assert (denied[0].rule_id, denied[0].cgroup_id) == (RULE, scope.stat().st_ino)
    check(denied[0])

    set_mode(plane, hook, ModeId.DETECT)
    assert act(scope) == 0
    would = [e for e in decisions(plane, hook) if e.decision == Decision.WOULD_BLOCK]
    assert len(would) == 1
    assert would[0].rule_id == RULE
    check(would[0])

    set_mode(plane, hook, ModeId.OFF)
    mid = plane.counters(hook)
    assert act(scope) == 0
    assert plane.counters(hook) == mid  # off returns before counting
    assert decisions(plane, hook) == []
    d = delta(before, plane.counters(hook))
    assert (d[Counter.DENIES], d[Counter.WOULD_BLOCK]) == (1, 1)
    assert d[Counter.CALLS] >= 3
    assert (d[Counter.EMITTED], d[Counter.RINGBUF_DROPS]) == (2, 0)


def test_exec(plane: LsmBackend, scope: Path, files: Path) -> None:
    tool = files / "tool"
    st = tool.stat()
    policy = KernelPolicy(inodes=(InodeRule(HookId.EXEC, kernel_dev(st.st_dev), st.st_ino, RULE),))

    def check(e: abi.Event) -> None:
        path = str(tool) if plane.path_verdicts else ""  # 5.10: no bpf_d_path, no path in events
        assert (e.match, e.path.decode(), e.dev, e.ino) == (
            Match.INODE,
            path,
            kernel_dev(st.st_dev),
            st.st_ino,
        )
        assert e.tgid != os.getpid()

    _matrix(plane, scope, HookId.EXEC, policy, lambda cg: exec_in(cg, str(tool)), check)


def test_file_open(plane: LsmBackend, scope: Path, files: Path) -> None:
    secret = files / "secret"
    policy = KernelPolicy(paths=(PathRule(HookId.FILE_OPEN, "exact", str(secret), RULE),))

    def check(e: abi.Event) -> None:
        assert (e.match, e.path.decode(), e.ino) == (Match.PATH, str(secret), secret.stat().st_ino)

    _matrix(plane, scope, HookId.FILE_OPEN, policy, lambda cg: open_in(cg, secret), check)


def test_connect(plane: LsmBackend, scope: Path) -> None:
    with loopback_listeners() as port:
        policy = KernelPolicy(nets=(NetRule(ipaddress.ip_network("127.0.0.0/8"), port, RULE),))

        def check(e: abi.Event) -> None:
            assert (e.match, e.family, e.port) == (Match.NET, 2, port)
            assert bytes(e.addr) == ipaddress.IPv6Address("::ffff:127.0.0.1").packed

        _matrix(plane, scope, HookId.CONNECT, policy, lambda cg: connect_in(cg, "127.0.0.1", port), check)


def test_ptrace(plane: LsmBackend, scope: Path) -> None:
    with sleeper() as target:
        policy = KernelPolicy(ptrace=(PtraceRule(target, RULE),))

        def check(e: abi.Event) -> None:
            assert (e.match, e.target_tgid) == (Match.PTRACE, target)

        _matrix(plane, scope, HookId.PTRACE, policy, lambda cg: ptrace_in(cg, target), check)
        # Read-class access (ps, /proc/<pid>/environ) is never judged.
        set_mode(plane, HookId.PTRACE, ModeId.ENFORCE)
        assert read_in(scope, f"/proc/{target}/environ") == 0
        assert ptrace_in(scope, target) == errno.EPERM


def test_agent_is_exempt_and_pid_scope(plane: LsmBackend, scope: Path, files: Path) -> None:
    secret = files / "secret"
    plane.apply(build_tables(KernelPolicy(paths=(PathRule(HookId.FILE_OPEN, "exact", str(secret), RULE),))))
    plane.set_scope(pids=[os.getpid()])
    plane.configure({HookId.FILE_OPEN: ModeId.ENFORCE}, agent_tgid=os.getpid())
    secret.read_text()  # in the pid scope, but the agent: exempt
    plane.configure({HookId.FILE_OPEN: ModeId.ENFORCE}, agent_tgid=1)
    with pytest.raises(PermissionError):
        secret.read_text()  # this process is governed by pid now
    plane.configure({HookId.FILE_OPEN: ModeId.OFF}, agent_tgid=os.getpid())
    assert secret.read_text() == "secret\n"
