"""The BPF C sources as bcc is given them: where they are, one assembled text, and the -D offset flags.

bcc rewrites map methods (``table.lookup(...)``) only in its main file, so :func:`assemble_source`
performs the textual inclusion of our own quoted ``#include "..."`` lines itself (exactly what the
preprocessor would do, with ``#line`` markers so diagnostics still name the original files). Struct
offsets are never taken from kernel headers: :func:`offset_flags` reads them from the running
kernel's BTF.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from guard.errors import BpfLoadError
from guard.lsm.btf import Btf

__all__ = [
    "COMPAT_OFFSETS",
    "OFFSETS",
    "PROC_OFFSETS",
    "WALK_OFFSETS",
    "assemble_source",
    "bpf_source_dir",
    "offset_flags",
]

#: (macro, struct, member path) for every struct offset the C code reads.
OFFSETS = (
    ("GUARD_OFF_FILE_F_PATH", "file", "f_path"),
    ("GUARD_OFF_FILE_F_INODE", "file", "f_inode"),
    ("GUARD_OFF_BINPRM_FILE", "linux_binprm", "file"),
    ("GUARD_OFF_INODE_I_INO", "inode", "i_ino"),
    ("GUARD_OFF_INODE_I_SB", "inode", "i_sb"),
    ("GUARD_OFF_SB_S_DEV", "super_block", "s_dev"),
    ("GUARD_OFF_TASK_TGID", "task_struct", "tgid"),
    ("GUARD_OFF_TASK_PID", "task_struct", "pid"),
    ("GUARD_OFF_MSGHDR_MSG_NAME", "msghdr", "msg_name"),
    ("GUARD_OFF_MSGHDR_MSG_NAMELEN", "msghdr", "msg_namelen"),
    ("GUARD_OFF_FILE_F_MODE", "file", "f_mode"),
    ("GUARD_OFF_INODE_I_MODE", "inode", "i_mode"),
    ("GUARD_OFF_TASK_REAL_PARENT", "task_struct", "real_parent"),
    ("GUARD_OFF_TASK_GROUP_LEADER", "task_struct", "group_leader"),
    ("GUARD_OFF_TASK_START_TIME", "task_struct", "start_time"),
    ("GUARD_OFF_TASK_MM", "task_struct", "mm"),
    ("GUARD_OFF_MM_EXE_FILE", "mm_struct", "exe_file"),
)

#: The dentry and mount walk's offsets (bpf/include/guard_walk.h): compat file hooks, LSM chmod events.
WALK_OFFSETS = (
    ("GUARD_OFF_PATH_MNT", "path", "mnt"),
    ("GUARD_OFF_PATH_DENTRY", "path", "dentry"),
    ("GUARD_OFF_VFSMOUNT_MNT_ROOT", "vfsmount", "mnt_root"),
    ("GUARD_OFF_MOUNT_MNT", "mount", "mnt"),
    ("GUARD_OFF_MOUNT_MNT_PARENT", "mount", "mnt_parent"),
    ("GUARD_OFF_MOUNT_MNT_MOUNTPOINT", "mount", "mnt_mountpoint"),
    ("GUARD_OFF_DENTRY_D_PARENT", "dentry", "d_parent"),
    ("GUARD_OFF_DENTRY_D_NAME", "dentry", "d_name"),
    ("GUARD_OFF_QSTR_LEN", "qstr", "len"),
    ("GUARD_OFF_QSTR_NAME", "qstr", "name"),
    ("GUARD_OFF_DENTRY_D_INODE", "dentry", "d_inode"),
    ("GUARD_OFF_TASK_FS", "task_struct", "fs"),
    ("GUARD_OFF_FS_ROOT", "fs_struct", "root"),
)

#: The process events' offsets (bpf/hooks/process.bpf.c), both planes.
PROC_OFFSETS = (
    ("GUARD_OFF_TASK_CRED", "task_struct", "cred"),
    ("GUARD_OFF_TASK_SIGNAL", "task_struct", "signal"),
    ("GUARD_OFF_TASK_COMM", "task_struct", "comm"),
    ("GUARD_OFF_TASK_EXIT_CODE", "task_struct", "exit_code"),
    ("GUARD_OFF_CRED_UID", "cred", "uid"),
    ("GUARD_OFF_CRED_EUID", "cred", "euid"),
    ("GUARD_OFF_CRED_SUID", "cred", "suid"),
    ("GUARD_OFF_CRED_GID", "cred", "gid"),
    ("GUARD_OFF_CRED_EGID", "cred", "egid"),
    ("GUARD_OFF_CRED_SGID", "cred", "sgid"),
    ("GUARD_OFF_CRED_CAP_EFFECTIVE", "cred", "cap_effective"),
    ("GUARD_OFF_CRED_CAP_PERMITTED", "cred", "cap_permitted"),
    ("GUARD_OFF_SIGNAL_PIDS", "signal_struct", "pids"),
    ("GUARD_OFF_SIGNAL_TTY", "signal_struct", "tty"),
    ("GUARD_OFF_SIGNAL_LIVE", "signal_struct", "live"),
    ("GUARD_OFF_PID_NUMBERS", "pid", "numbers"),
    ("GUARD_OFF_UPID_NR", "upid", "nr"),
    ("GUARD_OFF_TTY_INDEX", "tty_struct", "index"),
    ("GUARD_OFF_TTY_DRIVER", "tty_struct", "driver"),
    ("GUARD_OFF_TTY_DRIVER_MAJOR", "tty_driver", "major"),
    ("GUARD_OFF_TTY_DRIVER_MINOR_START", "tty_driver", "minor_start"),
    ("GUARD_OFF_FS_PWD", "fs_struct", "pwd"),
    ("GUARD_OFF_MM_ARG_START", "mm_struct", "arg_start"),
    ("GUARD_OFF_MM_ARG_END", "mm_struct", "arg_end"),
    ("GUARD_OFF_MM_ENV_START", "mm_struct", "env_start"),
    ("GUARD_OFF_MM_ENV_END", "mm_struct", "env_end"),
    ("GUARD_OFF_BINPRM_ARGC", "linux_binprm", "argc"),
    ("GUARD_OFF_PT_REGS_DX", "pt_regs", "dx"),
    ("GUARD_OFF_PT_REGS_R10", "pt_regs", "r10"),
    ("GUARD_OFF_PT_REGS_R8", "pt_regs", "r8"),
    ("GUARD_OFF_FILE_PRIVATE_DATA", "file", "private_data"),
    ("GUARD_OFF_SOCKET_SK", "socket", "sk"),
    ("GUARD_OFF_SKC_FAMILY", "sock_common", "skc_family"),
    ("GUARD_OFF_SKC_NUM", "sock_common", "skc_num"),
    ("GUARD_OFF_SKC_DPORT", "sock_common", "skc_dport"),
    ("GUARD_OFF_SKC_RCV_SADDR", "sock_common", "skc_rcv_saddr"),
    ("GUARD_OFF_SKC_DADDR", "sock_common", "skc_daddr"),
    ("GUARD_OFF_SKC_V6_RCV_SADDR", "sock_common", "skc_v6_rcv_saddr"),
    ("GUARD_OFF_SKC_V6_DADDR", "sock_common", "skc_v6_daddr"),
)

#: The offsets the compat plane's fd-table read and syscall arguments need too.
COMPAT_OFFSETS = (
    ("GUARD_OFF_TASK_FILES", "task_struct", "files"),
    ("GUARD_OFF_FILES_FDT", "files_struct", "fdt"),
    ("GUARD_OFF_FDTABLE_FD", "fdtable", "fd"),
    ("GUARD_OFF_FDTABLE_MAX_FDS", "fdtable", "max_fds"),
    ("GUARD_OFF_PT_REGS_ORIG_AX", "pt_regs", "orig_ax"),
    ("GUARD_OFF_PT_REGS_DI", "pt_regs", "di"),
    ("GUARD_OFF_PT_REGS_SI", "pt_regs", "si"),
)


def bpf_source_dir() -> Path:
    """Find the BPF C sources: ``guard/_bpf`` in a wheel, or the repository's ``bpf/``."""
    packaged = Path(str(resources.files("guard"))) / "_bpf"
    if (packaged / "guard.bpf.c").exists():
        return packaged
    repo = Path(__file__).resolve().parents[2] / "bpf"
    if (repo / "guard.bpf.c").exists():
        return repo
    raise BpfLoadError("BPF sources not found (neither guard/_bpf nor the repository's bpf/)")


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def assemble_source(entry: Path) -> str:
    """Inline our own ``#include "file"`` lines (each file once) into one C text with #line markers."""
    seen: set[Path] = set()

    def expand(path: Path) -> list[str]:
        path = path.resolve()
        if path in seen:
            return []
        seen.add(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise BpfLoadError(f"{path}: cannot read BPF source: {exc.strerror}") from exc
        out = [f'#line 1 "{path}"']
        for number, line in enumerate(lines, 1):
            m = _INCLUDE.match(line)
            if m is None:
                out.append(line)
                continue
            out.extend(expand(path.parent / m.group(1)))
            out.append(f'#line {number + 1} "{path}"')
        return out

    return "\n".join(expand(entry)) + "\n"


def offset_flags(btf: Btf, offsets: tuple[tuple[str, str, str], ...] = OFFSETS) -> list[str]:
    """``-D`` flags with the running kernel's struct offsets."""
    return [f"-D{macro}={btf.offsetof(struct, member)}" for macro, struct, member in offsets]
