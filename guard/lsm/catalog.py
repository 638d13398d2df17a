"""What the sensor produces: the event kinds, and the ECS fields each carries, per kernel plane.

One table, :data:`CATALOG`, read by ``guardctl rules coverage`` (:mod:`guard.plan.coverage`) to
say whether a rule can fire here. Each :class:`Row` names the event kinds it is about (``EVERY``:
all of them), since when they carry its fields (:data:`NOW`: ``guard/lsm/events.py`` and the
agent produce them today; :data:`PLANNED`: the event contract the kernel capture is heading
for), who fills them (``kernel``: a ring record through ``events.py``; ``agent``: the agent adds
them in user space), the dotted ECS field names and, when not both, the planes it holds on.

An event kind is an :class:`EventSpec`: ``event.category``, ``event.type``, ``event.action``, the
record that carries it (``kestrel.hook``: a hook's event or a ``process`` record; two records may
give the same shape, e.g. the exec hook's decision and the exec process record) and the probe
feature (:data:`guard.lsm.probe.FEATURES`) each plane needs to see it, ``None`` when the plane
never does. A kind is produced on a plane when a row of its own holds there; it then carries its
rows' fields and the ``EVERY`` rows'.

To record that a capture landed, flip its rows from ``PLANNED`` to ``NOW``; a unit test holds the
``kernel`` rows marked ``NOW`` to exactly what ``events.py`` emits. ``kestrel.*`` is left out: it
is the agent's own view, not a field rules are written against.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from guard.model import BackendName

__all__ = [
    "CATALOG",
    "DNS_CAPTURE",
    "EVENT_SPECS",
    "EVERY",
    "MODIFY_CAPTURE",
    "NOW",
    "PLANES",
    "PLANNED",
    "SYSCALL_CAPTURE",
    "EventSpec",
    "Plane",
    "Row",
    "Since",
    "plane_of",
    "produced",
]

Plane = Literal["lsm", "compat"]
Since = Literal["now", "planned"]
NOW: Final = "now"
PLANNED: Final = "planned"
PLANES: Final[tuple[Plane, ...]] = ("lsm", "compat")


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One kind of event: its ECS shape and the probe feature each plane needs (None: never seen there)."""

    category: str
    type: str
    action: str
    lsm: str | None
    compat: str | None
    #: the record that carries it (its ``kestrel.hook``), "" while no record does
    hook: str = ""
    #: further ``event.category`` values its events carry (``dns``: Elastic Endpoint's ``dns where``)
    also: tuple[str, ...] = ()

    @property
    def categories(self) -> tuple[str, ...]:
        """Every ``event.category`` value its events carry."""
        return (self.category, *self.also)

    @property
    def name(self) -> str:
        """``category/type/action``, e.g. ``process/start/exec`` (``@hook`` when a record carries it)."""
        shape = f"{self.category}/{self.type}/{self.action}"
        return f"{shape}@{self.hook}" if self.hook else shape

    def feature(self, plane: Plane) -> str | None:
        """Return the probe feature ``plane`` needs for this kind (None: the plane never sees it)."""
        return self.lsm if plane == "lsm" else self.compat

    def shape(self) -> dict[str, object]:
        """Return the kind's ``event`` object as a document carries it (lists for category and type)."""
        return {
            "event": {
                "kind": "event",
                "category": list(self.categories),
                "type": [self.type],
                "action": self.action,
            }
        }


@dataclass(frozen=True, slots=True)
class Row:
    """Fields some event kinds carry (``kinds`` empty: every kind), since when, filled by whom."""

    kinds: tuple[EventSpec, ...]
    since: Since
    by: Literal["kernel", "agent"]
    fields: tuple[str, ...]
    note: str = ""
    planes: tuple[Plane, ...] = ("lsm", "compat")


def _spec(
    category: str,
    type_: str,
    action: str,
    lsm: str | None,
    compat: str | None,
    hook: str = "",
    also: tuple[str, ...] = (),
) -> EventSpec:
    return EventSpec(category, type_, action, lsm, compat, hook, also)


