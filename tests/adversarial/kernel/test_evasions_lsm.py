"""Evasions of the bundled block rules on the BPF-LSM plane, each re-enacted inside the test's scope.

An attacker who may not read a protected file or run a file from a scratch directory looks for
another name for the same object: a hard link, a bind mount, a file handle, io_uring, a chroot or
a mount namespace of their own; or for another way to run it: a memfd and ``fexecve``, the dynamic
loader (``ld.so /tmp/x``). ptrace protection is probed through a thread id, ``process_vm_readv`` and
``/proc/<pid>/mem``, and on a protected process that has only just started.

Every test loads a rule file shipped in ``policies/`` (its text, with the absolute paths moved under
a tmpfs the test mounts), compiled and resolved as the agent does (:class:`Protection`), governs
only the test's cgroup, and acts from a child inside it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guard.actions.protection import Protection
from guard.lsm.abi import Decision
from guard.lsm.bcc_backend import LsmBackend
from guard.model import Hook
from tests.adversarial.kernel.kit import (
    enforce_bundled,
    open_tmpfs,
    unprivileged_namespace_bind,
    userns_unavailable,
)
from tests.privileged.kit import install, tmpfs
from tests.privileged.scoping import PausedChild, libc

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]

_MS_BIND = 0x1000
_AT_FDCWD, _AT_EMPTY_PATH = -100, 0x1000
_SYS_IO_URING_SETUP, _SYS_IO_URING_ENTER, _SYS_EXECVEAT = 425, 426, 322
_SYS_NAME_TO_HANDLE_AT, _SYS_OPEN_BY_HANDLE_AT = 303, 304
_PTRACE_SEIZE = 0x4206


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs") as d:
        yield d


def enforce(plane: LsmBackend, scope: Path, rule_file: str, moves: dict[str, str]) -> Protection:
    """A bundled rule, its paths moved (``moves``), enforced in ``scope`` as the agent would."""
    with tempfile.TemporaryDirectory() as work:
        return enforce_bundled(plane, scope, rule_file, moves, Path(work))


def act(scope: Path, action: Callable[[], None]) -> int:
    """The errno of ``action`` run by a child in the scope (0: it succeeded)."""
    return PausedChild(scope, action).release()


def read(path: Path | str) -> Callable[[], None]:
    def go() -> None:
        with open(path, "rb") as f:
            f.read()

    return go


def denied_events(plane: LsmBackend) -> list[tuple[int, str]]:
    return [(e.hook, e.path.decode()) for e in plane.poll_events(50) if e.decision == Decision.DENIED]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


# --------------------------------------------------------------------------- files by another name


@pytest.fixture
def shadow(root: Path) -> Path:
    (root / "etc").mkdir()
    secret = root / "etc" / "shadow"
    secret.write_text("root:$6$hash:19000:0:99999:7:::\n")
    return secret


def shadow_rule(plane: LsmBackend, scope: Path, root: Path) -> Protection:
    return enforce(plane, scope, "file/block_shadow_read.guard", {'"/etc/shadow"': f'"{root}/etc/shadow"'})


def test_shadow_is_denied_by_its_own_name(plane: LsmBackend, scope: Path, root: Path, shadow: Path) -> None:
    shadow_rule(plane, scope, root)
    assert act(scope, read(shadow)) == errno.EPERM


def test_shadow_through_a_hard_link_made_before_or_after_the_policy(
    plane: LsmBackend, scope: Path, root: Path, shadow: Path
) -> None:
    os.link(shadow, root / "before")
    shadow_rule(plane, scope, root)
    os.link(shadow, root / "after")
    assert act(scope, read(root / "before")) == errno.EPERM
    assert act(scope, read(root / "after")) == errno.EPERM


def test_shadow_through_a_bind_mount(plane: LsmBackend, scope: Path, root: Path, shadow: Path) -> None:
    shadow_rule(plane, scope, root)
    (root / "view").mkdir()
    _check(libc.mount(str(root / "etc").encode(), str(root / "view").encode(), None, _MS_BIND, None), "bind")
    try:
        assert act(scope, read(root / "view" / "shadow")) == errno.EPERM
    finally:
        libc.umount2(str(root / "view").encode(), 2)


def _open_by_handle(path: Path, mount_dir: Path) -> None:
    handle = ctypes.create_string_buffer(8 + 128)
    struct.pack_into("I", handle, 0, 128)
    mount_id = ctypes.c_int()
    _check(
        libc.syscall(
            _SYS_NAME_TO_HANDLE_AT, _AT_FDCWD, str(path).encode(), handle, ctypes.byref(mount_id), 0
        ),
        "name_to_handle_at",
    )
    mount_fd = os.open(mount_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = _check(libc.syscall(_SYS_OPEN_BY_HANDLE_AT, mount_fd, handle, os.O_RDONLY), "open_by_handle_at")
        os.read(fd, 64)
        os.close(fd)
    finally:
        os.close(mount_fd)


def test_shadow_through_open_by_handle_at(plane: LsmBackend, scope: Path, root: Path, shadow: Path) -> None:
    shadow_rule(plane, scope, root)
    assert act(scope, lambda: _open_by_handle(shadow, root)) == errno.EPERM


def _io_uring_open(path: Path) -> None:
    """OPENAT through io_uring (no open(2) in the caller); raise the CQE's errno."""
    params = ctypes.create_string_buffer(120)
    ring_fd = _check(libc.syscall(_SYS_IO_URING_SETUP, 4, params), "io_uring_setup")
    sq_entries, cq_entries = struct.unpack_from("II", params, 0)
    sq_off = struct.unpack_from("IIIIIIII", params, 40)  # head tail mask entries flags dropped array resv
    cq_off = struct.unpack_from("IIIIII", params, 80)  # head tail mask entries overflow cqes
    sq = mmap.mmap(ring_fd, sq_off[6] + sq_entries * 4, offset=0)
    cq = mmap.mmap(ring_fd, cq_off[5] + cq_entries * 16, offset=0x8000000)
    sqes = mmap.mmap(ring_fd, sq_entries * 64, offset=0x10000000)
    name = ctypes.create_string_buffer(str(path).encode())
    sqe = struct.pack("<BBHiQQIIQ", 18, 0, 0, _AT_FDCWD, 0, ctypes.addressof(name), 0, os.O_RDONLY, 7)
    sqes[0 : len(sqe)] = sqe
    tail = struct.unpack_from("I", sq, sq_off[1])[0]
    mask = struct.unpack_from("I", sq, sq_off[2])[0]
    struct.pack_into("I", sq, sq_off[6] + 4 * (tail & mask), 0)
    struct.pack_into("I", sq, sq_off[1], tail + 1)
    _check(libc.syscall(_SYS_IO_URING_ENTER, ring_fd, 1, 1, 1, None, 0), "io_uring_enter")
    head = struct.unpack_from("I", cq, cq_off[0])[0]
    cmask = struct.unpack_from("I", cq, cq_off[2])[0]
    user_data, res = struct.unpack_from("<Qi", cq, cq_off[5] + 16 * (head & cmask))
    assert user_data == 7
    if res < 0:
        raise OSError(-res, os.strerror(-res))
    os.read(res, 64)


