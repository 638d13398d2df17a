"""An unprivileged user's own namespaces (``unshare -Urm``) and a bind mount in them, for the
evasion tests of both planes."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.privileged.kit import tmpfs
from tests.privileged.scoping import PausedChild, libc

__all__ = ["open_tmpfs", "unprivileged_namespace_bind", "userns_unavailable"]

_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 0x40000
_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_PR_SET_DUMPABLE = 4
_NOBODY = 65534

_USERNS_STEPS = (
    "setgid",
    "setuid",
    "dumpable",
    "unshare",
    "setgroups",
    "uid_map",
    "gid_map",
    "rprivate",
    "bind",
)


def unprivileged_namespace_bind(tmp: Path, view: Path) -> None:
    """As nobody: a user and mount namespace of one's own (``unshare -Urm``), then a bind mount of tmp.

    A failing step raises OSError(100 + its index) (its errno in the message).
    """

    def step(index: int, action: Callable[[], object]) -> None:
        try:
            result = action()
        except OSError as exc:
            raise OSError(100 + index, f"{_USERNS_STEPS[index]}: {exc}") from exc
        if isinstance(result, int) and result < 0:
            raise OSError(100 + index, f"{_USERNS_STEPS[index]}: errno {ctypes.get_errno()}")

    step(0, lambda: os.setgid(_NOBODY))
    step(1, lambda: os.setuid(_NOBODY))
    step(2, lambda: libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0))  # else /proc/self stays root's
    step(3, lambda: libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS))
    step(4, lambda: Path("/proc/self/setgroups").write_text("deny"))
    step(5, lambda: Path("/proc/self/uid_map").write_text(f"0 {_NOBODY} 1"))
    step(6, lambda: Path("/proc/self/gid_map").write_text(f"0 {_NOBODY} 1"))
    step(7, lambda: libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None))
    step(8, lambda: libc.mount(str(tmp).encode(), str(view).encode(), None, _MS_BIND, None))


def userns_unavailable(tmp: Path, view: Path) -> str | None:
    """Why nobody cannot make a namespace and bind mount here (None: it can), tried in a child."""
    code = PausedChild(None, lambda: unprivileged_namespace_bind(tmp, view)).release()
    if code == 0:
        return None
    if 100 <= code < 100 + len(_USERNS_STEPS):
        return f"an unprivileged user namespace cannot be made here: step {_USERNS_STEPS[code - 100]} failed"
    return f"an unprivileged user namespace cannot be made here: errno {code}"


@contextmanager
def open_tmpfs() -> Iterator[Path]:
    """A tmpfs an unprivileged user can walk to (pytest's own directories are 0700)."""
    base = Path(f"/tmp/guard-userns-{os.getpid()}")
    base.mkdir(mode=0o755)
    try:
        with tmpfs(base) as d:
            d.chmod(0o755)
            yield d
    finally:
        base.rmdir()
