"""The file_open hook in the kernel: an exact-path verdict denies, records or stays out of the way.

Runs where BPF-LSM programs load (the QEMU guests); the host skips it with the probe's reason.
Only tasks moved into a cgroup the test created are governed.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.lsm import abi
from guard.lsm.bcc_backend import BccDataPlane
from tests.privileged.scoping import open_in

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]

RULE = 7


@pytest.fixture
def target() -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="guard-secret-")
    os.write(fd, b"secret\n")
    os.close(fd)
    path = Path(name).resolve()
    yield path
    path.unlink()


def test_enforce_detect_off_and_out_of_scope(plane: BccDataPlane, scope: Path, target: Path) -> None:
    hook = abi.HookId.FILE_OPEN
    assert open_in(scope, target) == 0  # attached, but maps empty: allow
    plane.add_scope_cgroup(scope.stat().st_ino)
    plane.deny_path(str(target), RULE)

    plane.configure({hook: abi.ModeId.ENFORCE}, agent_tgid=os.getpid())
    assert open_in(scope, target) == errno.EPERM
    assert open_in(None, target) == 0  # out of scope
    events = plane.poll_events()
    denied = [e for e in events if e.decision == abi.Decision.DENIED]
    assert len(denied) == 1
    assert (denied[0].rule_id, denied[0].hook, denied[0].path.decode()) == (RULE, hook, str(target))
    assert denied[0].cgroup_id == scope.stat().st_ino

    plane.configure({hook: abi.ModeId.DETECT}, agent_tgid=os.getpid())
    assert open_in(scope, target) == 0
    would = [e for e in plane.poll_events() if e.decision == abi.Decision.WOULD_BLOCK]
    # One open, but overlayfs (the guests' /tmp) runs file_open for the overlay file and again for
    # the real file under the same path: detect mode may see it twice; enforce stops at the first.
    assert 1 <= len(would) <= 2
    assert {e.path.decode() for e in would} == {str(target)}

    plane.configure({hook: abi.ModeId.OFF}, agent_tgid=os.getpid())
    before = plane.counters(hook)
    assert open_in(scope, target) == 0
    assert plane.counters(hook) == before  # off returns before counting
    assert plane.poll_events() == []

    counters = plane.counters(hook)
    assert counters[abi.Counter.DENIES] == 1
    assert counters[abi.Counter.WOULD_BLOCK] == len(would)
    assert counters[abi.Counter.CALLS] > 0


def test_abi_matches_the_compiled_side(plane: BccDataPlane) -> None:
    """bcc's ctypes types come from the compiled C structs: sizes and offsets must equal ours."""
    pairs = [
        ("guard_config", 1, abi.Config),
        ("guard_deny_paths", 0, abi.PathKey),
        ("guard_deny_paths", 1, abi.Verdict),
    ]
    for table, which, ours in pairs:
        theirs = plane.table_types(table)[which]
        assert ctypes_layout(theirs) == ctypes_layout(ours), table


def ctypes_layout(struct: type) -> tuple[int, list[tuple[str, int, int]]]:
    import ctypes

    fields = [
        (name, getattr(struct, name).offset, getattr(struct, name).size) for name, *_ in struct._fields_
    ]
    return ctypes.sizeof(struct), fields
