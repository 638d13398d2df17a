"""The LSM plane's event lineage, created/write flags and chmod events, in the kernel (per-rule
modes on every hook: tests/hook_scenarios.py, run by test_hook_scenarios.py).

Runs where BPF-LSM programs load (the QEMU guests). Only tasks moved into a cgroup the test created
are governed; the files are on a private tmpfs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.lsm import abi
from guard.lsm.abi import Decision, Match, ModeId
from guard.lsm.bcc_backend import LsmBackend
from guard.lsm.verdicts import KernelPolicy, kernel_dev
from guard.model import Hook
from tests.privileged.kit import decisions, govern, tmpfs
from tests.privileged.lineage import assert_lineage, start_ticks
from tests.privileged.scoping import PausedChild, open_in

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]

OPEN = Hook.FILE_OPEN


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs") as d:
        (d / "secret").write_text("secret\n")
        yield d


def test_events_carry_the_lineage_mode_and_write_flag(plane: LsmBackend, scope: Path, files: Path) -> None:
    secret = files / "secret"
    govern(plane, scope, KernelPolicy(hook_flags={OPEN: abi.HF_EMIT_ALL}), OPEN, ModeId.DETECT)
    child = PausedChild(scope, lambda: os.close(os.open(secret, os.O_WRONLY)))
    child_ticks = start_ticks(child.pid)  # read while the child lives
    assert child.release() == 0
    events = [e for e in decisions(plane, OPEN) if e.tgid == child.pid and e.ino == secret.stat().st_ino]
    assert len(events) == 1
    event = events[0]
    assert_lineage(event, child_ticks, parent=os.getpid())
    assert event.mode == secret.stat().st_mode
    assert event.flags & abi.EVF_WRITE
    assert not event.flags & abi.EVF_CREATED


def test_created_flag_and_created_file_interest(plane: LsmBackend, scope: Path, files: Path) -> None:
    new, old = files / "new", files / "secret"

    def create(path: Path) -> None:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))

    govern(plane, scope, KernelPolicy(hook_flags={OPEN: abi.HF_EMIT_ALL}), OPEN, ModeId.DETECT)
    assert PausedChild(scope, lambda: create(new)).release() == 0
    assert PausedChild(scope, lambda: create(old)).release() == 0  # O_CREAT of an existing file
    by_ino = {e.ino: e for e in decisions(plane, OPEN)}
    assert by_ino[new.stat().st_ino].flags & abi.EVF_CREATED
    assert not by_ino[old.stat().st_ino].flags & abi.EVF_CREATED

    # the created-file interest alone: only the open that created a file is reported
    govern(plane, scope, KernelPolicy(hook_flags={OPEN: abi.HF_EMIT_CREATED}), OPEN, ModeId.DETECT)
    newer = files / "newer"
    assert PausedChild(scope, lambda: create(newer)).release() == 0
    assert PausedChild(scope, lambda: create(old)).release() == 0
    assert open_in(scope, old) == 0
    events = decisions(plane, OPEN)
    assert [(e.ino, e.decision, e.match) for e in events] == [
        (newer.stat().st_ino, Decision.ALLOWED, Match.ALL)
    ]
    assert events[0].path.decode() in ("", str(newer))  # 5.10: no bpf_d_path, no path


def test_a_chmod_in_scope_emits_a_chmod_event(plane: LsmBackend, scope: Path, files: Path) -> None:
    if not plane.chmod_events:
        pytest.skip(f"no chmod events on this kernel: {plane.unavailable.get('chmod_events')}")
    target = files / "payload"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o644)
    st = target.stat()
    govern(plane, scope, KernelPolicy(), OPEN, ModeId.DETECT)
    assert PausedChild(scope, lambda: os.chmod(target, 0o755)).release() == 0  # noqa: S103 (a test file)
    assert plane.poll_events(50) == []  # without the interest: nothing

    govern(plane, scope, KernelPolicy(hook_flags={OPEN: abi.HF_EMIT_CHMOD}), OPEN, ModeId.DETECT)
    child = PausedChild(scope, lambda: os.chmod(target, 0o750))  # noqa: S103 (a test file)
    child_ticks = start_ticks(child.pid)
    assert child.release() == 0

    def fchmod() -> None:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)

    assert PausedChild(scope, fchmod).release() == 0
    os.chmod(target, 0o644)  # the agent (this process) is exempt; and out of scope below
    assert PausedChild(None, lambda: os.chmod(target, 0o600)).release() == 0
    chmods = [e for e in plane.poll_events(50) if e.hook == abi.EVENT_CHMOD]
    assert [(e.mode & 0o7777, e.dev, e.ino) for e in chmods] == [
        (0o750, kernel_dev(st.st_dev), st.st_ino),
        (0o700, kernel_dev(st.st_dev), st.st_ino),
    ]
    assert [os.fsdecode(e.path) for e in chmods] == [os.path.realpath(target)] * 2
    assert not any(e.flags & abi.EVF_PATH_TOO_LONG for e in chmods)
    assert all((e.decision, e.match, e.rule_id) == (Decision.ALLOWED, Match.ALL, 0) for e in chmods)
    assert chmods[0].tgid == child.pid
    assert_lineage(chmods[0], child_ticks, parent=os.getpid())
    assert target.stat().st_mode & 0o7777 == 0o600  # telemetry only: every chmod went through
