"""The raw ``bpf(2)`` and ``landlock_create_ruleset(2)`` system calls, through ctypes.

Used by the kernel probe to load hand-assembled no-op programs, so that what the
kernel says (the errno and the verifier log) reaches the operator unchanged. bcc
maps every EPERM at load to "Need super-user privileges", which hides the real
cause; this module never does.

Attribute layouts follow ``union bpf_attr`` in ``include/uapi/linux/bpf.h``. The
buffers are larger than any single command needs; the kernel accepts a larger
attribute as long as the tail it does not know is zero.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import enum
import errno as errno_mod
import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from guard.errors import BpfLoadError, SyscallError

__all__ = [
    "AttachType",
    "BpfCmd",
    "Insn",
    "MapInfo",
    "MapType",
    "ProgStats",
    "ProgType",
    "call_helper",
    "close_fd",
    "enable_stats",
    "exit_insn",
    "jne_reg",
    "landlock_abi_version",
    "ld_imm64",
    "map_create",
    "map_delete_elem",
    "map_info",
    "map_keys",
    "map_lookup_elem",
    "map_update_elem",
    "mov64_imm",
    "obj_get",
    "owned_fd",
    "prog_attach",
    "prog_detach",
    "prog_load",
    "prog_stats",
    "raw_tracepoint_open",
]

_SYS_BPF: Final = 321  # x86_64
_SYS_LANDLOCK_CREATE_RULESET: Final = 444
_LANDLOCK_CREATE_RULESET_VERSION: Final = 1
_ATTR_SIZE: Final = 160
_LOG_SIZE: Final = 64 * 1024

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class BpfCmd(enum.IntEnum):
    """``enum bpf_cmd`` values used here."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_GET_FD_BY_ID = 13
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    ENABLE_STATS = 32


class ProgType(enum.IntEnum):
    """``enum bpf_prog_type`` values used here."""

    SOCKET_FILTER = 1
    RAW_TRACEPOINT = 17
    CGROUP_SOCK_ADDR = 18
    TRACING = 26
    LSM = 29


class AttachType(enum.IntEnum):
    """``enum bpf_attach_type`` values used here."""

    NONE = 0
    CGROUP_INET4_CONNECT = 10
    CGROUP_INET6_CONNECT = 11
    CGROUP_UDP4_SENDMSG = 14
    CGROUP_UDP6_SENDMSG = 15
    TRACE_RAW_TP = 23
    LSM_MAC = 27


class MapType(enum.IntEnum):
    """``enum bpf_map_type`` values used here."""

    HASH = 1
    ARRAY = 2
    RINGBUF = 27


def errno_name(err: int) -> str:
    """Return the symbolic name of an errno (``EPERM``), or its number."""
    return errno_mod.errorcode.get(err, str(err))


