"""Helpers for the data-plane kernel tests: policies in one call, deltas of counters, binaries."""

from __future__ import annotations

import ctypes
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from guard.lsm import abi
from guard.lsm.abi import ModeId
from guard.lsm.bcc_backend import LsmBackend
from guard.lsm.verdicts import KernelPolicy, build_tables
from guard.model import Hook
from tests.privileged.scoping import libc

TRUE = shutil.which("true") or "/bin/true"
Test = TypeVar("Test", bound=Callable[..., None])


def on_the_compat_plane(test: Test) -> Test:
    """The compat plane's marks: a root host (the guests skip it, as tests/privileged/test_compat.py)."""
    for mark in (
        pytest.mark.privileged,
        pytest.mark.requires_feature("cgroup_sock_addr"),
        pytest.mark.requires_feature("raw_tracepoint"),
        pytest.mark.requires_feature("bcc"),
        pytest.mark.skipif(
            os.environ.get("VMTEST_GUEST") == "1",
            reason="the compat backend is tested on the host (no guest time)",
        ),
    ):
        test = mark(test)
    return test


def govern(plane: LsmBackend, scope: Path, policy: KernelPolicy, hook: Hook, mode: ModeId) -> None:
    """Scope = the test's cgroup; apply the policy; set one hook's mode."""
    plane.set_scope(cgroups=[scope.stat().st_ino])
    plane.apply(build_tables(policy))
    plane.configure({hook: mode}, agent_tgid=os.getpid())


def set_mode(plane: LsmBackend, hook: Hook, mode: ModeId) -> None:
    plane.configure({hook: mode}, agent_tgid=os.getpid())


def decisions(plane: LsmBackend, hook: Hook) -> list[abi.Event]:
    return [e for e in plane.poll_events(50) if e.hook == hook.abi]


def delta(before: dict[abi.Counter, int], after: dict[abi.Counter, int]) -> dict[abi.Counter, int]:
    return {k: after[k] - before[k] for k in after}


@contextmanager
def tmpfs(path: Path) -> Iterator[Path]:
    """A private tmpfs at ``path`` (a fresh device: inode numbers the test controls)."""
    path.mkdir(parents=True, exist_ok=True)
    if libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, b"size=16m") != 0:
        raise OSError(ctypes.get_errno(), f"mount tmpfs on {path}")
    try:
        yield path
    finally:
        libc.umount2(str(path).encode(), 2)


def install(path: Path) -> Path:
    """A copy of true(1) at ``path``."""
    shutil.copy2(TRUE, path)
    path.chmod(0o755)
    return path
