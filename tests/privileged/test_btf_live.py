"""guard.lsm.btf against the running kernel's /sys/kernel/btf/vmlinux."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from guard.errors import BtfLookupError
from guard.lsm.btf import DEFAULT_BTF_PATH, Btf, BtfKind, Param

pytestmark = pytest.mark.privileged


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    if not os.access(DEFAULT_BTF_PATH, os.R_OK):
        pytest.skip(f"{DEFAULT_BTF_PATH} is not readable (kernel without CONFIG_DEBUG_INFO_BTF?)")
    return Btf.from_file()


def test_parses_whole_vmlinux(vmlinux: Btf) -> None:
    assert vmlinux.source == DEFAULT_BTF_PATH
    assert vmlinux.type_count > 10_000
    # Every id renders (exercises every kind present in this kernel).
    for type_id in range(0, vmlinux.type_count + 1, 97):
        assert isinstance(vmlinux.render_type(type_id), str)


def test_file_f_path(vmlinux: Btf) -> None:
    located = vmlinux.member_offset("file", "f_path")
    assert located.size == 16
    assert located.type.endswith("struct path")  # "const struct path" since 6.x
    assert located.offset % 8 == 0
    assert 0 < located.offset < vmlinux.type_size("struct file")
    assert located.bitfield_size == 0


def test_path_members(vmlinux: Btf) -> None:
    assert vmlinux.type_size("struct path") == 16
    mnt = vmlinux.member_offset("path", "mnt")
    dentry = vmlinux.member_offset("path", "dentry")
    assert (mnt.offset, mnt.type) == (0, "struct vfsmount *")
    assert (dentry.offset, dentry.type) == (8, "struct dentry *")
    nested = vmlinux.offsetof("file", "f_path.dentry")
    assert nested == vmlinux.offsetof("file", "f_path") + 8


def test_through_pointer_is_an_error(vmlinux: Btf) -> None:
    with pytest.raises(BtfLookupError, match="pointer"):
        vmlinux.member_offset("file", "f_path.dentry.d_inode")


def test_task_struct_pid_tgid(vmlinux: Btf) -> None:
    pid = vmlinux.member_offset("task_struct", "pid")
    tgid = vmlinux.member_offset("task_struct", "tgid")
    assert pid.size == tgid.size == 4
    assert pid.type == tgid.type == "pid_t"
    assert tgid.offset == pid.offset + 4
    assert tgid.offset + 4 <= vmlinux.type_size("task_struct")
    assert vmlinux.type_size("pid_t") == 4


def test_task_struct_comm_and_cred(vmlinux: Btf) -> None:
    comm = vmlinux.member_offset("struct task_struct", "comm")
    assert comm.type == "char[16]"
    assert comm.size == 16
    assert vmlinux.member_offset("task_struct", "cred").type == "const struct cred *"


def test_linux_binprm_file(vmlinux: Btf) -> None:
    located = vmlinux.member_offset("linux_binprm", "file")
    assert located.type == "struct file *"
    assert located.size == 8
    assert located.offset % 8 == 0


def test_sock_common_skc_family(vmlinux: Btf) -> None:
    located = vmlinux.member_offset("sock_common", "skc_family")
    assert located.size == 2
    assert located.bitfield_size == 0
    # struct sock starts with its sock_common, so the offset is the same through __sk_common.
    assert vmlinux.offsetof("sock", "__sk_common.skc_family") == located.offset


def test_sockaddr_in6_addr(vmlinux: Btf) -> None:
    located = vmlinux.member_offset("sockaddr_in6", "sin6_addr.in6_u.u6_addr32")
    assert (located.offset, located.size) == (8, 16)
    assert vmlinux.type_size("struct sockaddr_in6") == 28


def test_type_sizes(vmlinux: Btf) -> None:
    assert vmlinux.type_size("u32") == 4
    assert vmlinux.type_size("u64") == 8
    assert vmlinux.type_size("int") == 4
    assert vmlinux.type_size("struct file *") == 8


@pytest.mark.parametrize(
    ("hook", "params"),
    [
        ("bprm_check_security", ["struct linux_binprm *"]),
        ("file_open", ["struct file *"]),
        ("socket_connect", ["struct socket *", "struct sockaddr *", "int"]),
        ("ptrace_access_check", ["struct task_struct *", "unsigned int"]),
    ],
)
def test_lsm_hooks(vmlinux: Btf, hook: str, params: list[str]) -> None:
    proto = vmlinux.lsm_hook(hook)
    assert proto.name == f"bpf_lsm_{hook}"
    assert proto.return_type == "int"
    assert [p.type for p in proto.params] == params
    assert all(isinstance(p, Param) and p.name for p in proto.params)
    func_id = vmlinux.func_id(f"bpf_lsm_{hook}")
    assert vmlinux.kind_of(func_id) is BtfKind.FUNC
    assert vmlinux.name_of(func_id) == f"bpf_lsm_{hook}"
    assert proto.render().startswith(f"int bpf_lsm_{hook}(")


def test_missing_lsm_hook(vmlinux: Btf) -> None:
    with pytest.raises(BtfLookupError, match="no LSM hook 'no_such_hook'"):
        vmlinux.lsm_hook("no_such_hook")


@pytest.fixture(scope="module")
def bpftool_types() -> list[dict[str, Any]]:
    """The kernel's BTF as bpftool (libbpf) reads it: an independent oracle for our reader."""
    out = subprocess.run(
        ["bpftool", "-j", "btf", "dump", "file", DEFAULT_BTF_PATH],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    types: list[dict[str, Any]] = json.loads(out.stdout)["types"]
    return types


def test_agrees_with_bpftool_on_every_struct_member_and_size(
    vmlinux: Btf, bpftool_types: list[dict[str, Any]]
) -> None:
    assert len(bpftool_types) == vmlinux.type_count
    structs = [t for t in bpftool_types if t["kind"] in ("STRUCT", "UNION")]
    assert len(structs) > 1000
    checked = 0
    for t in structs:
        type_id = int(t["id"])
        assert vmlinux.kind_of(type_id).name == t["kind"]
        assert vmlinux.name_of(type_id) == t["name"].replace("(anon)", "")
        ours = vmlinux.members_of(type_id)
        assert [(m.name, m.type_id, m.bit_offset) for m in ours] == [
            (m["name"].replace("(anon)", ""), m["type_id"], m["bits_offset"]) for m in t["members"]
        ], t["name"]
        checked += len(ours)
    assert checked > 10_000


def test_agrees_with_bpftool_on_lsm_hook_ids(vmlinux: Btf, bpftool_types: list[dict[str, Any]]) -> None:
    lsm_funcs = {
        t["name"]: int(t["id"])
        for t in bpftool_types
        if t["kind"] == "FUNC" and t["name"].startswith("bpf_lsm_")
    }
    assert len(lsm_funcs) > 100
    for name, type_id in lsm_funcs.items():
        assert vmlinux.func_id(name) == type_id
