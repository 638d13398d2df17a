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
    and exited 0)."""
    return PausedChild(cg, exec_action(path), cwd=cwd).release()


def _in_child(cg: Path | None, action: Callable[[], None], *, cwd: Path | None = None) -> int:
    """Fork a child (moved into ``cg``, in ``cwd``, when given) that runs ``action``; return its errno (0 = ok)."""
    return PausedChild(cg, action, cwd=cwd).release()


class PausedChild:
    """A child already in the scope (and in ``cwd``), waiting: the test can track its pid before it acts.

    The report pipe is close-on-exec, so an action that execs successfully writes nothing and the
    exec'd program's exit status is checked instead.
    """

    def __init__(self, cg: Path | None, action: Callable[[], None], *, cwd: Path | None = None) -> None:
        ready_r, ready_w = os.pipe()
        self._go_r, self._go_w = os.pipe()
        self._res_r, res_w = os.pipe2(os.O_CLOEXEC)  # closed by a successful exec: nothing written
        self.pid = os.fork()
        if self.pid == 0:
            code = 255
            try:
                os.close(ready_r)
                os.close(self._go_w)
                if cg is not None:
                    (cg / "cgroup.procs").write_text("0")
                if cwd is not None:
                    os.chdir(cwd)
                os.write(ready_w, b"r")
                if os.read(self._go_r, 1) == b"g":
                    action()
                    code = 0
            except OSError as exc:
                code = exc.errno or 255
            except BaseException:
                code = 254
            os.write(res_w, code.to_bytes(2, "little"))
            os._exit(0)
        os.close(ready_w)
        os.close(self._go_r)
        os.close(res_w)
        ready = os.read(ready_r, 1)
        os.close(ready_r)
        assert ready == b"r", "the paused child failed to join its scope"

    def finish(self) -> tuple[int | None, int]:
        """Let the child act; return (its errno report, None when it wrote none, and its wait status)."""
        os.write(self._go_w, b"g")
        os.close(self._go_w)
        data = os.read(self._res_r, 2)
        os.close(self._res_r)
        _, status = os.waitpid(self.pid, 0)
        return (int.from_bytes(data, "little") if data else None), status

    def release(self) -> int:
        """Let the child act; return its errno (0 = ok; an exec that ran must have exited 0)."""
        err, status = self.finish()
        if err is not None:
            return err
        assert os.WIFEXITED(status), f"child {self.pid}: status {status}"
        assert os.WEXITSTATUS(status) == 0, f"child {self.pid}: status {status}"
        return 0

    def killed_by(self) -> int | None:
        """Let the child act; return the signal that killed it (None: it was not killed)."""
        _, status = self.finish()
        return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


def exec_action(path: str) -> Callable[[], None]:
    """An action that execs ``path`` (for :class:`PausedChild`)."""
    return lambda: os.execv(path, [path])


def fork_exec_action(path: str) -> Callable[[], None]:
    """An action that forks a grandchild which execs ``path``, raising its errno."""

    def act() -> None:
        err = exec_in(None, path)
        if err:
            raise OSError(err, os.strerror(err))

    return act


def connect_in(cg: Path | None, address: str, port: int, *, udp: bool = False) -> int:
    """Errno of a child's connect() to (address, port); 0 = connected."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def act() -> None:
        with socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect((address, port))

    return _in_child(cg, act)


def sendto_in(cg: Path | None, address: str, port: int, *, connect_first: bool = False) -> int:
    """Errno of a child's UDP sendto() of one datagram to (address, port); 0 = sent.

    With ``connect_first`` the socket is connected to the address and the datagram sent without
    a destination (msg_name NULL).
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def act() -> None:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            if connect_first:
                s.connect((address, port))
                s.send(b"x")
            else:
                s.sendto(b"x", (address, port))

    return _in_child(cg, act)


_PTRACE_SEIZE = 0x4206
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def seize(target: int) -> None:
    """PTRACE_SEIZE ``target`` (released when the caller exits); raise OSError with the errno."""
    if libc.ptrace(_PTRACE_SEIZE, target, None, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def ptrace_in(cg: Path | None, target: int) -> int:
    """Errno of a child's PTRACE_SEIZE of ``target`` (the tracee is released when the child exits)."""
    return _in_child(cg, lambda: seize(target))


def read_in(cg: Path | None, path: str) -> int:
    """Errno of a child reading ``path``; 0 = read."""

    def act() -> None:
        with open(path, "rb") as f:
            f.read()

    return _in_child(cg, act)


def loopback_up() -> None:
    """Bring ``lo`` up (a fresh guest boots with it down)."""
    if "UP" not in subprocess.run(["ip", "-o", "link", "show", "lo"], capture_output=True, text=True).stdout:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


@contextmanager
def loopback_listeners() -> Iterator[int]:
    """One dual-stack TCP listener on [::] (so 127.0.0.1, ::ffff:127.0.0.1 and ::1 reach it); yields its port."""
    loopback_up()
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
