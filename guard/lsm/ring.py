"""Ring-buffer records to events: a record of the wrong size is counted, never dropped silently.

Every plane hands its raw records to a :class:`RingDecoder`. A record of another size means the
programs and :mod:`guard.lsm.abi` disagree on the event layout: it cannot be decoded, so it is
counted (``ring_bad_size``, in the plane's counters and the agent's status) and reported by one
warning, the first time.
"""

from __future__ import annotations

import ctypes
import heapq
from collections.abc import Sequence
from typing import Final

import structlog

from guard.lsm import abi

__all__ = [
    "EVENT_SIZE",
    "EXEC_EVENT_SIZE",
    "FILE_EVENT_SIZE",
    "NET_EVENT_SIZE",
    "PROC_EVENT_SIZE",
    "RingDecoder",
    "by_time",
    "in_order",
]

log = structlog.get_logger(__name__)

#: The size of every ring-buffer record the programs submit.
EVENT_SIZE: Final = ctypes.sizeof(abi.Event)
#: The sizes of the process ring's records: a fork or exit, and an exec.
PROC_EVENT_SIZE: Final = ctypes.sizeof(abi.ProcEvent)
EXEC_EVENT_SIZE: Final = ctypes.sizeof(abi.ExecEvent)
FILE_EVENT_SIZE: Final = ctypes.sizeof(abi.FileEvent)
#: The shortest exec record: no argv, no environment.
EXEC_EVENT_MIN: Final = abi.ExecEvent.strings.offset
_KIND_AT: Final = abi.ProcEvent.kind.offset
NET_EVENT_SIZE: Final = ctypes.sizeof(abi.NetEvent)
DNS_EVENT_SIZE: Final = ctypes.sizeof(abi.DnsEvent)
PTRACE_EVENT_SIZE: Final = ctypes.sizeof(abi.PtraceEvent)
_HEADER_KINDS: Final = frozenset({abi.PROC_FORK, abi.PROC_EXIT, abi.PROC_UID_CHANGE, abi.PROC_GID_CHANGE})
_FILE_KINDS: Final = frozenset(
    {
        abi.PROC_DELETE, abi.PROC_RENAME, abi.PROC_MEMFD, abi.PROC_MODULE_LOAD, abi.PROC_CHOWN,
        abi.PROC_XATTR, abi.PROC_MOUNT, abi.PROC_UNMOUNT, abi.PROC_MODULE_UNLOAD, abi.PROC_MODIFY,
    }
)  # fmt: skip


class RingDecoder:
    """Decodes a plane's ring-buffer records, counting those of the wrong size."""

    def __init__(self, plane: str) -> None:
        self.plane = plane
        #: records whose size is not ``EVENT_SIZE`` (not decoded)
        self.bad_size = 0

    def decode(self, record: bytes) -> abi.Event | None:
        """Return the record's event, or None for a record of the wrong size (counted; warned about once)."""
        if len(record) == EVENT_SIZE:
            return abi.Event.from_buffer_copy(record)
        self.bad_size += 1
        if self.bad_size == 1:
            log.warning("ring_record_bad_size", plane=self.plane, size=len(record), expected=EVENT_SIZE)
        return None

    def decode_proc(self, record: bytes) -> abi.ProcRecord | None:
        """Return a process-ring record by its header's kind; a record of the wrong size is counted.

        A fork or exit is a header alone, a deletion or rename a whole FileEvent; an exec is cut
        after its last used byte (between the header with image and directory, and a whole
        ExecEvent), so it is padded back to its full size before decoding.
        """
        kind = (
            int.from_bytes(record[_KIND_AT : _KIND_AT + 4], "little") if len(record) >= PROC_EVENT_SIZE else 0
        )
        if kind == abi.PROC_EXEC and EXEC_EVENT_MIN <= len(record) <= EXEC_EVENT_SIZE:
            return abi.ExecEvent.from_buffer_copy(record.ljust(EXEC_EVENT_SIZE, b"\0"))
        if kind in _FILE_KINDS and len(record) == FILE_EVENT_SIZE:
            return abi.FileEvent.from_buffer_copy(record)
        if kind in _HEADER_KINDS and len(record) == PROC_EVENT_SIZE:
            return abi.ProcEvent.from_buffer_copy(record)
        if kind in (abi.PROC_ACCEPT, abi.PROC_DISCONNECT) and len(record) == NET_EVENT_SIZE:
            return abi.NetEvent.from_buffer_copy(record)
        if kind in (abi.PROC_DNS_QUERY, abi.PROC_DNS_ANSWER) and len(record) == DNS_EVENT_SIZE:
            return abi.DnsEvent.from_buffer_copy(record)
        if kind == abi.PROC_PTRACE and len(record) == PTRACE_EVENT_SIZE:
            return abi.PtraceEvent.from_buffer_copy(record)
        self.bad_size += 1
        if self.bad_size == 1:
            log.warning("ring_record_bad_size", plane=self.plane, size=len(record), kind=kind)
        return None

    def counters(self) -> dict[str, int]:
        """Return the decoder's counters, as the plane reports them."""
        return {"ring_bad_size": self.bad_size}


def by_time(events: Sequence[abi.Event], procs: Sequence[abi.ProcRecord]) -> list[abi.Record]:
    """Merge two rings' records (each in kernel order) into one list in time order.

    Separate rings lose the order between them; their records carry CLOCK_MONOTONIC times, so a
    process's exec comes before the opens of its new image (the process table learns it first).
    """
    if not procs:
        return list(events)
    if not events:
        return list(procs)
    return list(heapq.merge(events, procs, key=_ts))


def _ts(record: abi.Record) -> int:
    return int(record.ts_ns if isinstance(record, abi.Event | abi.ProcEvent) else record.proc.ts_ns)


def in_order(events: Sequence[abi.Event], procs: Sequence[abi.ProcRecord]) -> list[abi.Record]:
    """Return one poll's records as the agent reads them: decisions first, then the rest in time order."""
    decisions = [e for e in events if e.decision != abi.Decision.ALLOWED]
    allowed = [e for e in events if e.decision == abi.Decision.ALLOWED]
    return [*decisions, *by_time(allowed, procs)]
