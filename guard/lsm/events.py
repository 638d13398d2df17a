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

Shapes follow Elastic Defend's vocabulary: exec is ``process/start`` (action ``exec``); a file open
``file/access`` (action ``open``), or ``file/creation`` (action ``creation``) when the open created
the file; a chmod ``file/change`` (action ``chmod``, with the new ``file.mode``); connect and a
datagram to an explicit destination ``network/start`` (action ``connection_attempted``;
``kestrel.sendmsg`` tells them apart); ptrace ``process/access``. Process records (fork, exec, end:
:func:`proc_to_ecs`) are ``process/start`` (``fork``, ``exec``) and ``process/end`` (``end``). A
denied executable mapping of a file (the exec hook's ``mmap``), a hard link
made to a protected file or its rename (file_open's ``link`` / ``rename``) are ``file/change``
with that action and the file's existing path.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import grp
import ipaddress
import os
import posixpath
import pwd
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from guard.errors import KernelError
from guard.lsm import abi, dnswire
from guard.lsm.abi import Decision, Match
from guard.lsm.backend import KernelBackend
from guard.model import EventKind, Hook, Telemetry, event_kind

__all__ = [
    "CAPABILITIES",
    "EventReader",
    "boot_offset_ns",
    "exit_code",
    "file_mode",
    "proc_to_ecs",
    "record_to_ecs",
    "to_ecs",
]

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


def _extension(name: str) -> str:
    """Return ECS ``file.extension``: after the last dot, without it (none for ``.bashrc`` or ``x.``)."""
    stem, dot, ext = name.rpartition(".")
    return ext if dot and stem else ""


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
            file["directory"] = os.path.dirname(path)
            extension = _extension(file["name"])
            if extension:
                file["extension"] = extension
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
        doc["network"] = {"type": "ipv4" if mapped else "ipv6", "direction": "egress"}
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
        "truncated": ["file.path"] if event.flags & abi.EVF_PATH_TOO_LONG and kind.on_file else [],
    }
    if kind is Hook.FILE_OPEN:
        kestrel["write"] = bool(event.flags & abi.EVF_WRITE)
    if kind is Hook.SOCKET_CONNECT:
        kestrel["sendmsg"] = bool(event.flags & abi.EVF_SENDMSG)
    if kind is Hook.PTRACE_ACCESS_CHECK:
        kestrel["ptrace"] = {"target_pid": event.target_tgid}
    doc["kestrel"] = kestrel
    if event.cgroup_id:
        doc["cgroup"] = {"id": event.cgroup_id}
    return doc


#: Capability bit -> name (linux/capability.h), for ``process.thread.capabilities.*``.
CAPABILITIES: Final = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip

_PROC_ACTIONS: Final = {
    abi.PROC_FORK: ("start", "fork"),
    abi.PROC_EXEC: ("start", "exec"),
    abi.PROC_EXIT: ("end", "end"),
    abi.PROC_DELETE: ("deletion", "deletion"),
    abi.PROC_RENAME: ("change", "rename"),
    abi.PROC_UID_CHANGE: ("change", "uid_change"),
    abi.PROC_GID_CHANGE: ("change", "gid_change"),
    abi.PROC_MEMFD: ("start", "memfd_create"),
    abi.PROC_MODULE_LOAD: ("start", "load_module"),
    abi.PROC_ACCEPT: ("start", "connection_accepted"),
    abi.PROC_CHOWN: ("change", "chown"),
    abi.PROC_XATTR: ("change", "extended_attributes"),
    abi.PROC_MOUNT: ("change", "mount"),
    abi.PROC_UNMOUNT: ("change", "unmount"),
    abi.PROC_MODULE_UNLOAD: ("end", "unload_module"),
    abi.PROC_MODIFY: ("change", "modification"),
    abi.PROC_PTRACE: ("start", "ptrace"),
    abi.PROC_DISCONNECT: ("end", "disconnect_received"),
    abi.PROC_DNS_QUERY: ("protocol", "lookup_requested"),
    abi.PROC_DNS_ANSWER: ("protocol", "lookup_result"),
}
#: Process-ring kinds that are not a process's life (fork, exec, end): ``kestrel.hook`` ``syscall``.
_SYSCALL_KINDS: Final = frozenset(
    {
        abi.PROC_UID_CHANGE,
        abi.PROC_GID_CHANGE,
        abi.PROC_MEMFD,
        abi.PROC_MODULE_LOAD,
        abi.PROC_ACCEPT,
        abi.PROC_MODULE_UNLOAD,
        abi.PROC_PTRACE,
        abi.PROC_DISCONNECT,
    }
)
_STRINGS_OFFSET: Final = abi.ExecEvent.strings.offset
_PTRACE_REQUESTS: Final = {abi.PTRACE_ATTACH: "PTRACE_ATTACH", abi.PTRACE_SEIZE: "PTRACE_SEIZE"}


def _capabilities(mask: int) -> list[str]:
    return [
        CAPABILITIES[bit] if bit < len(CAPABILITIES) else f"CAP_{bit}" for bit in range(64) if mask >> bit & 1
    ]


@functools.lru_cache(maxsize=4096)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.lru_cache(maxsize=4096)
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def _user(uid: int) -> dict[str, Any]:
    name = _user_name(uid)
    return {"id": str(uid), "name": name} if name else {"id": str(uid)}


def _group(gid: int) -> dict[str, Any]:
    name = _group_name(gid)
    return {"id": str(gid), "name": name} if name else {"id": str(gid)}


def exit_code(status: int) -> int:
    """Return ECS ``process.exit_code`` from a wait status: the code, or 128 + the killing signal."""
    return 128 + (status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF


def _strings(event: abi.ExecEvent, offset: int, length: int) -> list[str]:
    raw = ctypes.string_at(ctypes.addressof(event) + offset, length)
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [os.fsdecode(part) for part in parts]


def _env_vars(event: abi.ExecEvent, names: frozenset[str]) -> list[str]:
    """Return the ``NAME=value`` entries of the exec's environment whose name is allowed."""
    args_len = min(event.proc.args_len, abi.ARGS_MAX - 1)
    entries = _strings(event, _STRINGS_OFFSET + args_len, min(event.proc.env_len, abi.ENV_MAX - 1))
    return [e for e in entries if e.partition("=")[0] in names]


def _joined(name: bytes, base: bytes) -> str:
    """Return a name the caller gave as an absolute path: a relative one joined to its base directory."""
    text = os.fsdecode(name)
    if not text or text.startswith("/") or not base:
        return text
    return posixpath.normpath(posixpath.join(os.fsdecode(base), text))


def _file_fields(path: str) -> dict[str, Any]:
    name = os.path.basename(path)
    fields: dict[str, Any] = {"path": path, "name": name, "directory": os.path.dirname(path)}
    extension = _extension(name)
    if extension:
        fields["extension"] = extension
    return fields


def _dns_fields(record: abi.DnsEvent) -> tuple[dict[str, Any], bool]:
    """Return a DNS message's ``dns``, ``source``, ``destination`` and ``network``; whether it was cut.

    A query goes from the local end to the server, an answer the other way. A message that does
    not parse as DNS keeps its ends and ``network.protocol`` and has no ``dns`` object.
    """
    local, remote = (ipaddress.IPv6Address(bytes(a)) for a in (record.local_addr, record.remote_addr))
    here = {"ip": str(local.ipv4_mapped or local), "port": record.local_port}
    server = {"ip": str(remote.ipv4_mapped or remote), "port": record.remote_port}
    query = record.proc.kind == abi.PROC_DNS_QUERY
    message = dnswire.parse(bytes(record.data[: min(record.data_len, abi.DNS_MAX)]), record.len)
    fields: dict[str, Any] = {
        "source": here if query else server,
        "destination": server if query else here,
        "network": {
            "type": "ipv4" if record.family == socket.AF_INET else "ipv6",
            "transport": "tcp" if message is not None and message.tcp else "udp",
            "protocol": "dns",
            "direction": "egress" if query else "ingress",
        },
    }
    if message is None or message.response == query:
        return fields, False
    fields["dns"] = message.to_ecs()
    return fields, message.truncated


def proc_to_ecs(
    record: abi.ProcRecord, *, boot_offset_ns: int, env_vars: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Return the ECS document of a process-ring record: a fork, an exec (with argv) or an end.

    What the kernel had at that moment, and nothing from /proc: the exec's argv, its count, image
    and working directory; real, effective and saved ids (``user``/``group`` are the effective
    ones, as Elastic Defend reports them, the real ones also under ``user.Ext.real``); the
    session and process group leaders' pids; the controlling terminal (``process.interactive``);
    capabilities; ``process.env_vars``: the environment entries whose names ``env_vars`` allows.
    ``kestrel.truncated`` names every field the kernel could not give whole.
    """
    proc = record if isinstance(record, abi.ProcEvent) else record.proc
    etype, action = _PROC_ACTIONS.get(proc.kind, ("info", "unknown"))
    if proc.kind not in _PROC_ACTIONS:
        raise KernelError(f"process ring record: unknown kind {proc.kind} (ABI mismatch?)")
    comm = proc.comm.decode("utf-8", errors="replace")
    euser, egroup = _user(proc.euid), _group(proc.egid)
    process: dict[str, Any] = {
        "pid": proc.tgid,
        "entity_id": f"{proc.tgid}-{proc.start_ns}",
        "thread": {
            "id": proc.pid,
            "capabilities": {
                "effective": _capabilities(proc.cap_effective),
                "permitted": _capabilities(proc.cap_permitted),
            },
        },
        "start": _timestamp(proc.start_ns + boot_offset_ns),
        "user": euser,
        "group": egroup,
        "real_user": _user(proc.uid),
        "real_group": _group(proc.gid),
        "saved_user": _user(proc.suid),
        "saved_group": _group(proc.sgid),
        "interactive": proc.tty_major != 0,
    }
    if comm:
        process["name"] = comm
    if proc.tty_major:
        process["tty"] = {"char_device": {"major": proc.tty_major, "minor": proc.tty_minor}}
    if proc.ppid:
        process["parent"] = {"pid": proc.ppid, "entity_id": f"{proc.ppid}-{proc.parent_start_ns}"}
    if proc.sid:
        process["session_leader"] = {"pid": proc.sid}
    if proc.pgid:
        process["group_leader"] = {"pid": proc.pgid}
    truncated: list[str] = []
    if isinstance(record, abi.ExecEvent):
        exe = os.fsdecode(record.exe)
        if exe:
            process["executable"] = exe
            base = os.path.basename(exe)
            if not comm or (len(comm) == abi.COMM_LEN - 1 and base.startswith(comm)):
                process["name"] = base  # the kernel's comm is cut at 15 bytes
        cwd = os.fsdecode(record.cwd)
        if cwd:
            process["working_directory"] = cwd
        args = _strings(record, _STRINGS_OFFSET, min(proc.args_len, abi.ARGS_MAX - 1))
        process["args"] = args
        process["args_count"] = proc.argc
        process["command_line"] = " ".join(args)
        if env_vars:
            process["env_vars"] = _env_vars(record, env_vars)
            if proc.flags & abi.PF_ENV_TRUNCATED:
                truncated.append("process.env_vars")
        for flag, name in (
            (abi.PF_ARGS_TRUNCATED, "process.args"),
            (abi.PF_EXE_UNRESOLVED, "process.executable"),
            (abi.PF_CWD_UNRESOLVED, "process.working_directory"),
        ):
            if proc.flags & flag:
                truncated.append(name)
    if proc.kind == abi.PROC_EXIT:
        process["exit_code"] = exit_code(proc.exit_code)
        process["end"] = _timestamp(proc.ts_ns + boot_offset_ns)
    category = "process"
    file: dict[str, Any] = {}
    network: dict[str, Any] = {}
    target: dict[str, Any] = {}
    if proc.kind == abi.PROC_MEMFD and isinstance(record, abi.FileEvent):
        process["Ext"] = {"memfd": {"name": os.fsdecode(record.path)}}
    elif proc.kind == abi.PROC_MODULE_LOAD and isinstance(record, abi.FileEvent):
        if record.path:  # finit_module names the module's file
            file = _file_fields(os.fsdecode(record.path))
    elif proc.kind == abi.PROC_MODULE_UNLOAD and isinstance(record, abi.FileEvent):
        category = "driver"  # a module's name, not a file
        file = {"name": os.fsdecode(record.path)} if record.path else {}
    elif isinstance(record, abi.FileEvent):  # a deletion or rename: by the names the caller gave
        category = "file"
        if record.path:
            file = _file_fields(_joined(record.path, record.dir))
        if proc.kind == abi.PROC_RENAME and record.old_path:
            file["Ext"] = {"original": _file_fields(_joined(record.old_path, record.old_dir))}
        if proc.flags & abi.PF_CWD_UNRESOLVED:
            truncated.append("file.path")
    elif isinstance(record, abi.PtraceEvent):  # Elastic Defend's shape: the tracee under process.Ext
        process["Ext"] = {
            "ptrace": {
                "child_pid": record.child_pid,
                "request": _PTRACE_REQUESTS.get(record.request, str(record.request)),
            }
        }
        target = {"process": {"pid": record.child_pid}}
    elif isinstance(record, abi.DnsEvent):
        category = "network"
        network, dns_truncated = _dns_fields(record)
        if dns_truncated:
            truncated.append("dns.answers")
    elif isinstance(record, abi.NetEvent):  # accepted: the remote end is the source
        category = "network"
        local, remote = (ipaddress.IPv6Address(bytes(a)) for a in (record.local_addr, record.remote_addr))
        here = {"ip": str(local.ipv4_mapped or local), "port": record.local_port}
        there = {"ip": str(remote.ipv4_mapped or remote), "port": record.remote_port}
        kind = "ipv4" if record.family == socket.AF_INET else "ipv6"
        if proc.kind == abi.PROC_ACCEPT:
            network = {
                "source": there,
                "destination": here,
                "network": {"type": kind, "transport": "tcp", "direction": "ingress"},
            }
        else:  # a close: who opened the connection is not known here; the task's end is the source
            network = {"source": here, "destination": there, "network": {"type": kind, "transport": "tcp"}}
    doc: dict[str, Any] = {
        "@timestamp": _timestamp(proc.ts_ns + boot_offset_ns),
        "event": {
            "kind": "event",
            "category": [category],
            "type": [etype],
            "action": action,
            "outcome": "success",
        },
        "process": process,
        "user": {**euser, "Ext": {"real": _user(proc.uid)}},
        "group": {**egroup, "Ext": {"real": _group(proc.gid)}},
        "kestrel": {
            "hook": "process",
            "decision": "allowed",
            "cgroup_id": proc.cgroup_id,
            "truncated": truncated,
        },
    }
    if isinstance(record, abi.DnsEvent):
        # Elastic Endpoint's rules name these events ``dns where``: the category says both
        doc["event"]["category"] = ["network", "dns"]
        doc["kestrel"]["hook"] = "dns"
    elif category == "file":
        doc["kestrel"]["hook"] = "file_change"
    elif proc.kind in _SYSCALL_KINDS:
        doc["kestrel"]["hook"] = "syscall"
    if file:
        doc["file"] = file
    if target:
        doc["target"] = target
    doc.update(network)
    if proc.cgroup_id:
        doc["cgroup"] = {"id": proc.cgroup_id}
    return doc


def record_to_ecs(
    record: abi.Record, *, boot_offset_ns: int, env_vars: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Return the ECS document of any ring record (a hook's event or a process record)."""
    if isinstance(record, abi.Event):
        return to_ecs(record, boot_offset_ns=boot_offset_ns)
    return proc_to_ecs(record, boot_offset_ns=boot_offset_ns, env_vars=env_vars)


class EventReader:
    """Polls a backend's ring buffer and returns its records as ECS documents."""

    def __init__(self, backend: KernelBackend, *, offset_ns: int | None = None) -> None:
        self.backend = backend
        #: CLOCK_MONOTONIC -> epoch, taken once (so event times never jump between reads).
        self.offset_ns = boot_offset_ns() if offset_ns is None else offset_ns

    def read(self, timeout_ms: int = 100) -> list[dict[str, Any]]:
        """Poll (waiting up to ``timeout_ms`` for the first record) and convert what arrived."""
        return [
            record_to_ecs(event, boot_offset_ns=self.offset_ns)
            for event in self.backend.poll_events(timeout_ms)
        ]
