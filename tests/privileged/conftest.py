"""Fixtures shared by the kernel tests: the test's own cgroup scope and a loaded data plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.lsm.bcc_backend import BccDataPlane
from guard.lsm.btf import Btf
from tests.privileged.scoping import scoped_cgroup


@pytest.fixture
def scope() -> Iterator[Path]:
    """A cgroup the test created: the only place a kernel test may deny anything."""
    with scoped_cgroup() as cg:
        yield cg


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[BccDataPlane]:
    """The compiled and attached BPF data plane (maps empty: it allows everything until filled)."""
    dp = BccDataPlane(Btf.from_file(), tmp_path / "cache")
    dp.load()
    try:
        yield dp
    finally:
        dp.close()
