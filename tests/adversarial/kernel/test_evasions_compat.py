"""The same evasions on the compat plane (no BPF-LSM: the host here), where they hold.

The compat plane judges after the call and kills the caller (a kill reaction); it shares the inode
and subtree verdicts, so another name for a protected file or for a file in a blocked directory
meets the rule written for the real path: a hard link made after the policy, a bind mount, a chroot,
a protected process's thread by its own id. What compat cannot see (links, renames and executable
mappings, /proc/<pid>/mem, io_uring) is stated in docs/compat.md and proven on the LSM plane in
``test_evasions_lsm.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guard.lsm.abi import Decision, Match
from guard.lsm.bcc_backend import CompatBackend
from tests.adversarial.kernel.kit import enforce_bundled as enforce
from tests.adversarial.kernel.kit import open_tmpfs, unprivileged_namespace_bind, userns_unavailable
from tests.privileged.kit import install, tmpfs
from tests.privileged.scoping import PausedChild, libc

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("raw_tracepoint"),
    pytest.mark.requires_feature("send_signal"),
    pytest.mark.requires_feature("bcc"),
]

_MS_BIND = 0x1000
#: a statically linked program every Debian system has (glibc's ldconfig)
STATIC = "/sbin/ldconfig"
_PTRACE_SEIZE = 0x4206


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs") as d:
        yield d


def killed(scope: Path, action: Callable[[], None]) -> int | None:
    return PausedChild(scope, action).killed_by()


def read(path: Path) -> Callable[[], None]:
    def go() -> None:
        with open(path, "rb") as f:
            f.read()

    return go


def matches(compat: CompatBackend) -> list[Match]:
    return [Match(e.match) for e in compat.poll_events(50) if e.decision == Decision.KILLED]


def test_shadow_through_a_hard_link_made_after_the_policy(
    compat: CompatBackend, scope: Path, root: Path, tmp_path: Path
) -> None:
    (root / "etc").mkdir()
    (root / "etc" / "shadow").write_text("root:$6$hash:19000::::::\n")
    enforce(
        compat, scope, "file/block_shadow_read.guard", {'"/etc/shadow"': f'"{root}/etc/shadow"'}, tmp_path
    )
    os.link(root / "etc" / "shadow", root / "copy")
    assert killed(scope, read(root / "copy")) == signal.SIGKILL
    assert matches(compat) == [Match.INODE]


def test_tmp_exec_through_a_bind_mount_and_a_chroot(
    compat: CompatBackend, scope: Path, root: Path, tmp_path: Path
) -> None:
    tmp = root / "tmp"
    tmp.mkdir()
    install(tmp / "x")
    shutil.copy2(STATIC, tmp / "static")  # runs inside a chroot with no libraries
    enforce(compat, scope, "exec/block_tmp_exec.guard", {'"/tmp/*"': f'"{tmp}/*"'}, tmp_path)
    (root / "view").mkdir()
    assert libc.mount(str(tmp).encode(), str(root / "view").encode(), None, _MS_BIND, None) == 0
    try:
        assert killed(scope, lambda: os.execv(str(root / "view" / "x"), ["x"])) == signal.SIGKILL
    finally:
        libc.umount2(str(root / "view").encode(), 2)

    def in_chroot() -> None:
        os.chroot(tmp)
        os.execv("/static", ["static", "-V"])

    assert killed(scope, in_chroot) == signal.SIGKILL
    assert matches(compat) == [Match.SUBTREE, Match.SUBTREE]


_VAULT = """
import ctypes, os, threading, time
ready = threading.Event()
threading.Thread(target=lambda: (ready.set(), time.sleep(600)), daemon=True).start()
ready.wait()
print(os.getpid(), flush=True)
time.sleep(600)
"""


def test_a_thread_started_by_a_protected_process_is_protected_by_its_own_id(
    compat: CompatBackend, scope: Path, root: Path, tmp_path: Path
) -> None:
    """Protected at exec by its executable, before its thread starts: the thread id is a target."""
    vault = root / "kestrel-vault"
    os.symlink(sys.executable, vault)  # its name: the comm the kernel protects
    enforce(compat, scope, "process/block_ptrace_protected.guard", {}, tmp_path)
    proc = subprocess.Popen([str(vault), "-c", _VAULT], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
        assert tids

        def seize() -> None:
            libc.ptrace(_PTRACE_SEIZE, tids[0], None, None)

        assert killed(scope, seize) == signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    assert matches(compat) == [Match.PTRACE]


def test_tmp_exec_through_an_unprivileged_user_namespace_bind_mount(
    compat: CompatBackend, scope: Path
) -> None:
    """As nobody, ``unshare -Urm`` and a bind mount of tmp of one's own: the directory is the same."""
    with open_tmpfs() as root:
        tmp = root / "tmp"
        tmp.mkdir()
        shutil.copy2(STATIC, tmp / "x")
        enforce(compat, scope, "exec/block_tmp_exec.guard", {'"/tmp/*"': f'"{tmp}/*"'}, root)
        view = root / "view"
        view.mkdir()
        why = userns_unavailable(tmp, view)
        if why is not None:
            pytest.skip(why)

        def go() -> None:
            unprivileged_namespace_bind(tmp, view)
            os.execv(str(view / "x"), ["x", "-V"])

        assert killed(scope, go) == signal.SIGKILL
        assert matches(compat) == [Match.SUBTREE]