@dataclass(frozen=True, slots=True)
class Insn:
    """One eBPF instruction."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        """Return the 8-byte encoding (little-endian host)."""
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)


def mov64_imm(dst: int, imm: int) -> Insn:
    """``dst = imm`` (BPF_ALU64 | BPF_MOV | BPF_K)."""
    return Insn(0xB7, dst=dst, imm=imm)


def call_helper(helper_id: int) -> Insn:
    """Call a BPF helper by id (BPF_JMP | BPF_CALL)."""
    return Insn(0x85, imm=helper_id)


def ld_imm64(dst: int, imm: int) -> tuple[Insn, Insn]:
    """``dst = imm`` for a 64-bit immediate (BPF_LD | BPF_DW | BPF_IMM: two instruction slots)."""
    low, high = imm & 0xFFFFFFFF, (imm >> 32) & 0xFFFFFFFF
    return Insn(0x18, dst=dst, imm=low - (1 << 32) if low >= 1 << 31 else low), Insn(
        0, imm=high - (1 << 32) if high >= 1 << 31 else high
    )


def jne_reg(dst: int, src: int, off: int) -> Insn:
    """``if dst != src goto +off`` (BPF_JMP | BPF_JNE | BPF_X)."""
    return Insn(0x5D, dst=dst, src=src, off=off)


def exit_insn() -> Insn:
    """Return from the program (BPF_JMP | BPF_EXIT)."""
    return Insn(0x95)


def _bpf(cmd: BpfCmd, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    ret = _syscall(_SYS_BPF, int(cmd), attr, len(attr))
    if ret < 0:
        raise SyscallError(what, ctypes.get_errno())
    return int(ret)


def _attr() -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(_ATTR_SIZE)


def _addr(buf: ctypes.Array[ctypes.c_char]) -> int:
    return ctypes.addressof(buf)


def close_fd(fd: int) -> None:
    """Close a BPF object fd, ignoring errors (used on cleanup paths)."""
    with contextlib.suppress(OSError):
        os.close(fd)


def prog_load(
    prog_type: ProgType,
    insns: Sequence[Insn],
    *,
    name: str = "guard_probe",
    license: str = "GPL",
    expected_attach_type: AttachType = AttachType.NONE,
    attach_btf_id: int = 0,
) -> int:
    """Load a program and return its fd; raise :class:`BpfLoadError` with the errno and verifier log."""
    code = b"".join(i.encode() for i in insns)
    code_buf = ctypes.create_string_buffer(code, len(code))
    lic_buf = ctypes.create_string_buffer(license.encode())
    log_buf = ctypes.create_string_buffer(_LOG_SIZE)
    attr = _attr()
    struct.pack_into("<IIQQII", attr, 0, prog_type, len(insns), _addr(code_buf), _addr(lic_buf), 1, _LOG_SIZE)
    struct.pack_into("<Q", attr, 32, _addr(log_buf))
    struct.pack_into("16s", attr, 48, name.encode()[:15])
    struct.pack_into("<I", attr, 68, expected_attach_type)
    struct.pack_into("<I", attr, 108, attach_btf_id)
    what = f"BPF_PROG_LOAD({prog_type.name}"
    if attach_btf_id:
        what += f", attach_btf_id={attach_btf_id}"
    what += ")"
    try:
        return _bpf(BpfCmd.PROG_LOAD, attr, what)
    except SyscallError as exc:
        log = log_buf.value.decode(errors="replace").strip()
        raise BpfLoadError(str(exc), errno=exc.errno, verifier_log=log) from exc


def map_create(map_type: MapType, key_size: int, value_size: int, max_entries: int, *, name: str = "") -> int:
    """Create a map and return its fd."""
    attr = _attr()
    struct.pack_into("<IIIII", attr, 0, map_type, key_size, value_size, max_entries, 0)
    struct.pack_into("16s", attr, 28, name.encode()[:15])
    return _bpf(BpfCmd.MAP_CREATE, attr, f"BPF_MAP_CREATE({map_type.name})")


def obj_get(path: str | os.PathLike[str]) -> int:
    """Open a pinned BPF object (``BPF_OBJ_GET``) read-write; return its fd."""
    name = ctypes.create_string_buffer(os.fsencode(path))
    attr = _attr()
    struct.pack_into("<QII", attr, 0, _addr(name), 0, 0)
    return _bpf(BpfCmd.OBJ_GET, attr, f"BPF_OBJ_GET({os.fsdecode(path)})")


def _elem_attr(
    map_fd: int, key: bytes, value: ctypes.Array[ctypes.c_char] | None, flags: int = 0
) -> tuple[ctypes.Array[ctypes.c_char], ctypes.Array[ctypes.c_char]]:
    key_buf = ctypes.create_string_buffer(key, len(key))
    attr = _attr()
    struct.pack_into(
        "<IIQQQ", attr, 0, map_fd, 0, _addr(key_buf), _addr(value) if value is not None else 0, flags
    )
    return attr, key_buf


def map_lookup_elem(map_fd: int, key: bytes, value_size: int) -> bytes | None:
    """Return a map entry's value (``BPF_MAP_LOOKUP_ELEM``), or None when the key is absent."""
    value = ctypes.create_string_buffer(value_size)
    attr, _key = _elem_attr(map_fd, key, value)
    try:
        _bpf(BpfCmd.MAP_LOOKUP_ELEM, attr, "BPF_MAP_LOOKUP_ELEM")
    except SyscallError as exc:
        if exc.errno == errno_mod.ENOENT:
            return None
        raise
    return value.raw


def map_update_elem(map_fd: int, key: bytes, value: bytes) -> None:
    """Write one map entry (``BPF_MAP_UPDATE_ELEM``, ``BPF_ANY``): a single atomic update."""
    buf = ctypes.create_string_buffer(value, len(value))
    attr, _key = _elem_attr(map_fd, key, buf)
    _bpf(BpfCmd.MAP_UPDATE_ELEM, attr, "BPF_MAP_UPDATE_ELEM")


