"""The bcc loader's kernel-free parts: source assembly, the stub tree, offset flags (bcc not imported)."""

from __future__ import annotations

import sys
from pathlib import Path

from guard.lsm.btf import Btf
from guard.lsm.source import assemble_source, bpf_source_dir, offset_flags
from guard.lsm.stubtree import ensure_stub_tree
from tests.unit.lsm.btfblob import BtfBuilder


def test_assemble_inlines_our_includes_once_with_line_markers(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "a.h").write_text('#include "b.h"\nint a;\n')
    (tmp_path / "inc" / "b.h").write_text("int b;\n")
    (tmp_path / "main.c").write_text(
        '#include "inc/a.h"\n#include "inc/b.h"\n#include <linux/types.h>\nint main_;\n'
    )
    text = assemble_source(tmp_path / "main.c")
    lines = text.splitlines()
    assert lines.count("int b;") == 1
    assert "#include <linux/types.h>" in lines  # system includes stay for bcc
    assert f'#line 1 "{tmp_path / "inc" / "b.h"}"' in lines
    assert lines[-3:] == [f'#line 3 "{tmp_path / "main.c"}"', "#include <linux/types.h>", "int main_;"]


def test_the_shipped_sources_assemble() -> None:
    loaded_before = "bcc" in sys.modules  # a privileged session may have loaded a plane already
    text = assemble_source(bpf_source_dir() / "guard.bpf.c")
    assert "LSM_PROBE(file_open" in text
    assert "struct guard_event {" in text
    assert '#include "' not in text
    compat = assemble_source(bpf_source_dir() / "compat.bpf.c")
    assert "RAW_TRACEPOINT_PROBE(sched_process_exec)" in compat
    assert "int guard_connect4(struct bpf_sock_addr *ctx)" in compat
    assert "LSM_PROBE" not in compat
    assert '#include "' not in compat
    assert loaded_before or "bcc" not in sys.modules  # assembling never imports bcc


def test_stub_tree(tmp_path: Path) -> None:
    tree = ensure_stub_tree(tmp_path)
    assert (tree / "include/uapi/linux/bpf.h").read_text().startswith("/* empty")
    assert (tree / "include/uapi/linux/types.h").resolve() == Path("/usr/include/linux/types.h").resolve()
    assert "CONFIG_BPF_SYSCALL" in (tree / "include/linux/kconfig.h").read_text()
    stamp = (tree / ".stamp").stat().st_mtime_ns
    assert ensure_stub_tree(tmp_path) == tree
    assert (tree / ".stamp").stat().st_mtime_ns == stamp  # idempotent: not rebuilt


def test_offset_flags_come_from_btf() -> None:
    b = BtfBuilder()
    u64 = b.add_int("long long unsigned int", 8)
    u32 = b.add_int("unsigned int", 4)
    ptr = b.add_ptr(u64)
    path = b.add_struct("path", 16, [("mnt", u64, 0, 0), ("dentry", u64, 64, 0)])
    b.add_struct(
        "file",
        200,
        [
            ("f_count", u64, 0, 0),
            ("f_mode", u32, 12 * 8, 0),
            ("f_inode", ptr, 40 * 8, 0),
            ("f_path", path, 96 * 8, 0),
        ],
    )
    b.add_struct("linux_binprm", 100, [("buf", u64, 0, 0), ("file", ptr, 72 * 8, 0)])
    b.add_struct("inode", 600, [("i_mode", u32, 0, 0), ("i_sb", ptr, 48 * 8, 0), ("i_ino", u64, 80 * 8, 0)])
    b.add_struct("super_block", 900, [("s_list", u64, 0, 0), ("s_dev", u32, 20 * 8, 0)])
    b.add_struct(
        "task_struct",
        9000,
        [
            ("state", u64, 0, 0),
            ("pid", u32, 1500 * 8, 0),
            ("tgid", u32, 1504 * 8, 0),
            ("real_parent", ptr, 1512 * 8, 0),
            ("group_leader", ptr, 1528 * 8, 0),
            ("start_time", u64, 1800 * 8, 0),
            ("mm", ptr, 2000 * 8, 0),
        ],
    )
    b.add_struct("mm_struct", 1000, [("mmap", u64, 0, 0), ("exe_file", ptr, 880 * 8, 0)])
    b.add_struct("msghdr", 96, [("msg_name", ptr, 0, 0), ("msg_namelen", u32, 8 * 8, 0)])
    assert offset_flags(Btf.from_bytes(b.build())) == [
        "-DGUARD_OFF_FILE_F_PATH=96",
        "-DGUARD_OFF_FILE_F_INODE=40",
        "-DGUARD_OFF_BINPRM_FILE=72",
        "-DGUARD_OFF_INODE_I_INO=80",
        "-DGUARD_OFF_INODE_I_SB=48",
        "-DGUARD_OFF_SB_S_DEV=20",
        "-DGUARD_OFF_TASK_TGID=1504",
        "-DGUARD_OFF_TASK_PID=1500",
        "-DGUARD_OFF_MSGHDR_MSG_NAME=0",
        "-DGUARD_OFF_MSGHDR_MSG_NAMELEN=8",
        "-DGUARD_OFF_FILE_F_MODE=12",
        "-DGUARD_OFF_INODE_I_MODE=0",
        "-DGUARD_OFF_TASK_REAL_PARENT=1512",
        "-DGUARD_OFF_TASK_GROUP_LEADER=1528",
        "-DGUARD_OFF_TASK_START_TIME=1800",
        "-DGUARD_OFF_TASK_MM=2000",
        "-DGUARD_OFF_MM_EXE_FILE=880",
    ]