def _names(prefix: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{prefix}.{n}" for n in names)


_LSM: Final = "lsm_program"
_TP: Final = "raw_tracepoint"
_SYSCALLS: Final = "syscall_tracepoints"

# ------------------------------------------------------------------------------------------------
# fmt: off
# Event kinds.  category  type  action  the LSM plane's feature  the compat plane's feature  record
# Today's (guard/lsm/events.py: the guard.model hook shapes and record flags, the process records):
EXEC = _spec("process", "start", "exec", _TP, _TP, "process")  # the exec process record
FORK = _spec("process", "start", "fork", _TP, _TP, "process")
EXIT = _spec("process", "end", "end", _TP, _TP, "process")
EXEC_DECISION = _spec("process", "start", "exec", _LSM, _TP, "exec")  # the exec hook's decision
EXEC_MAPPING = _spec("file", "change", "mmap", _LSM, None, "exec")  # lsm/mmap_file only
OPEN = _spec("file", "access", "open", _LSM, _SYSCALLS, "file_open")
CREATION = _spec("file", "creation", "creation", _LSM, _SYSCALLS, "file_open")
LINK = _spec("file", "change", "link", _LSM, None, "file_open")  # lsm/path_link only
RENAME = _spec("file", "change", "rename", _LSM, _SYSCALLS, "file_open")  # today lsm/path_rename only
CHMOD = _spec("file", "change", "chmod", _LSM, None, "chmod")  # telemetry: no tracepoint sees it
CONNECTION_ATTEMPTED = _spec("network", "start", "connection_attempted", _LSM, "cgroup_sock_addr", "connect")
PTRACE_ACCESS = _spec("process", "access", "ptrace", _LSM, _SYSCALLS, "ptrace")
# The contract's (planned); where it leaves a shape open, Elastic Defend's is taken:
UID_CHANGE = _spec("process", "change", "uid_change", _SYSCALLS, _SYSCALLS, "syscall")  # sys_exit
GID_CHANGE = _spec("process", "change", "gid_change", _SYSCALLS, _SYSCALLS, "syscall")
PTRACE = _spec("process", "start", "ptrace", _SYSCALLS, _SYSCALLS, "syscall")  # Defend's shape
MEMFD = _spec("process", "start", "memfd_create", _SYSCALLS, _SYSCALLS, "syscall")  # Defend's shape
MOUNT = _spec("file", "change", "mount", _SYSCALLS, _SYSCALLS, "file_change")  # file.path: the mount point
UNMOUNT = _spec("file", "change", "unmount", _SYSCALLS, _SYSCALLS, "file_change")
CHOWN = _spec("file", "change", "chown", _SYSCALLS, _SYSCALLS, "file_change")
XATTR = _spec("file", "change", "extended_attributes", _SYSCALLS, _SYSCALLS, "file_change")
MODULE_UNLOAD = _spec("driver", "end", "unload_module", _SYSCALLS, _SYSCALLS, "syscall")
MODULE_LOAD = _spec("process", "start", "load_module", _SYSCALLS, _SYSCALLS, "syscall")  # Defend's shape
DELETION = _spec("file", "deletion", "deletion", _SYSCALLS, _SYSCALLS, "file_change")  # sys_exit, both planes
RENAMED = _spec("file", "change", "rename", _SYSCALLS, _SYSCALLS, "file_change")  # any governed rename
MODIFICATION = _spec("file", "change", "modification", _SYSCALLS, _SYSCALLS, "file_change")  # first write
CONNECTION_ACCEPTED = _spec("network", "start", "connection_accepted", _SYSCALLS, _SYSCALLS, "syscall")
DISCONNECT = _spec("network", "end", "disconnect_received", _TP, _TP, "syscall")  # inet_sock_set_state
DNS_REQUESTED = _spec("network", "protocol", "lookup_requested", _SYSCALLS, _SYSCALLS, "dns", ("dns",))
DNS_RESULT = _spec("network", "protocol", "lookup_result", _SYSCALLS, _SYSCALLS, "dns", ("dns",))

#: Every event kind, today's then the planned ones.
EVENT_SPECS: Final[tuple[EventSpec, ...]] = (
    EXEC, FORK, EXIT, EXEC_DECISION, EXEC_MAPPING, OPEN, CREATION, LINK, RENAME, CHMOD,
    CONNECTION_ATTEMPTED, PTRACE_ACCESS, UID_CHANGE, GID_CHANGE, PTRACE, MEMFD, MOUNT, MODULE_LOAD,
    DELETION, RENAMED, MODIFICATION, CONNECTION_ACCEPTED, DISCONNECT, DNS_REQUESTED, DNS_RESULT, UNMOUNT,
    CHOWN, XATTR, MODULE_UNLOAD,
)
#: What each of the process ring's optional captures produces (the agent asks for one only when a
#: loaded rule could match one of its kinds): the syscall-exit changes, modifications, DNS.
SYSCALL_CAPTURE: Final = frozenset({
    DELETION, RENAMED, UID_CHANGE, GID_CHANGE, MEMFD, MODULE_LOAD, MODULE_UNLOAD, CONNECTION_ACCEPTED,
    CHOWN, XATTR, MOUNT, UNMOUNT, PTRACE, DISCONNECT,
})
MODIFY_CAPTURE: Final = frozenset({MODIFICATION})
DNS_CAPTURE: Final = frozenset({DNS_REQUESTED, DNS_RESULT})
#: ``Row.kinds`` for fields every event carries.
EVERY: Final[tuple[EventSpec, ...]] = ()

# ------------------------------------------------------------------------------------------------
# Field groups the rows below share.
_IDS: Final = ("id", "name")
_CREDS: Final = (
    *_names("user", *_IDS), *_names("group", *_IDS), *_names("real_user", *_IDS),
    *_names("real_group", *_IDS), *_names("saved_user", *_IDS), *_names("saved_group", *_IDS),
)
_TTY: Final = ("tty.char_device.major", "tty.char_device.minor")
_IMAGE: Final = ("executable", "working_directory", "args", "args_count", "command_line")
#: What the contract gives a process and its parent.
_PROCESS_FIELDS: Final = (
    "pid", "entity_id", "name", *_IMAGE, "start", "interactive", *_TTY, "thread.id",
    "thread.capabilities.effective", "thread.capabilities.permitted", "env_vars", *_CREDS,
)
#: What the contract gives the group, session and entry leaders.
_LEADER_FIELDS: Final = ("pid", "entity_id", "name", *_IMAGE, "start", "interactive", *_TTY, *_CREDS)
_FULL_PROCESS: Final = (
    *_names("process", *_PROCESS_FIELDS),
    *_names("process.parent", *_PROCESS_FIELDS),
    *_names("process.group_leader", *_LEADER_FIELDS),
    *_names("process.session_leader", *_LEADER_FIELDS),
    *_names("process.entry_leader", *_LEADER_FIELDS, "entry_meta.type"),
    *_names("user", *_IDS), *_names("group", *_IDS),
    *_names("user.Ext.real", *_IDS), *_names("group.Ext.real", *_IDS),
)
#: A process record today (events.py proc_to_ecs), beyond every event's fields.
_RECORD: Final = (
    *_names("process", "start", "interactive", *_TTY, *_CREDS,
            "thread.capabilities.effective", "thread.capabilities.permitted"),
    "process.session_leader.pid", "process.group_leader.pid",
    "user.name", *_names("user.Ext.real", *_IDS), *_names("group", *_IDS), *_names("group.Ext.real", *_IDS),
)
#: What the agent's process table (guard/agent/processes.py) describes a related process by.
_RELATED: Final = (*_IMAGE, "name", "start", "interactive", *_names("user", *_IDS), *_names("group", *_IDS),
                   *_names("real_user", *_IDS))
_HOST: Final = (
    *_names("host", "id", "name", "hostname", "architecture", "ip"),
    *_names("host.os", "type", "name", "version", "kernel", "platform", "family", "full"),
)
_FILE: Final = _names("file", "path", "name", "extension", "directory", "inode", "device", "mode")
_NETWORK: Final = (
    *_names("destination", "ip", "port"), *_names("source", "ip", "port"),
    *_names("network", "type", "transport"),
)
_TODAY_FILE: Final = _names("file", "path", "name", "extension", "directory", "inode", "device", "mode")

# ------------------------------------------------------------------------------------------------
#: The table: kinds, since, by, fields (and why, where it is not obvious; the planes, when not both).
CATALOG: Final[tuple[Row, ...]] = (
    # every event, today: events.py's base document, and what the agent adds
    Row(EVERY, NOW, "kernel", (
        "@timestamp", *_names("event", "kind", "category", "type", "action", "outcome"),
        *_names("process", "pid", "entity_id", "thread.id", "name"),
        *_names("process.parent", "pid", "entity_id"), "user.id", "cgroup.id",
    )),
    Row(EVERY, NOW, "agent", (
        *_names("process", *_IMAGE, "start", "interactive", *_TTY, *_CREDS),
        *_names("process.parent", *_RELATED),
        *_names("process.session_leader", "entity_id", *_RELATED),
        *_names("process.group_leader", "entity_id", *_RELATED),
        *_names("process.entry_leader", "pid", "entity_id", *_RELATED, "entry_meta.type"),
    ), note="guard/agent/processes.py: the process table, from process records, else /proc"),
    Row(EVERY, NOW, "agent", _HOST, note="guard/agent/host.py, added by the daemon"),
    # today's kinds
    Row((EXEC, FORK, EXIT), NOW, "kernel", _RECORD),
    Row((EXEC,), NOW, "kernel", _names("process", *_IMAGE, "env_vars"), note="env_vars: [events]"),
    Row((EXIT,), NOW, "kernel", ("process.exit_code", "process.end")),
    Row((DELETION, RENAMED, CHOWN, XATTR, MOUNT, UNMOUNT, MODIFICATION), NOW, "kernel", (
        *_RECORD, *_names("file", "path", "name", "extension", "directory"),
    )),
    Row((MODULE_UNLOAD,), NOW, "kernel", (*_RECORD, "file.name")),
    Row((RENAMED,), NOW, "kernel", _names("file.Ext.original", "path", "name", "extension", "directory")),
    Row((UID_CHANGE, GID_CHANGE, MEMFD, MODULE_LOAD, CONNECTION_ACCEPTED), NOW, "kernel", _RECORD),
    Row((MEMFD,), NOW, "kernel", ("process.Ext.memfd.name",)),
    Row((PTRACE,), NOW, "kernel", (
        *_RECORD, "process.Ext.ptrace.child_pid", "process.Ext.ptrace.request", "target.process.pid",
    ), note="ptrace(PTRACE_ATTACH or PTRACE_SEIZE) at its exit"),
    Row((MODULE_LOAD,), NOW, "kernel", _names("file", "path", "name", "extension", "directory"),
        note="finit_module: the module's file; init_module names none"),
    Row((CONNECTION_ACCEPTED,), NOW, "kernel", (
        *_names("source", "ip", "port"), *_names("destination", "ip", "port"),
        *_names("network", "type", "transport", "direction"),
    )),
    Row((DISCONNECT,), NOW, "kernel", (
        *_RECORD, *_names("source", "ip", "port"), *_names("destination", "ip", "port"),
        *_names("network", "type", "transport"),
    ), note="inet_sock_set_state: the task's own close of an established TCP connection"),
    Row((DNS_REQUESTED, DNS_RESULT), NOW, "kernel", (
        *_RECORD, *_names("source", "ip", "port"), *_names("destination", "ip", "port"),
        *_names("network", "type", "transport", "protocol", "direction"),
        *_names("dns", "id", "type", "op_code", "header_flags"),
        *_names("dns.question", "name", "type", "class", "top_level_domain"),
    ), note="bpf/hooks/dns.bpf.c: the message's bytes, parsed by guard/lsm/dnswire.py"),
    Row((DNS_RESULT,), NOW, "kernel", (
        "dns.response_code", "dns.resolved_ip",
        *_names("dns.answers", "name", "type", "class", "ttl", "data"),
    )),
    Row((EXEC_DECISION,), NOW, "kernel", ("process.executable", *_TODAY_FILE)),
    Row((EXEC_MAPPING, OPEN, CREATION, LINK, CHMOD), NOW, "kernel", _TODAY_FILE),
    Row((RENAME,), NOW, "kernel", _TODAY_FILE, note="renames of protected files", planes=("lsm",)),
    Row((CONNECTION_ATTEMPTED,), NOW, "kernel", (
        "destination.ip", "destination.port", "network.type", "network.direction",
    )),
    Row((PTRACE_ACCESS,), NOW, "kernel", ("target.process.pid",)),
    # the contract
    Row((EXEC, FORK, EXIT, UID_CHANGE, GID_CHANGE), PLANNED, "kernel", _FULL_PROCESS),
    Row((OPEN, CREATION, RENAME, MODIFICATION, CHMOD), PLANNED, "kernel", _FILE),
    Row((CONNECTION_ATTEMPTED,), PLANNED, "kernel", _NETWORK),
)
# fmt: on


def plane_of(backend: BackendName) -> Plane | None:
    """Return the plane a backend runs on (None for the fake backend)."""
    if backend is BackendName.LSM:
        return "lsm"
    if backend is BackendName.COMPAT:
        return "compat"
    return None


def produced(
    plane: Plane,
    *,
    since: Iterable[Since] = (NOW,),
    features: Collection[str] | None = None,
    catalog: Iterable[Row] = CATALOG,
) -> Mapping[EventSpec, frozenset[str]]:
    """Return each event kind ``plane`` produces and the fields it carries, in :data:`EVENT_SPECS` order.

    Only rows whose ``since`` is in ``since`` count; a kind the plane never sees, or whose feature
    is not in ``features`` (when given: the available probe features), is left out.
    """
    stages = frozenset(since)
    rows = [row for row in catalog if row.since in stages]
    common = frozenset(f for row in rows if not row.kinds and plane in row.planes for f in row.fields)
    out: dict[EventSpec, set[str]] = {}
    for row in rows:
        if plane not in row.planes:
            continue
        for kind in row.kinds:
            feature = kind.feature(plane)
            if feature is None or (features is not None and feature not in features):
                continue
            out.setdefault(kind, set(common)).update(row.fields)
    order = {kind: n for n, kind in enumerate(EVENT_SPECS)}
    return {kind: frozenset(out[kind]) for kind in sorted(out, key=lambda k: order.get(k, len(order)))}