def test_shadow_through_io_uring_openat(plane: LsmBackend, scope: Path, root: Path, shadow: Path) -> None:
    assert act(scope, lambda: _io_uring_open(shadow)) == 0  # io_uring works here, unguarded
    shadow_rule(plane, scope, root)
    assert act(scope, lambda: _io_uring_open(shadow)) == errno.EPERM


@pytest.fixture
def ssh_key(root: Path) -> Path:
    key = root / "home" / "alice" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    return key


def test_own_ssh_key_through_a_hard_link_or_a_rename(
    plane: LsmBackend, scope: Path, root: Path, ssh_key: Path
) -> None:
    """The rule names keys by pattern (``*/.ssh/id_ed25519``): a new name must not be made for one."""
    enforce(plane, scope, "file/block_ssh_key_read.guard", {})
    assert act(scope, read(ssh_key)) == errno.EPERM
    assert act(scope, lambda: os.link(ssh_key, root / "k")) == errno.EPERM
    assert act(scope, lambda: os.rename(ssh_key, root / "k")) == errno.EPERM
    assert ssh_key.exists()
    assert not (root / "k").exists()
    assert act(scope, read(root / "k")) == errno.ENOENT
    public = ssh_key.with_name("id_ed25519.pub")
    public.write_text("ssh-ed25519 AAAA\n")
    assert act(scope, lambda: os.link(public, root / "pub")) == 0  # other files: untouched


# --------------------------------------------------------------------------- running a scratch file


def tmp_rule(plane: LsmBackend, scope: Path, root: Path) -> Path:
    """block_tmp_exec with /tmp moved under the test's tmpfs; returns that tmp with a binary x in it.

    The directory exists before the policy loads, as /tmp does (the agent resolves a directory that
    appears later at its next refresh).
    """
    (root / "tmp").mkdir()
    install(root / "tmp" / "x")
    enforce(plane, scope, "exec/block_tmp_exec.guard", {'"/tmp/*"': f'"{root}/tmp/*"'})
    return root / "tmp"


#: what a child reports when ``before`` failed: never an errno the asserts expect
SETUP_FAILED = 250


def exec_errno(scope: Path, argv: list[str], *, before: Callable[[], None] | None = None) -> int:
    """The exec errno of ``argv`` in a child in the scope (0: it ran and exited 0), after ``before``
    (whose failure is SETUP_FAILED, never mistaken for a deny)."""

    def go() -> None:
        if before is not None:
            try:
                before()
            except OSError as exc:
                raise OSError(SETUP_FAILED, f"setup: {exc}") from exc
        os.execv(argv[0], argv)

    return act(scope, go)


def test_tmp_exec_is_denied_by_its_own_name(plane: LsmBackend, scope: Path, root: Path) -> None:
    tmp = tmp_rule(plane, scope, root)
    assert exec_errno(scope, [str(tmp / "x")]) == errno.EPERM


def test_tmp_exec_through_memfd_and_fexecve(plane: LsmBackend, scope: Path, root: Path) -> None:
    tmp = tmp_rule(plane, scope, root)
    image = (tmp / "x").read_bytes()

    def go() -> None:
        fd = os.memfd_create("payload", 0)
        os.write(fd, image)
        _check(
            libc.syscall(_SYS_EXECVEAT, fd, b"", (ctypes.c_char_p * 2)(b"x", None), None, _AT_EMPTY_PATH),
            "fexecve",
        )

    assert act(scope, go) == errno.EPERM


def test_tmp_exec_through_the_dynamic_loader(plane: LsmBackend, scope: Path, root: Path) -> None:
    """``ld.so /tmp/x`` maps x executable without exec(2) of x: the mapping is what is denied."""
    tmp = tmp_rule(plane, scope, root)
    loader = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    cgroup = str(scope / "cgroup.procs")

    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [loader, str(path)], capture_output=True, text=True, timeout=120,
            preexec_fn=lambda: Path(cgroup).write_text("0"),
        )  # fmt: skip

    shutil.copy2(tmp / "x", root / "elsewhere")
    assert run(root / "elsewhere").returncode == 0
    done = run(tmp / "x")
    assert done.returncode != 0, "ld.so ran a file from the blocked directory"
    assert "map" in done.stderr or "not permitted" in done.stderr.lower(), done.stderr


def test_tmp_exec_through_a_bind_mount(plane: LsmBackend, scope: Path, root: Path) -> None:
    tmp = tmp_rule(plane, scope, root)
    (root / "view").mkdir()
    _check(libc.mount(str(tmp).encode(), str(root / "view").encode(), None, _MS_BIND, None), "bind")
    try:
        assert exec_errno(scope, [str(root / "view" / "x")]) == errno.EPERM
    finally:
        libc.umount2(str(root / "view").encode(), 2)


def test_tmp_exec_inside_a_chroot(plane: LsmBackend, scope: Path, root: Path) -> None:
    """Inside ``chroot tmp`` the file is ``/x``; without a deny, exec fails later (ENOENT: no ld.so there)."""
    tmp = tmp_rule(plane, scope, root)

    def enter() -> None:
        os.chroot(tmp)
        os.chdir("/")

    assert exec_errno(scope, ["/x"], before=enter) == errno.EPERM


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


@pytest.fixture
def open_root() -> Iterator[Path]:
    with open_tmpfs() as d:
        yield d


def test_tmp_exec_through_an_unprivileged_user_namespace_bind_mount(
    plane: LsmBackend, scope: Path, open_root: Path
) -> None:
    root = open_root
    tmp = tmp_rule(plane, scope, root)
    view = root / "view"
    view.mkdir()
    why = userns_unavailable(tmp, view)
    if why is not None:
        chrooted = _identity("/") != _identity("/proc/1/root/")
        pytest.skip(
            f"{why}: the kernel refuses CLONE_NEWUSER to a chrooted caller (the vm-tests job runs in a "
            "chroot); test_evasions_compat.py re-enacts it on the host"
            if chrooted
            else why
        )
    argv = [str(view / "x")]
    assert exec_errno(scope, argv, before=lambda: unprivileged_namespace_bind(tmp, view)) == errno.EPERM
    shutil.copy2(tmp / "x", root / "y")
    allowed = [str(view / "y")]
    (root / "tmp2").mkdir()
    shutil.copy2(tmp / "x", root / "tmp2" / "y")
    assert exec_errno(scope, allowed, before=lambda: unprivileged_namespace_bind(root / "tmp2", view)) == 0


def test_tmp_exec_over_a_long_path(plane: LsmBackend, scope: Path, root: Path) -> None:
    """A path past the kernel's 255-byte path buffer is still inside the blocked directory."""
    tmp = tmp_rule(plane, scope, root)
    deep = tmp
    while len(str(deep)) < 300:
        deep = deep / ("d" * 40)
    deep.mkdir(parents=True)
    install(deep / "x")
    assert exec_errno(scope, [str(deep / "x")]) == errno.EPERM


# --------------------------------------------------------------------------- ptrace protection


_VAULT = """
import ctypes, os, threading, time
ctypes.CDLL(None).prctl(15, b"kestrel-vault", 0, 0, 0)
threading.Thread(target=lambda: time.sleep(600), daemon=True).start()
print(os.getpid(), flush=True)
time.sleep(600)
"""


@pytest.fixture
def vault() -> Iterator[tuple[int, int]]:
    """A process named kestrel-vault (a protected name in block_ptrace_protected) with a second
    thread; yields (pid, the thread's tid)."""
    proc = subprocess.Popen([sys.executable, "-c", _VAULT], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        for _ in range(200):
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
            if tids:
                break
            time.sleep(0.05)
        yield pid, tids[0]
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def _seize(tid: int) -> None:
    _check(libc.ptrace(_PTRACE_SEIZE, tid, None, None), "PTRACE_SEIZE")


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _vm_read(tid: int) -> None:
    maps = Path(f"/proc/{tid}/maps").read_text().splitlines()
    start = int(maps[0].split("-")[0], 16)
    buf = ctypes.create_string_buffer(16)
    local, remote = _Iovec(ctypes.addressof(buf), 16), _Iovec(start, 16)
    _check(libc.process_vm_readv(tid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0), "process_vm_readv")


def test_ptrace_protection_covers_threads_memory_and_vm_reads(
    plane: LsmBackend, scope: Path, vault: tuple[int, int]
) -> None:
    pid, tid = vault
    enforce(plane, scope, "process/block_ptrace_protected.guard", {})
    plane.poll_events(0)
    for target in (pid, tid):
        assert act(scope, functools.partial(_seize, target)) == errno.EPERM, target
        # the kernel turns a refused /proc/<pid>/mem open into EACCES (mm_access)
        assert act(scope, read(f"/proc/{target}/mem")) == errno.EACCES, target
        assert act(scope, functools.partial(_vm_read, target)) == errno.EPERM, target
    denied = [e for e in plane.poll_events(50) if e.decision == Decision.DENIED]
    assert [e.target_tgid for e in denied] == [pid] * 6
    assert act(scope, read(f"/proc/{pid}/cmdline")) == 0  # read access stays open (ps works)


def test_a_protected_process_is_protected_from_its_first_instruction(
    plane: LsmBackend, scope: Path, root: Path
) -> None:
    """Nothing resolves the new process in user space (no refresh after it starts): the kernel
    protects it at exec, by name, before it runs."""
    enforce(plane, scope, "process/block_ptrace_protected.guard", {})
    vault = shutil.copy2(shutil.which("sleep") or "/bin/sleep", root / "kestrel-vault")
    proc = subprocess.Popen([vault, "600"])
    try:
        assert act(scope, lambda: _seize(proc.pid)) == errno.EPERM
    finally:
        proc.kill()
        proc.wait()
    assert [e for e in denied_events(plane) if e[0] == Hook.PTRACE_ACCESS_CHECK.abi]