def map_delete_elem(map_fd: int, key: bytes) -> bool:
    """Delete a map entry (``BPF_MAP_DELETE_ELEM``); return False when it was absent."""
    attr, _key = _elem_attr(map_fd, key, None)
    try:
        _bpf(BpfCmd.MAP_DELETE_ELEM, attr, "BPF_MAP_DELETE_ELEM")
    except SyscallError as exc:
        if exc.errno == errno_mod.ENOENT:
            return False
        raise
    return True


def map_keys(map_fd: int, key_size: int) -> list[bytes]:
    """Return every key of a hash map (``BPF_MAP_GET_NEXT_KEY`` from no key)."""
    keys: list[bytes] = []
    next_key = ctypes.create_string_buffer(key_size)
    key: bytes | None = None
    while True:
        key_buf = ctypes.create_string_buffer(key, key_size) if key is not None else None
        attr = _attr()
        struct.pack_into(
            "<IIQQ", attr, 0, map_fd, 0, _addr(key_buf) if key_buf is not None else 0, _addr(next_key)
        )
        try:
            _bpf(BpfCmd.MAP_GET_NEXT_KEY, attr, "BPF_MAP_GET_NEXT_KEY")
        except SyscallError as exc:
            if exc.errno == errno_mod.ENOENT:
                return keys
            raise
        key = next_key.raw
        keys.append(key)


@dataclass(frozen=True, slots=True)
class MapInfo:
    """What ``struct bpf_map_info`` says about a map."""

    map_type: int
    map_id: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


