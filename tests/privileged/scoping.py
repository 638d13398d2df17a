"""Test scopes for kernel tests: a cgroup the test creates, and children that act from inside it.

Kernel tests deny only inside a scope they created; these helpers are that scope.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


def open_in(cg: Path | None, path: Path | str) -> int:
    """Fork a child (moved into ``cg`` when given) that opens ``path``; return its errno (0 = opened)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: join the cgroup, try the open, report, exit without cleanup
        code = 0
        try:
            if cg is not None:
                (cg / "cgroup.procs").write_text("0")
            os.close(os.open(path, os.O_RDONLY))
        except OSError as exc:
            code = exc.errno or 255
        os.write(write_fd, code.to_bytes(2, "little"))
        os._exit(0)
    os.close(write_fd)
    data = os.read(read_fd, 2)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return int.from_bytes(data, "little")


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


def kernel_dev(st_dev: int) -> int:
    """The kernel's internal dev_t (MKDEV: major << 20 | minor) for a stat() st_dev."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)
