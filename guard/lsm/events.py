"""Ring-buffer records (:class:`~guard.lsm.abi.Event`) as ECS documents.

A document is nested the way Elasticsearch stores it (``{"process": {"pid": 1}}``), and its field
names and types follow :data:`guard.policy.schema.ECS`, the schema rules are checked against:
``file.inode``, ``file.device`` and the pids are numbers, ``user.id`` is a string,
``destination.ip`` an IP string, ``file.mode`` an octal string (``"0755"``). Empty values are left
out. Every document names its process and parent as entities (``process.entity_id`` is
``"<tgid>-<start_ns>"``, the kernel's start time of the thread-group leader, so a reused pid is
another entity; ``process.parent.entity_id`` likewise) and carries a ``kestrel`` object with the
kernel's own view: hook (or ``chmod``), decision, rule id, which table matched, cgroup id, whether
the path was unavailable and, for file opens, whether the file is open for writing.

Shapes: exec is ``process/start``; a file open ``file/access`` (action ``open``), or
``file/creation`` (action ``create``) when the open created the file; a chmod ``file/change``
(action ``chmod``, with the new ``file.mode``); connect ``network/connection``; ptrace
``process/access``. A denied executable mapping of a file (the exec hook's ``mmap``), a hard link
made to a protected file or its rename (file_open's ``link`` / ``rename``) are ``file/change``
with that action and the file's existing path.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from guard.errors import KernelError
from guard.lsm import abi
from guard.lsm.abi import Decision, Match
from guard.lsm.backend import KernelBackend
from guard.model import EventKind, Hook, Telemetry, event_kind

__all__ = ["EventReader", "boot_offset_ns", "file_mode", "to_ecs"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


_E = TypeVar("_E", bound=enum.IntEnum)


def file_mode(mode: int) -> str:
    """Return a mode's permission bits as ECS ``file.mode`` wants them: octal, four digits (``0755``)."""
    return f"{mode & 0o7777:04o}"


def boot_offset_ns() -> int:
    """Return what to add to a CLOCK_MONOTONIC time (an event's ``ts_ns``) to get epoch nanoseconds."""
    return time.time_ns() - time.monotonic_ns()


def _timestamp(epoch_ns: int) -> str:
    """Return ISO-8601 UTC with microseconds and a ``Z``: ``2024-05-01T12:00:00.123456Z``."""
    return (_EPOCH + timedelta(microseconds=epoch_ns // 1000)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _enum(kind: type[_E], value: int) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise KernelError(f"ring-buffer event: unknown {kind.__name__} {value} (ABI mismatch?)") from None


def _kind(value: int) -> EventKind:
    try:
        return event_kind(value)
    except ValueError:
        raise KernelError(f"ring-buffer event: unknown EventKind {value} (ABI mismatch?)") from None


#: Event flags that make a file hook's event another action on the file: an executable mapping
#: (``ld.so /tmp/x``, dlopen), a hard link made to it, a rename of it.
_NEW_NAME_ACTIONS: Final = ((abi.EVF_MMAP, "mmap"), (abi.EVF_LINK, "link"), (abi.EVF_RENAME, "rename"))


def to_ecs(event: abi.Event, *, boot_offset_ns: int) -> dict[str, Any]:
    """Return the ECS document of one ring-buffer record; ``boot_offset_ns`` maps ``ts_ns`` to epoch."""
    kind = _kind(event.hook)
    decision = _enum(Decision, event.decision)
    match = _enum(Match, event.match)
    shape = kind.events[0]
    if kind is Hook.FILE_OPEN and event.flags & abi.EVF_CREATED:
        shape = kind.events[1]
    path = os.fsdecode(event.path) if event.path else ""
    comm = event.comm.decode("utf-8", errors="replace")

    process: dict[str, Any] = {
        "pid": event.tgid,
        "entity_id": f"{event.tgid}-{event.start_ns}",
        "thread": {"id": event.pid},
    }
    if comm:
        process["name"] = comm
    if event.ppid:
        process["parent"] = {"pid": event.ppid, "entity_id": f"{event.ppid}-{event.parent_start_ns}"}
    doc: dict[str, Any] = {
        "@timestamp": _timestamp(event.ts_ns + boot_offset_ns),
        "event": {
            "kind": "event",
            "category": [kind.category],
            "type": [shape.type],
            "action": shape.action,
            "outcome": "failure" if decision in (Decision.DENIED, Decision.KILLED) else "success",
        },
        "process": process,
        "user": {"id": str(event.uid)},
    }
    if kind.on_file:
        file: dict[str, Any] = {}
        if path:
            file["path"] = path
            file["name"] = os.path.basename(path)
        if event.ino:
            file["inode"] = event.ino
            file["device"] = event.dev
        if event.mode or kind is Telemetry.CHMOD:
            file["mode"] = file_mode(event.mode)
        if file:
            doc["file"] = file
        if kind is Hook.BPRM_CHECK_SECURITY and path and not event.flags & abi.EVF_MMAP:
            process["executable"] = path
            process["name"] = os.path.basename(path)
        for flag, action in _NEW_NAME_ACTIONS:
            if event.flags & flag:  # not the call the hook names: another way to the same file
                doc["event"]["category"] = ["file"]
                doc["event"]["type"] = ["change"]
                doc["event"]["action"] = action
    elif kind is Hook.SOCKET_CONNECT:
        ip = ipaddress.IPv6Address(bytes(event.addr))
        mapped = ip.ipv4_mapped
        doc["destination"] = {"ip": str(mapped or ip), "port": event.port}
        doc["network"] = {"type": "ipv4" if mapped else "ipv6"}
        if event.flags & abi.EVF_SENDMSG:
            doc["event"]["action"] = kind.events[1].action
    else:
        doc["target"] = {"process": {"pid": event.target_tgid}}
    kestrel: dict[str, Any] = {
        "hook": kind.short,
        "decision": decision.name.lower(),
        "rule_id": event.rule_id,
        "match": match.name.lower(),
        "cgroup_id": event.cgroup_id,
        "path_too_long": bool(event.flags & abi.EVF_PATH_TOO_LONG),
    }
    if kind is Hook.FILE_OPEN:
        kestrel["write"] = bool(event.flags & abi.EVF_WRITE)
    if kind is Hook.PTRACE_ACCESS_CHECK:
        kestrel["ptrace"] = {"target_pid": event.target_tgid}
    doc["kestrel"] = kestrel
    if event.cgroup_id:
        doc["cgroup"] = {"id": event.cgroup_id}
    return doc


class EventReader:
    """Polls a backend's ring buffer and returns its records as ECS documents."""

    def __init__(self, backend: KernelBackend, *, offset_ns: int | None = None) -> None:
        self.backend = backend
        #: CLOCK_MONOTONIC -> epoch, taken once (so event times never jump between reads).
        self.offset_ns = boot_offset_ns() if offset_ns is None else offset_ns

    def read(self, timeout_ms: int = 100) -> list[dict[str, Any]]:
        """Poll (waiting up to ``timeout_ms`` for the first record) and convert what arrived."""
        return [
            to_ecs(event, boot_offset_ns=self.offset_ns) for event in self.backend.poll_events(timeout_ms)
        ]
