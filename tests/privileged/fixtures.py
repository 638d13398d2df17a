"""Fixtures shared by the kernel tests (``tests/privileged``, ``tests/adversarial``): the test's own
cgroup scope and the loaded data planes, one per session.

A plugin of the root conftest, so both directories share one loaded plane. bcc is imported only
when a plane is first used (a unit session never imports it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from guard.lsm.btf import Btf
from guard.lsm.verdicts import VerdictTables
from tests.privileged.scoping import scoped_cgroup

if TYPE_CHECKING:
    from guard.lsm.bcc_backend import CompatBackend, LsmBackend


@pytest.fixture
def scope() -> Iterator[Path]:
    """A cgroup the test created: the only place a kernel test may deny anything."""
    with scoped_cgroup() as cg:
        yield cg


@pytest.fixture(scope="session")
def _planes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LsmBackend]]:
    """The session's one data plane, loaded on first use (compiling it costs seconds in a TCG guest)."""
    planes: dict[str, LsmBackend] = {}
    yield planes
    for plane in planes.values():
        plane.close()


@pytest.fixture
def plane(_planes: dict[str, LsmBackend], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LsmBackend]:
    """The compiled and attached BPF data plane, emptied before and after."""
    if "plane" not in _planes:
        from guard.lsm.bcc_backend import LsmBackend

        dp = LsmBackend(Btf.from_file(), tmp_path_factory.mktemp("bcc"))
        dp.load()
        _planes["plane"] = dp
    dp = _planes["plane"]
    _reset(dp)
    try:
        yield dp
    finally:
        _reset(dp)


@pytest.fixture(scope="module")
def _compat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompatBackend]:
    """The compat plane, loaded once per module (compiling and verifying it takes seconds)."""
    from guard.lsm.bcc_backend import CompatBackend

    dp = CompatBackend(Btf.from_file(), tmp_path_factory.mktemp("bcc"))
    dp.load()
    try:
        yield dp
    finally:
        dp.close()


@pytest.fixture
def compat(_compat: CompatBackend) -> Iterator[CompatBackend]:
    """The loaded compat plane, emptied before and after."""
    _reset(_compat)
    try:
        yield _compat
    finally:
        _reset(_compat)


def _reset(dp: LsmBackend | CompatBackend) -> None:
    dp.configure({}, agent_tgid=os.getpid())
    dp.set_scope()
    dp.apply(VerdictTables())
    dp.set_rule_modes({})
    dp.set_process_events(False)
    dp.poll_events(0)
    dp.process_records()


@pytest.fixture
def pin_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A bpffs pin directory of the test's own, removed with whatever layout was pinned in it."""
    path = Path("/sys/fs/bpf") / f"kestrel-guard-test-{os.getpid()}-{request.node.name[:40]}"
    yield path
    if path.exists():
        for layout in path.iterdir():
            for pin in layout.iterdir():
                pin.unlink()
            layout.rmdir()
        path.rmdir()
