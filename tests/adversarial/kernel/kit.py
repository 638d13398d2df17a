"""What the evasion tests of both planes share: a bundled rule enforced as the agent would, and an
unprivileged user's own namespaces (``unshare -Urm``) with a bind mount in them."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from guard.actions.protection import Protection
from guard.agent.daemon import _list_processes
from guard.lsm.abi import ModeId
from guard.lsm.backend import KernelBackend
from guard.lsm.identity import file_identity
from guard.model import Hook
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy
from tests.privileged.kit import tmpfs
from tests.privileged.scoping import PausedChild, libc

__all__ = ["POLICIES", "enforce_bundled", "open_tmpfs", "unprivileged_namespace_bind", "userns_unavailable"]

POLICIES = Path(__file__).resolve().parents[3] / "policies"

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


def enforce_bundled(
    plane: KernelBackend, scope: Path, rule_file: str, moves: dict[str, str], work: Path
) -> Protection:
    """Load ``policies/<rule_file>`` with its paths moved (``moves``), resolve it as the agent does
    (:class:`Protection`: inodes, subtrees, protected names), govern ``scope`` with every hook enforcing."""
    text = (POLICIES / rule_file).read_text()
    for old, new in moves.items():
        assert old in text, f"{rule_file} no longer names {old}"
        text = text.replace(old, new)
    (work / "rule.guard").write_text(text)
    protection = Protection(
        plane, compile_policy(load_policy(work / "rule.guard")),
        agent_tgid=os.getpid(), self_protect=False, refresh_s=3600.0, monotonic=time.monotonic,
        exe_identity=file_identity, list_processes=_list_processes,
    )  # fmt: skip
    plane.set_scope(cgroups=[scope.stat().st_ino])
    protection.refresh(force=True)
    plane.configure({hook: ModeId.ENFORCE for hook in Hook}, agent_tgid=os.getpid())
    return protection