def map_info(map_fd: int) -> MapInfo:
    """Return a map's type, id, key and value sizes, capacity and name (``BPF_OBJ_GET_INFO_BY_FD``)."""
    info = ctypes.create_string_buffer(80)
    attr = _attr()
    struct.pack_into("<IIQ", attr, 0, map_fd, len(info), _addr(info))
    _bpf(BpfCmd.OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD(map)")
    map_type, ident, key_size, value_size, max_entries = struct.unpack_from("<IIIII", info, 0)
    name = info.raw[24:40].split(b"\0", 1)[0].decode(errors="replace")
    return MapInfo(map_type, ident, key_size, value_size, max_entries, name)


def raw_tracepoint_open(prog_fd: int, tracepoint: str | None) -> int:
    """Attach a raw tracepoint (or, with ``None``, a BTF-typed LSM/tracing program); return the link fd."""
    attr = _attr()
    name_buf = ctypes.create_string_buffer(tracepoint.encode()) if tracepoint is not None else None
    struct.pack_into("<QI", attr, 0, _addr(name_buf) if name_buf is not None else 0, prog_fd)
    return _bpf(BpfCmd.RAW_TRACEPOINT_OPEN, attr, f"BPF_RAW_TRACEPOINT_OPEN({tracepoint or 'btf'})")


#: ``BPF_F_ALLOW_MULTI``: a cgroup runs every attached program (a program attached below runs too).
F_ALLOW_MULTI: Final = 2


def prog_attach(prog_fd: int, target_fd: int, attach_type: AttachType, flags: int = 0) -> None:
    """Attach a program to a target (a cgroup directory fd) with ``BPF_PROG_ATTACH``."""
    attr = _attr()
    struct.pack_into("<IIII", attr, 0, target_fd, prog_fd, attach_type, flags)
    _bpf(BpfCmd.PROG_ATTACH, attr, f"BPF_PROG_ATTACH({attach_type.name})")


def prog_detach(prog_fd: int, target_fd: int, attach_type: AttachType) -> None:
    """Detach a program from a target with ``BPF_PROG_DETACH``."""
    attr = _attr()
    struct.pack_into("<IIII", attr, 0, target_fd, prog_fd, attach_type, 0)
    _bpf(BpfCmd.PROG_DETACH, attr, f"BPF_PROG_DETACH({attach_type.name})")


def prog_query(target_fd: int, attach_type: AttachType, *, max_ids: int = 64) -> list[int]:
    """Return the ids of the programs attached to a target (a cgroup fd) for one attach type."""
    ids = (ctypes.c_uint32 * max_ids)()
    attr = _attr()
    struct.pack_into("<IIIIQI", attr, 0, target_fd, attach_type, 0, 0, ctypes.addressof(ids), max_ids)
    _bpf(BpfCmd.PROG_QUERY, attr, f"BPF_PROG_QUERY({attach_type.name})")
    (count,) = struct.unpack_from("<I", attr, 24)
    return [int(ids[i]) for i in range(min(count, max_ids))]


def prog_get_fd_by_id(prog_id: int) -> int:
    """Return a new fd for a loaded program, by id (``BPF_PROG_GET_FD_BY_ID``)."""
    attr = _attr()
    struct.pack_into("<I", attr, 0, prog_id)
    return _bpf(BpfCmd.PROG_GET_FD_BY_ID, attr, f"BPF_PROG_GET_FD_BY_ID({prog_id})")


@dataclass(frozen=True, slots=True)
class ProgStats:
    """A program's cumulative run time and run count (counted while BPF stats are enabled)."""

    run_time_ns: int
    run_cnt: int


#: ``struct bpf_prog_info``: run_time_ns and run_cnt, and the size up to their end.
_INFO_RUN_TIME_NS: Final = 192
_INFO_LEN: Final = 208


def enable_stats() -> int:
    """Turn on run-time statistics for every program (``BPF_ENABLE_STATS``) until the fd is closed."""
    attr = _attr()
    struct.pack_into("<I", attr, 0, 0)  # BPF_STATS_RUN_TIME
    return _bpf(BpfCmd.ENABLE_STATS, attr, "BPF_ENABLE_STATS(RUN_TIME)")


def prog_stats(prog_fd: int) -> ProgStats:
    """Read a program's run time and count (``BPF_OBJ_GET_INFO_BY_FD``)."""
    info = ctypes.create_string_buffer(_INFO_LEN)
    attr = _attr()
    struct.pack_into("<IIQ", attr, 0, prog_fd, _INFO_LEN, _addr(info))
    _bpf(BpfCmd.OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD(prog)")
    run_time_ns, run_cnt = struct.unpack_from("<QQ", info, _INFO_RUN_TIME_NS)
    return ProgStats(run_time_ns, run_cnt)


#: ``struct bpf_prog_info``: id at 4, name (16 bytes) at 64.
_INFO_ID: Final = 4
_INFO_NAME: Final = 64
#: ``nr_map_ids`` (u32) at 52, ``map_ids`` (u64 pointer) at 56.
_INFO_NR_MAP_IDS: Final = 52


def prog_map_ids(prog_fd: int, *, max_ids: int = 64) -> list[int]:
    """Return the ids of the maps a program uses (``BPF_OBJ_GET_INFO_BY_FD``)."""
    ids = (ctypes.c_uint32 * max_ids)()
    info = ctypes.create_string_buffer(_INFO_LEN)
    struct.pack_into("<IQ", info, _INFO_NR_MAP_IDS, max_ids, ctypes.addressof(ids))
    attr = _attr()
    struct.pack_into("<IIQ", attr, 0, prog_fd, _INFO_LEN, _addr(info))
    _bpf(BpfCmd.OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD(prog)")
    (count,) = struct.unpack_from("<I", info, _INFO_NR_MAP_IDS)
    return [int(ids[i]) for i in range(min(count, max_ids))]


def map_id(map_fd: int) -> int:
    """Return a map's id (``BPF_OBJ_GET_INFO_BY_FD`` on ``struct bpf_map_info``)."""
    info = ctypes.create_string_buffer(80)
    attr = _attr()
    struct.pack_into("<IIQ", attr, 0, map_fd, len(info), _addr(info))
    _bpf(BpfCmd.OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD(map)")
    (ident,) = struct.unpack_from("<I", info, 4)
    return int(ident)


def prog_identity(prog_fd: int) -> tuple[int, str]:
    """Return a program's (id, name) (``BPF_OBJ_GET_INFO_BY_FD``)."""
    info = ctypes.create_string_buffer(_INFO_LEN)
    attr = _attr()
    struct.pack_into("<IIQ", attr, 0, prog_fd, _INFO_LEN, _addr(info))
    _bpf(BpfCmd.OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD(prog)")
    (prog_id,) = struct.unpack_from("<I", info, _INFO_ID)
    name = info.raw[_INFO_NAME : _INFO_NAME + 16].split(b"\0", 1)[0].decode(errors="replace")
    return int(prog_id), name


@contextmanager
def owned_fd(fd: int) -> Iterator[int]:
    """Close ``fd`` when the block ends."""
    try:
        yield fd
    finally:
        close_fd(fd)


def landlock_abi_version() -> int:
    """Return the Landlock ABI version; raise :class:`SyscallError` (ENOSYS, EOPNOTSUPP) when absent."""
    flags = ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION)
    ret = _syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), flags)
    if ret < 0:
        raise SyscallError("landlock_create_ruleset(VERSION)", ctypes.get_errno())
    return int(ret)
