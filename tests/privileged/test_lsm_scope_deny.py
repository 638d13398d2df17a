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
from pathlib import Path

import pytest

from guard.lsm import bpfsys
from guard.lsm.btf import Btf
from guard.lsm.probe import ProbeReport
from guard.model import Hook
from tests.privileged.scoping import open_in, scoped_cgroup

pytestmark = [pytest.mark.privileged, pytest.mark.requires_feature("lsm_program")]

_BPF_FUNC_GET_CURRENT_CGROUP_ID = 80
TARGET = "/etc/hostname" if Path("/etc/hostname").exists() else "/proc/self/status"


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


def test_lsm_program_denies_only_inside_its_cgroup(probe_report: ProbeReport) -> None:
    btf = Btf.from_file()
    with scoped_cgroup() as cg:
        cgroup_id = cg.stat().st_ino  # a cgroup v2 id is its directory's inode number
        assert open_in(cg, TARGET) == 0, "the cgroup denies before any program is loaded"
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
                assert open_in(cg, TARGET) == errno.EPERM
                # Outside the scope, the same open succeeds while the program is attached.
                os.close(os.open(TARGET, os.O_RDONLY))
            finally:
                bpfsys.close_fd(link)
        assert open_in(cg, TARGET) == 0, "the deny outlived its program"
