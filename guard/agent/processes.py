"""Process identity and enrichment: entity ids, a bounded process cache and the parent chain.

An entity id is ``"<tgid>-<start>"``, the start being the group leader's start time in kernel
nanoseconds since boot (the kernel reports it with every event), so a recycled pid is another
entity. :class:`ProcessCache` remembers what it learned about an entity (executable, name, command
line, parent) from exec events and, failing that, from ``/proc`` through psutil; it is an LRU of
bounded size. :meth:`ProcessCache.enrich` fills an ECS event's missing ``process.*`` fields.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import psutil

from guard.model import Hook

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


@dataclass(slots=True)
class ProcInfo:
    """What the agent knows of one entity."""

    tgid: int
    executable: str = ""
    name: str = ""
    args: tuple[str, ...] = ()
    ppid: int = 0
    uid: int | None = None


class ProcessCache:
    """A bounded LRU of entity id -> :class:`ProcInfo`, filled from events and /proc."""

    def __init__(self, capacity: int = 65536, *, read_proc: bool = True) -> None:
        self.capacity = capacity
        self.read_proc = read_proc
        self._items: OrderedDict[str, ProcInfo] = OrderedDict()
        self.misses = 0

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
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def _lookup(self, eid: str, tgid: int) -> ProcInfo:
        info = self.get(eid)
        if info is not None:
            return info
        info = ProcInfo(tgid)
        if self.read_proc and tgid > 0:
            self.misses += 1
            try:
                p = psutil.Process(tgid)
                with p.oneshot():
                    info.name = p.name()
                    info.ppid = p.ppid()
                    try:
                        info.executable = p.exe()
                        info.args = tuple(p.cmdline())
                    except (psutil.AccessDenied, psutil.ZombieProcess):
                        pass
            except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
                pass
        self.put(eid, info)
        return info

    def enrich(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Fill a document's missing process fields from the cache (an exec event teaches it)."""
        process = doc.get("process")
        if not isinstance(process, dict):
            return doc
        tgid = process.get("pid")
        eid = process.get("entity_id")
        if not isinstance(tgid, int) or not isinstance(eid, str):
            return doc
        kestrel = doc.get("kestrel") or {}
        execed = kestrel.get("hook") == Hook.BPRM_CHECK_SECURITY.short
        if execed and kestrel.get("decision") not in ("denied", "killed"):
            # the new image: remember it (the name the kernel gives is the comm, args from /proc)
            info = self.get(eid) or ProcInfo(tgid)
            info.executable = str(process.get("executable", ""))
            info.name = os.path.basename(info.executable) or info.name
            info.args = ()
            self.put(eid, info)
            self._args(info, process)
        else:
            info = self._lookup(eid, tgid)
            if info.executable and "executable" not in process:
                process["executable"] = info.executable
            if info.args and "args" not in process:
                process["args"] = list(info.args)
                process["command_line"] = " ".join(info.args)
        parent = process.get("parent")
        if isinstance(parent, dict):
            peid, ppid = parent.get("entity_id"), parent.get("pid")
            if isinstance(peid, str) and isinstance(ppid, int):
                pinfo = self._lookup(peid, ppid)
                if pinfo.executable:
                    parent.setdefault("executable", pinfo.executable)
                if pinfo.name:
                    parent.setdefault("name", pinfo.name)
        return doc

    def _args(self, info: ProcInfo, process: dict[str, Any]) -> None:
        if not self.read_proc:
            return
        try:
            info.args = tuple(psutil.Process(info.tgid).cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ProcessLookupError):
            return
        if info.args:
            process["args"] = list(info.args)
            process["command_line"] = " ".join(info.args)


def flat_get(doc: Mapping[str, Any], dotted: str) -> Any:
    """Return a nested document's field by its dotted name (None when absent)."""
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur
