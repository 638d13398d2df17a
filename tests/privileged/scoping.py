"""Test scopes for kernel tests: a cgroup the test creates, and children that act from inside it.

Kernel tests deny only inside a scope they created; these helpers are that scope.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def cgroup2_root() -> Path:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if " - cgroup2 " in line:
            return Path(line.split()[4])
    raise AssertionError("no cgroup2 mount")


@contextmanager
def scoped_cgroup() -> Iterator[Path]:
    """A fresh, empty cgroup v2 directory, removed afterwards (its id is the directory's inode)."""
    cg = cgroup2_root() / f"guard-test-{os.getpid()}"
    cg.mkdir()
    try:
        yield cg
    finally:
        cg.rmdir()


def open_in(cg: Path | None, path: Path | str, *, cwd: Path | None = None) -> int:
    """Fork a child (moved into ``cg`` when given) that opens ``path`` (relative to ``cwd`` when given);
    return its errno (0 = opened)."""
    return _in_child(cg, lambda: os.close(os.open(path, os.O_RDONLY)), cwd=cwd)


def exec_in(cg: Path | None, path: str, *, cwd: Path | None = None) -> int:
    """Fork a child (moved into ``cg`` when given) that execs ``path``; return the exec errno (0 = it ran
    and exited 0). The report pipe is close-on-exec, so a successful exec writes nothing."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            if cg is not None:
                (cg / "cgroup.procs").write_text("0")
            if cwd is not None:
                os.chdir(cwd)
            os.execv(path, [path])
        except OSError as exc:
            code = exc.errno or 255
        os.write(write_fd, code.to_bytes(2, "little"))
        os._exit(0)
    os.close(write_fd)
    data = os.read(read_fd, 2)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if data:
        return int.from_bytes(data, "little")
    assert os.WIFEXITED(status), f"{path} ran but did not exit: {status}"
    assert os.WEXITSTATUS(status) == 0, f"{path} ran but failed: {status}"
    return 0


def _in_child(cg: Path | None, action: Callable[[], None], *, cwd: Path | None = None) -> int:
    """Fork a child (moved into ``cg``, in ``cwd``, when given) that runs ``action``; return its errno (0 = ok)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if cg is not None:
                (cg / "cgroup.procs").write_text("0")
            if cwd is not None:
                os.chdir(cwd)
            action()
        except OSError as exc:
            code = exc.errno or 255
        except BaseException:
            code = 254
        os.write(write_fd, code.to_bytes(2, "little"))
        os._exit(0)
    os.close(write_fd)
    data = os.read(read_fd, 2)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return int.from_bytes(data, "little")


def connect_in(cg: Path | None, address: str, port: int, *, udp: bool = False) -> int:
    """Errno of a child's connect() to (address, port); 0 = connected."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def act() -> None:
        with socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect((address, port))

    return _in_child(cg, act)


_PTRACE_SEIZE = 0x4206
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def ptrace_in(cg: Path | None, target: int) -> int:
    """Errno of a child's PTRACE_SEIZE of ``target`` (the tracee is released when the child exits)."""

    def act() -> None:
        if libc.ptrace(_PTRACE_SEIZE, target, None, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return _in_child(cg, act)


def read_in(cg: Path | None, path: str) -> int:
    """Errno of a child reading ``path``; 0 = read."""

    def act() -> None:
        with open(path, "rb") as f:
            f.read()

    return _in_child(cg, act)


@contextmanager
def loopback_listeners() -> Iterator[int]:
    """One dual-stack TCP listener on [::] (so 127.0.0.1, ::ffff:127.0.0.1 and ::1 reach it); yields its port."""
    if "UP" not in subprocess.run(["ip", "-o", "link", "show", "lo"], capture_output=True, text=True).stdout:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    v6.bind(("::", 0))
    v6.listen(64)
    try:
        yield v6.getsockname()[1]
    finally:
        v6.close()


@contextmanager
def sleeper() -> Iterator[int]:
    """A child process that sleeps until killed (a ptrace target); yields its pid."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
