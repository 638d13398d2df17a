"""A minimal BPF-LSM program denies file_open for tasks in a test cgroup, and only there.

This is the smallest proof that the kernel enforces a BPF-LSM verdict: an allow-all program is
not enough. The program (hand-assembled, no compiler) is

    r0 = bpf_get_current_cgroup_id()
    r1 = <id of the test cgroup>
    if r0 != r1 goto allow
    return -EPERM
    allow: return 0

Only tasks the test moves into the cgroup it created are denied; the test process itself is
outside it and keeps opening files, as does everything else on the machine.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from guard.lsm import bpfsys
from guard.lsm.btf import Btf
from guard.lsm.probe import ProbeReport
from guard.model import Hook

pytestmark = [pytest.mark.privileged, pytest.mark.requires_feature("lsm_program")]

_BPF_FUNC_GET_CURRENT_CGROUP_ID = 80
TARGET = "/etc/hostname" if Path("/etc/hostname").exists() else "/proc/self/status"


@contextmanager
def scoped_cgroup() -> Iterator[Path]:
    root = next(
        Path(line.split()[4])
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if " - cgroup2 " in line
    )
    cg = root / f"guard-test-{os.getpid()}"
    cg.mkdir()
    try:
        yield cg
    finally:
        cg.rmdir()


def deny_in_cgroup_program(cgroup_id: int) -> list[bpfsys.Insn]:
    return [
        bpfsys.call_helper(_BPF_FUNC_GET_CURRENT_CGROUP_ID),
        *bpfsys.ld_imm64(1, cgroup_id),
        bpfsys.jne_reg(0, 1, 2),
        bpfsys.mov64_imm(0, -errno.EPERM),
        bpfsys.exit_insn(),
        bpfsys.mov64_imm(0, 0),
        bpfsys.exit_insn(),
    ]


def open_from_cgroup(cg: Path) -> int:
    """Fork a child that joins ``cg`` and opens TARGET; return the errno it saw (0 = opened)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: join the cgroup, try the open, report, exit without cleanup
        code = 0
        try:
            (cg / "cgroup.procs").write_text("0")
            os.close(os.open(TARGET, os.O_RDONLY))
        except OSError as exc:
            code = exc.errno or 255
        os.write(write_fd, code.to_bytes(2, "little"))
        os._exit(0)
    os.close(write_fd)
    data = os.read(read_fd, 2)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return int.from_bytes(data, "little")


def test_lsm_program_denies_only_inside_its_cgroup(probe_report: ProbeReport) -> None:
    btf = Btf.from_file()
    with scoped_cgroup() as cg:
        cgroup_id = cg.stat().st_ino  # a cgroup v2 id is its directory's inode number
        assert open_from_cgroup(cg) == 0, "the cgroup denies before any program is loaded"
        prog = bpfsys.prog_load(
            bpfsys.ProgType.LSM,
            deny_in_cgroup_program(cgroup_id),
            name="guard_test_deny",
            expected_attach_type=bpfsys.AttachType.LSM_MAC,
            attach_btf_id=btf.func_id(Hook.FILE_OPEN.lsm_function),
        )
        with bpfsys.owned_fd(prog):
            link = bpfsys.raw_tracepoint_open(prog, None)
            try:
                assert open_from_cgroup(cg) == errno.EPERM
                # Outside the scope, the same open succeeds while the program is attached.
                os.close(os.open(TARGET, os.O_RDONLY))
            finally:
                bpfsys.close_fd(link)
        assert open_from_cgroup(cg) == 0, "the deny outlived its program"
