"""A file's identity as the kernel's hooks see it: (``i_sb->s_dev``, ``i_ino``) of its inode.

For most filesystems that is ``stat()``'s (st_dev through :func:`~guard.lsm.verdicts.kernel_dev`,
st_ino). Overlayfs differs: the inode a hook sees (an exec'd file's, an opener's executable, a
chmod's dentry) is the overlay's, on the overlay's superblock, while ``stat()`` of a non-directory
reports the device of the layer the file lives in (a per-layer pseudo device). The inode number is
the real one either way, and ``stat()`` of a directory does report the overlay's device, so on
overlayfs the identity is (the parent directory's st_dev, the file's st_ino).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import stat
from typing import Final

from guard.lsm.verdicts import kernel_dev

__all__ = ["OVERLAYFS_MAGIC", "file_identity", "fs_magic"]

OVERLAYFS_MAGIC: Final = 0x794C7630
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def fs_magic(path: str) -> int | None:
    """Return the filesystem type (``statfs.f_type``) a path lives on, or None when it cannot be read."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on x86-64; f_type comes first
    if _libc.statfs(os.fsencode(path), buf) != 0:
        return None
    return int(ctypes.c_long.from_buffer(buf).value) & 0xFFFFFFFF


def file_identity(path: str) -> tuple[int, int] | None:
    """Return (kernel dev_t, inode) of a file as the hooks see it, or None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    dev = st.st_dev
    if not stat.S_ISDIR(st.st_mode) and fs_magic(path) == OVERLAYFS_MAGIC:
        try:
            dev = os.stat(os.path.dirname(os.path.realpath(path)) or "/").st_dev
        except OSError:
            return None
    return kernel_dev(dev), st.st_ino
