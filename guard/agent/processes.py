"""Process identity and enrichment: entity ids, a bounded process cache and the parent chain.

An entity id is ``"<tgid>-<start>"``, the start being the group leader's start time in kernel
nanoseconds since boot (the kernel reports it with every event), so a recycled pid is another
entity. :class:`ProcessCache` is the agent's process table: what the kernel's fork, exec and exit
records said of each entity (image, argv, working directory, ids, terminal), seeded from ``/proc``
at start; an LRU of bounded size. :meth:`ProcessCache.enrich` fills an ECS event's missing
``process.*`` fields and its parent's and leaders'.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import psutil

__all__ = ["ProcInfo", "ProcessCache", "entity_id", "proc_start_ticks"]

_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")


def entity_id(tgid: int, start_ns: int) -> str:
    """Return the entity id of a process: its tgid and its leader's start time (kernel ns)."""
    return f"{tgid}-{start_ns}"


def proc_start_ticks(tgid: int) -> int | None:
    """Return a live process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        with open(f"/proc/{tgid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[19])


def same_process(tgid: int, start_ns: int) -> bool:
    """Return whether ``tgid`` is still the process that started at ``start_ns`` (no pid reuse)."""
    ticks = proc_start_ticks(tgid)
    return ticks is not None and ticks == start_ns * _CLK_TCK // 1_000_000_000


#: The credentials a process record carries (a uid or gid change replaces them).
_ID_FIELDS: Final = ("user", "group", "real_user", "real_group", "saved_user", "saved_group")
#: What every process record says of its process (a fork's child, beside its parent's image).
_RECORD_FIELDS: Final = (*_ID_FIELDS, "start", "interactive", "tty", "name")
#: The process-level fields an exec teaches (and a fork inherits), copied into later events.
_PROCESS_FIELDS: Final = (
    "executable", "args", "args_count", "command_line", "working_directory", *_RECORD_FIELDS,
)  # fmt: skip
#: The fields a related process (parent, leaders) is described by.
_RELATED_FIELDS: Final = ("executable", "name", "args", "args_count", "command_line", "working_directory",
                          "start", "user", "group", "real_user", "interactive")  # fmt: skip


#: A session leader's parent -> how the session was entered (``process.entry_leader.entry_meta.type``).
_ENTRY_TYPES: Final = {
    "sshd": "sshd", "login": "terminal", "agetty": "terminal", "getty": "terminal",
    "gnome-terminal-": "terminal", "xterm": "terminal", "tmux: server": "terminal", "screen": "terminal",
    "containerd-shim": "container", "containerd-shim-runc-v2": "container", "runc": "container",
    "conmon": "container", "docker-init": "container",
    "kubelet": "kubelet", "amazon-ssm-agen": "ssm", "ssm-session-wor": "ssm", "teleport": "teleport",
}  # fmt: skip


@dataclass(slots=True)
class ProcInfo:
    """What the agent knows of one entity."""

    tgid: int
    executable: str = ""
    name: str = ""
    args: tuple[str, ...] = ()
    ppid: int = 0
    uid: int | None = None
    #: the process fields its exec (or its parent's, for a fork) reported, as ECS has them
    fields: dict[str, Any] = field(default_factory=dict)
    parent_eid: str = ""
    ended: bool = False


class ProcessCache:
    """The process table: entity id -> :class:`ProcInfo`, a bounded LRU.

    Fed by the kernel's process records (:meth:`observe`: fork, exec, end), which carry what the
    kernel had at that moment. At start it is seeded from ``/proc`` (:meth:`seed`); a process
    seen neither way (outside the governed scope, started since) is read once from ``/proc``
    when an event first names it (``read_proc``). :meth:`enrich` fills an event's ``process.*``,
    its parent's and its session and group leaders' fields from the table.
    """

    def __init__(self, capacity: int = 65536, *, read_proc: bool = True) -> None:
        self.capacity = capacity
        self.read_proc = read_proc
        self._items: OrderedDict[str, ProcInfo] = OrderedDict()
        #: tgid -> the entity id that tgid names now (leaders are named by pid)
        self._by_pid: dict[int, str] = {}
        #: what /proc said at start: tgid -> (start in clock ticks, what it runs)
        self._seeded: dict[int, tuple[int, ProcInfo]] = {}
        self.misses = 0

    def seed(self) -> int:
        """Read every live process from /proc once, at start; return how many were read.

        The table then knows a process that exits before any event of its own asks for it (as its
        children's parent); a recycled pid is told apart by its start time.
        """
        if not self.read_proc:
            return 0
        for tgid in psutil.pids():
            ticks = proc_start_ticks(tgid)
            if ticks is None:
                continue
            info = _read_proc(tgid)
            if info is not None:
                self._seeded[tgid] = (ticks, info)
        return len(self._seeded)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, eid: str) -> ProcInfo | None:
        """Return what is known of an entity (None: never seen)."""
        info = self._items.get(eid)
        if info is not None:
            self._items.move_to_end(eid)
        return info

    def put(self, eid: str, info: ProcInfo) -> None:
        """Remember an entity (evicting the least recently used beyond capacity)."""
        self._items[eid] = info
        self._items.move_to_end(eid)
        self._by_pid[info.tgid] = eid
        while len(self._items) > self.capacity:
            old, gone = self._items.popitem(last=False)
            if self._by_pid.get(gone.tgid) == old:
                del self._by_pid[gone.tgid]

    def _lookup(self, eid: str, tgid: int) -> ProcInfo:
        info = self.get(eid)
        if info is not None:
            return info
        seeded = self._seeded.pop(tgid, None)
        start_ns = eid.rpartition("-")[2]
        if (
            seeded is not None
            and start_ns.isdigit()
            and seeded[0] == int(start_ns) * _CLK_TCK // 1_000_000_000
        ):
            info = seeded[1]  # the same process /proc showed at start (not a recycled pid)
        elif self.read_proc and tgid > 0:
            self.misses += 1
            info = _read_proc(tgid) or ProcInfo(tgid)
        else:
            info = ProcInfo(tgid)
        self.put(eid, info)
        return info

    def observe(self, doc: dict[str, Any]) -> None:
        """Learn from a process record's document (kestrel.hook ``process``): fork, exec or end."""
        process = doc.get("process")
        if not isinstance(process, dict):
            return
        eid, tgid = process.get("entity_id"), process.get("pid")
        if not isinstance(eid, str) or not isinstance(tgid, int):
            return
        action = doc.get("event", {}).get("action")
        parent = process.get("parent") or {}
        peid = parent.get("entity_id", "") if isinstance(parent, dict) else ""
        if action == "exec":
            info = self.get(eid) or ProcInfo(tgid)
            info.fields = {k: process[k] for k in _PROCESS_FIELDS if k in process}
            info.executable = str(process.get("executable", ""))
            info.name = str(process.get("name", ""))
            info.args = tuple(process.get("args", ()))
        elif action == "fork":
            source = self.get(peid) if peid else None
            info = ProcInfo(tgid)
            if source is not None:  # a fork runs its parent's image
                info.fields = dict(source.fields)
                info.executable, info.name, info.args = source.executable, source.name, source.args
            for key in _RECORD_FIELDS:
                if key in process:
                    info.fields[key] = process[key]
        else:
            info = self.get(eid) or ProcInfo(tgid)
            info.ended = True
        info.ppid = int(parent.get("pid", 0)) if isinstance(parent, dict) else 0
        info.parent_eid = peid
        self.put(eid, info)

    def enrich(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Fill a document's missing process fields, its parent's and its leaders' from the table."""
        process = doc.get("process")
        if not isinstance(process, dict):
            return doc
        tgid = process.get("pid")
        eid = process.get("entity_id")
        if not isinstance(tgid, int) or not isinstance(eid, str):
            return doc
        kestrel = doc.get("kestrel") or {}
        if kestrel.get("hook") == "process":
            self.observe(doc)
            info = self.get(eid)
        elif kestrel.get("hook") == "syscall":
            info = self._lookup(eid, tgid)
            if doc.get("event", {}).get("action") in ("uid_change", "gid_change"):
                for key in _ID_FIELDS:
                    if key in process:  # the new credentials, for the process's later events
                        info.fields[key] = process[key]
        elif kestrel.get("hook") == "exec" and kestrel.get("decision") not in ("denied", "killed"):
            # without process records, the exec hook's event names the new image (not its argv)
            info = ProcInfo(tgid, executable=str(process.get("executable", "")))
            info.name = os.path.basename(info.executable) or str(process.get("name", ""))
            _describe(info)
            self.put(eid, info)
        else:
            info = self._lookup(eid, tgid)
        if info is not None:
            for key, value in info.fields.items():
                process.setdefault(key, value)
        parent = process.get("parent")
        if isinstance(parent, dict):
            peid, ppid = parent.get("entity_id"), parent.get("pid")
            if isinstance(peid, str) and isinstance(ppid, int):
                self._related(parent, self._lookup(peid, ppid))
        for leader in ("session_leader", "group_leader"):
            related = process.get(leader)
            if isinstance(related, dict) and isinstance(related.get("pid"), int):
                leid = self._by_pid.get(related["pid"])
                linfo = self.get(leid) if leid else None
                if linfo is not None:
                    related.setdefault("entity_id", leid)
                    self._related(related, linfo)
        session = process.get("session_leader")
        if isinstance(session, dict) and "entry_leader" not in process and "entity_id" in session:
            entry = dict(session)
            entry["entry_meta"] = {"type": self._entry_type(session)}
            process["entry_leader"] = entry
        return doc

    def _entry_type(self, session: dict[str, Any]) -> str:
        """Return how the session was entered (Elastic's ``entry_meta.type``), from its leader's parent."""
        if session.get("pid") == 1:
            return "init"
        info = self.get(str(session.get("entity_id", "")))
        parent = self.get(info.parent_eid) if info is not None and info.parent_eid else None
        if parent is None or not parent.name:
            return "unknown"
        if info is not None and info.ppid == 1 and parent.name in ("systemd", "init"):
            return "init"
        return _ENTRY_TYPES.get(parent.name, "unknown")

    @staticmethod
    def _related(target: dict[str, Any], info: ProcInfo) -> None:
        for key in _RELATED_FIELDS:
            if key in info.fields:
                target.setdefault(key, info.fields[key])


def _read_proc(tgid: int) -> ProcInfo | None:
    """Return what /proc says a live process runs (None: it is gone)."""
    info = ProcInfo(tgid)
    try:
        p = psutil.Process(tgid)
        with p.oneshot():
            info.name = p.name()
            info.ppid = p.ppid()
            try:
                info.executable = p.exe()
                info.args = tuple(p.cmdline())
                info.fields["working_directory"] = p.cwd()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                pass
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None
    _describe(info)
    return info


def _describe(info: ProcInfo) -> None:
    """Fill a /proc-read entry's ECS fields from what was read."""
    if info.executable:
        info.fields["executable"] = info.executable
    if info.name:
        info.fields["name"] = info.name
    if info.args:
        info.fields["args"] = list(info.args)
        info.fields["args_count"] = len(info.args)
        info.fields["command_line"] = " ".join(info.args)


def flat_get(doc: Mapping[str, Any], dotted: str) -> Any:
    """Return a nested document's field by its dotted name (None when absent)."""
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur
