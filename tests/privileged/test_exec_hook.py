"""The bprm_check_security hook in the kernel: executables denied by (device, inode) or exact path.

Runs where BPF-LSM programs load (the QEMU guests); the host skips it with the probe's reason. The
binaries live on a tmpfs the test mounts itself, and only tasks in the test's cgroup are governed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.lsm import abi
from guard.lsm.bcc_backend import BccDataPlane
from tests.privileged.scoping import exec_in, kernel_dev

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]

INODE_RULE, PATH_RULE = 11, 12
TRUE = shutil.which("true") or "/bin/true"
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


@pytest.fixture
def bindir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "bin"
    d.mkdir()
    if _libc.mount(b"tmpfs", str(d).encode(), b"tmpfs", 0, b"size=16m") != 0:
        pytest.fail(f"mount tmpfs: {os.strerror(ctypes.get_errno())}")
    try:
        yield d
    finally:
        _libc.umount2(str(d).encode(), 2)


def install(path: Path) -> Path:
    shutil.copy2(TRUE, path)
    path.chmod(0o755)
    return path


def test_inode_verdict_and_evasions(plane: BccDataPlane, scope: Path, bindir: Path) -> None:
    hook = abi.HookId.EXEC
    tool = install(bindir / "tool")
    st = tool.stat()
    assert exec_in(scope, str(tool)) == 0  # attached, maps empty: allow
    plane.add_scope_cgroup(scope.stat().st_ino)
    plane.deny_inode(kernel_dev(st.st_dev), st.st_ino, INODE_RULE)
    plane.configure({hook: abi.ModeId.ENFORCE}, agent_tgid=os.getpid())

    assert exec_in(scope, str(tool)) == errno.EPERM
    assert exec_in(None, str(tool)) == 0  # out of scope
    os.link(tool, bindir / "hardlink")
    assert exec_in(scope, str(bindir / "hardlink")) == errno.EPERM
    os.symlink(tool, bindir / "symlink")
    assert exec_in(scope, str(bindir / "symlink")) == errno.EPERM
    os.rename(bindir / "hardlink", bindir / "renamed")
    assert exec_in(scope, str(bindir / "renamed")) == errno.EPERM
    assert exec_in(scope, "./tool", cwd=bindir) == errno.EPERM
    other = install(bindir / "other")  # a different file (new inode) is not this verdict's business
    assert exec_in(scope, str(other)) == 0

    events = [e for e in plane.poll_events() if e.decision == abi.Decision.DENIED]
    assert len(events) == 5
    assert {(e.rule_id, e.hook, e.dev, e.ino) for e in events} == {
        (INODE_RULE, hook, kernel_dev(st.st_dev), st.st_ino)
    }

    plane.configure({hook: abi.ModeId.DETECT}, agent_tgid=os.getpid())
    assert exec_in(scope, str(tool)) == 0
    would = [e for e in plane.poll_events() if e.decision == abi.Decision.WOULD_BLOCK]
    assert [(e.rule_id, e.path.decode()) for e in would] == [(INODE_RULE, str(tool))]
    counters = plane.counters(hook)
    assert (counters[abi.Counter.DENIES], counters[abi.Counter.WOULD_BLOCK]) == (5, 1)


def test_path_verdict_normalises_spellings(plane: BccDataPlane, scope: Path, bindir: Path) -> None:
    hook = abi.HookId.EXEC
    tool = install(bindir / "tool")
    (bindir / "sub").mkdir()
    plane.add_scope_cgroup(scope.stat().st_ino)
    plane.deny_path(str(tool), PATH_RULE)
    plane.configure({hook: abi.ModeId.ENFORCE}, agent_tgid=os.getpid())
    for spelling in (str(tool), f"{bindir}//tool", f"{bindir}/sub/../tool", "./tool"):
        assert exec_in(scope, spelling, cwd=bindir) == errno.EPERM, spelling
    plane.configure({hook: abi.ModeId.OFF}, agent_tgid=os.getpid())
    assert exec_in(scope, str(tool)) == 0
    events = [e for e in plane.poll_events() if e.decision == abi.Decision.DENIED]
    assert [e.path.decode() for e in events] == [str(tool)] * 4
