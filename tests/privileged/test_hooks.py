"""Hooks in the kernel beyond the scenario table (tests/hook_scenarios.py, run by
test_hook_scenarios.py): read-class ptrace access, the agent's exemption, the pid scope.

Runs where BPF-LSM programs load (the QEMU guests); the host skips it with the probe's reason.
Only tasks moved into a cgroup the test created (or this process, by pid) are governed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.lsm.abi import ModeId
from guard.lsm.bcc_backend import LsmBackend
from guard.lsm.verdicts import KernelPolicy, PathRule, PtraceRule, build_tables
from guard.model import Hook
from tests.privileged.kit import govern, install, tmpfs
from tests.privileged.scoping import ptrace_in, read_in, sleeper

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


def test_ptrace_read_class_access_is_never_judged(plane: LsmBackend, scope: Path) -> None:
    with sleeper() as target:
        govern(
            plane,
            scope,
            KernelPolicy(ptrace=(PtraceRule(target, RULE),)),
            Hook.PTRACE_ACCESS_CHECK,
            ModeId.ENFORCE,
        )
        # Read-class access (ps, /proc/<pid>/environ) is never judged.
        assert read_in(scope, f"/proc/{target}/environ") == 0
        assert ptrace_in(scope, target) == errno.EPERM


def test_agent_is_exempt_and_pid_scope(plane: LsmBackend, scope: Path, files: Path) -> None:
    secret = files / "secret"
    plane.apply(build_tables(KernelPolicy(paths=(PathRule(Hook.FILE_OPEN, "exact", str(secret), RULE),))))
    plane.set_scope(pids=[os.getpid()])
    plane.configure({Hook.FILE_OPEN: ModeId.ENFORCE}, agent_tgid=os.getpid())
    secret.read_text()  # in the pid scope, but the agent: exempt
    plane.configure({Hook.FILE_OPEN: ModeId.ENFORCE}, agent_tgid=1)
    with pytest.raises(PermissionError):
        secret.read_text()  # this process is governed by pid now
    plane.configure({Hook.FILE_OPEN: ModeId.OFF}, agent_tgid=os.getpid())
    assert secret.read_text() == "secret\n"
