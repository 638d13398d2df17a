"""ctypes mirror of bpf/include/guard_abi.h (a test compares sizes and offsets with the C side)."""

from __future__ import annotations

import ctypes
import enum
from typing import Final

__all__ = [
    "COMM_LEN",
    "PATH_MAX",
    "Config",
    "Counter",
    "Decision",
    "Event",
    "HookId",
    "InodeKey",
    "ModeId",
    "PathKey",
    "Verdict",
]

PATH_MAX: Final = 256
COMM_LEN: Final = 16


class HookId(enum.IntEnum):
    """``enum guard_hook``."""

    EXEC = 0
    FILE_OPEN = 1
    CONNECT = 2
    PTRACE = 3


HOOK_COUNT: Final = 4


class ModeId(enum.IntEnum):
    """``enum guard_mode``."""

    OFF = 0
    DETECT = 1
    ENFORCE = 2


class Decision(enum.IntEnum):
    """``enum guard_decision``."""

    ALLOWED = 0
    DENIED = 1
    WOULD_BLOCK = 2


class Counter(enum.IntEnum):
    """``enum guard_counter``."""

    CALLS = 0
    DENIES = 1
    WOULD_BLOCK = 2
    RINGBUF_DROPS = 3
    PATH_TOO_LONG = 4


COUNTER_COUNT: Final = 5


class Config(ctypes.Structure):
    """``struct guard_config``."""

    _fields_ = (
        ("mode", ctypes.c_uint32 * HOOK_COUNT),
        ("agent_tgid", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    )


class PathKey(ctypes.Structure):
    """``struct guard_path_key``."""

    _fields_ = (("path", ctypes.c_char * PATH_MAX),)


class InodeKey(ctypes.Structure):
    """``struct guard_inode_key``."""

    _fields_ = (("dev", ctypes.c_uint64), ("ino", ctypes.c_uint64))


class Verdict(ctypes.Structure):
    """``struct guard_verdict``."""

    _fields_ = (("rule_id", ctypes.c_uint32), ("flags", ctypes.c_uint32))


class Event(ctypes.Structure):
    """``struct guard_event``."""

    _fields_ = (
        ("ts_ns", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("hook", ctypes.c_uint32),
        ("decision", ctypes.c_uint32),
        ("rule_id", ctypes.c_uint32),
        ("pid", ctypes.c_uint32),
        ("tgid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("dev", ctypes.c_uint64),
        ("ino", ctypes.c_uint64),
        ("comm", ctypes.c_char * COMM_LEN),
        ("path", ctypes.c_char * PATH_MAX),
    )
