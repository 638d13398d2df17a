"""An in-memory data plane with the BPF hooks' semantics, for tests that cannot load BPF.

:class:`FakeBackend` holds what the maps would hold (modes, scope, the static
:class:`~guard.lsm.verdicts.VerdictTables`, entity groups, armed verdicts, counters, the ring
buffer, the per-rule modes) and offers one method per hook call (:meth:`~FakeBackend.exec`,
:meth:`~FakeBackend.open`, :meth:`~FakeBackend.connect`, :meth:`~FakeBackend.ptrace`) that returns
what the hook would: 0 (allow) or ``errno.EPERM``; and :meth:`~FakeBackend.chmod`, the chmod
telemetry event; and one per process-ring capture (fork, exec, exit, the syscall-exit changes,
modifications, DNS). It is the reference the kernel tests are compared against, so it
reads as the specification of every hook (over 700 lines on purpose: split, it would no longer
read as one specification):

1. Mode: an OFF (or unconfigured) hook returns at once and counts nothing.
2. Every other call counts ``CALLS``.
3. Scope: the agent is exempt; a call is governed iff its tgid is in the scope pids or its cgroup
   in the scope cgroups. Ungoverned calls return 0.
4. Verdict search, table by table; each gives a (deny, notify) rule id pair for the hook. The
   first deny wins and ends the search; the first notify is remembered.

   - exec, file_open: dynamic, inode, then (if the path is available) exact path, longest prefix,
     longest suffix, the hook's DFA, then subtree (the directories above the file, nearest first,
     by the caller's ``parents`` inode numbers on the file's device, at most ``SUBTREE_DEPTH``). A
     path that is unresolvable, empty or not shorter than ``PATH_MAX`` is unavailable: counted
     once as ``PATH_TOO_LONG`` and flagged. The LSM plane's executable mappings (mmap_file), new
     names (path_link, path_rename) and protection at exec are not modelled.
   - connect: dynamic (any target), then the networks for (port, address), then (0, address).
     Families other than AF_INET/AF_INET6 are allowed after the call count.
   - ptrace: only attach-class modes are considered; dynamic (any target), then the target.
   - dynamic: the caller's group, for the call's (dev, ino), then for any target; an expired
     entry is deleted and skipped.

5. Decision: the deciding deny's mode is its rule's own (:meth:`~FakeBackend.set_rule_modes`) or
   else the hook's. Off drops the deny, as if the rule had not matched (the search is not
   resumed: a verdict holds one deny rule per hook). Otherwise, or for an unavailable path under
   ``HF_LONG_PATH_DENY`` (in the hook's mode), it is denied under enforce (``DENIES``, a DENIED
   event, EPERM) and reported under detect (``WOULD_BLOCK``, a WOULD_BLOCK event, 0). Without a
   deny, a notify (unless its rule is off), the hook's ``HF_EMIT_ALL`` interest, its
   ``HF_EMIT_CREATED`` interest for an open that created its file, or an unavailable path is
   reported as an ALLOWED event, in that order of preference.

Every event carries the calling task's lineage (``ppid``, ``start_ns``, ``parent_start_ns``) and,
for file events, ``mode`` (the inode's i_mode) and the ``EVF_CREATED`` / ``EVF_WRITE`` flags.

chmod is telemetry, not a hook: while file_open is not off and has ``HF_EMIT_CHMOD``, a governed
chmod emits an ALLOWED event of kind ``Telemetry.CHMOD`` (match ALL, the new mode, the path, or the
``EVF_PATH_TOO_LONG`` flag without one). It counts no call and never denies; its events, drops and
over-long paths are counted under file_open.

Two rings, as in the kernel: decisions (DENIED, WOULD_BLOCK) go to the decision ring, ALLOWED
events (telemetry) to the event ring; :meth:`~FakeBackend.poll_events` returns the decisions first.
An allowed event is dropped (``RINGBUF_DROPS``) when the event ring already holds
``ringbuf_capacity`` events; a decision is dropped when the decision ring holds
``decision_capacity``: ``DECISION_DROPS`` is counted and so is its (rule, hook, decision) in the
drop table (:meth:`~FakeBackend.decision_drops`), unless that table already holds
``max_decision_drops`` other keys (the counter alone then). Otherwise ``EMITTED`` is counted. With
``pinned`` the counters and the drop table outlive :meth:`~FakeBackend.load` (as a plane's pinned
maps outlive an agent); nothing else is kept. :meth:`~FakeBackend.submit` hands the rings a raw
record, decoded as the real planes decode theirs (a record of the wrong size is counted as
``ring_bad_size``, never decoded).
"""

from __future__ import annotations

import copy
import ctypes
import errno
import ipaddress
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from guard.errors import MapError
from guard.lsm import abi
from guard.lsm.abi import Counter, Decision, Match, ModeId
from guard.lsm.ring import RingDecoder
from guard.lsm.verdicts import (
    Action,
    Caller,
    DynamicVerdict,
    VerdictTables,
    VerdictValue,
    lpm_lookup,
    net_lookup_keys,
    normalise_ip,
)
from guard.model import HOOKS, BackendName, Hook, Telemetry

if TYPE_CHECKING:
    from guard.lsm.backend import DropKey, KernelBackend

__all__ = ["FakeBackend"]

#: One table's answer for one call: (deny rule id, notify rule id, the table); 0 = none.
_Hit = tuple[int, int, Match]
_DynKey = tuple[int, Hook, int, int]


@dataclass(frozen=True)
class _Task:
    """The calling task, as the hook reads it from ``current``."""

    tgid: int
    pid: int
    uid: int
    comm: bytes
    cgroup: int
    ppid: int = 0
    start_ns: int = 0
    parent_start_ns: int = 0
    exe: tuple[int, int] = (0, 0)  # the executable it runs: (kernel dev_t, inode); (0, 0) = none
    parent_name: bytes = b""  # its parent's name, as process.parent.name says

    def caller(self) -> Caller:
        """Return what subject conditions test of this task."""
        name = self.comm.split(b"\0")[0][: abi.COMM_LEN - 1]
        return Caller(name=name, parent_name=self.parent_name, uid=self.uid)


def _task(
    tgid: int,
    pid: int | None,
    uid: int,
    comm: bytes,
    cgroup: int,
    lineage: tuple[int, int, int] = (0, 0, 0),
    exe: tuple[int, int] = (0, 0),
    parent_name: bytes = b"",
) -> _Task:
    ppid, start_ns, parent_start_ns = lineage
    return _Task(
        tgid=tgid,
        pid=tgid if pid is None else pid,
        uid=uid,
        comm=comm,
        cgroup=cgroup,
        ppid=ppid,
        start_ns=start_ns,
        parent_start_ns=parent_start_ns,
        exe=exe,
        parent_name=parent_name,
    )


def _rule_hit(rule_id: int, action: Action, match: Match) -> _Hit:
    """Return one (rule, action) as a table answer (DFA rules, armed verdicts)."""
    return (rule_id, 0, match) if action == Action.DENY else (0, rule_id, match)


class FakeBackend:
    """The data plane in memory: the maps' contents, and one method per hook call."""

    def __init__(
        self,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        ringbuf_capacity: int = 4096,
        decision_capacity: int = 4096,
        max_decision_drops: int = 4096,
        pinned: bool = False,
    ) -> None:
        for what, n in (
            ("ringbuf_capacity", ringbuf_capacity),
            ("decision_capacity", decision_capacity),
            ("max_decision_drops", max_decision_drops),
        ):
            if n < 0:
                raise ValueError(f"{what} must be >= 0, not {n}")
        self.name: BackendName = BackendName.FAKE
        self._clock = clock
        self._capacity = ringbuf_capacity
        self._decision_capacity = decision_capacity
        self._max_drops = max_decision_drops
        self._pinned = pinned
        self._loaded = False
        self._reset()
        self._reset_accounting()

    def _reset(self) -> None:
        """Empty every map, as a fresh load finds them."""
        self._modes: dict[Hook, ModeId] = {}
        self._agent_tgid = 0
        self._scope_cgroups: frozenset[int] = frozenset()
        self._scope_pids: frozenset[int] = frozenset()
        self._all_tasks = False
        self._tables = VerdictTables()
        self._caller: Caller | None = None
        self._entities: dict[int, int] = {}
        self._dynamic: dict[_DynKey, DynamicVerdict] = {}
        self._events: list[abi.Event] = []
        self._decisions: list[abi.Event] = []
        self._procs: list[abi.ProcRecord] = []
        self._process_events = False
        self._env_vars = False
        self._dns = False
        self._modify = False
        self._syscalls = True
        self._ring = RingDecoder(str(self.name))
        self._rule_modes: dict[int, ModeId] = {}

    def _reset_accounting(self) -> None:
        """Empty the counters and the decision-drop table (a new table: a new epoch)."""
        self._counters = {hook: dict.fromkeys(Counter, 0) for hook in HOOKS}
        self._drops: dict[DropKey, int] = {}
        self._drops_epoch = f"fake-{uuid.uuid4().hex}"

    # ------------------------------------------------------------------ KernelBackend

    @property
    def loaded(self) -> bool:
        """Whether the data plane is loaded."""
        return self._loaded

    def load(self) -> None:
        """Load: every map starts empty (``pinned``: but counters and drop table), so everything allows."""
        self._reset()
        if not self._pinned:
            self._reset_accounting()
        self._loaded = True

    def close(self) -> None:
        """Unload (closing an unloaded backend is fine)."""
        self._loaded = False

    def configure(self, modes: Mapping[Hook, ModeId], *, agent_tgid: int) -> None:
        """Set every hook's mode (missing hooks: off) and the agent's tgid (never governed)."""
        self._require_loaded("guard_config")
        self._modes = {hook: ModeId(mode) for hook, mode in modes.items()}
        self._agent_tgid = agent_tgid

    def set_scope(
        self, *, cgroups: Iterable[int] = (), pids: Iterable[int] = (), all_tasks: bool = False
    ) -> None:
        """Replace the governed set: cgroup v2 ids and tgids, or every task (but the agent)."""
        self._require_loaded("guard_scope_cgroups")
        self._scope_cgroups = frozenset(cgroups)
        self._scope_pids = frozenset(pids)
        self._all_tasks = all_tasks

    def set_rule_modes(self, modes: Mapping[int, ModeId]) -> None:
        """Replace every rule's mode override (a rule without one follows its hook's mode)."""
        self._require_loaded("guard_rule_modes")
        new = {}
        for rule, mode in modes.items():
            if isinstance(rule, bool) or not isinstance(rule, int) or not 0 < rule <= 0xFFFF_FFFF:
                raise MapError(f"guard_rule_modes: rule id {rule!r} is not in 1..{0xFFFF_FFFF}")
            try:
                new[rule] = ModeId(mode)
            except ValueError:
                raise MapError(f"rule {rule}: mode {mode!r} is not a ModeId") from None
        self._rule_modes = new

    def rule_modes(self) -> dict[int, ModeId]:
        """Return every rule's mode override."""
        self._require_loaded("guard_rule_modes")
        return dict(self._rule_modes)

    def apply(self, tables: VerdictTables) -> None:
        """Replace every static table and the per-hook flags with a snapshot of ``tables``."""
        self._require_loaded("guard_paths")
        self._tables = copy.deepcopy(tables)

    def track(self, tgid: int, group: int) -> None:
        """Put a process into an entity group; its future children inherit the group."""
        self._require_loaded("guard_entities")
        self._entities[tgid] = group

    def untrack(self, tgid: int) -> None:
        """Remove a process from its group (absent is fine)."""
        self._require_loaded("guard_entities")
        self._entities.pop(tgid, None)

    def arm(self, verdict: DynamicVerdict) -> None:
        """Arm a per-entity verdict, replacing one with the same group, hook and target."""
        self._require_loaded("guard_dynamic")
        self._dynamic[(verdict.group, verdict.hook, verdict.dev, verdict.ino)] = verdict

    def disarm(self, group: int, hook: Hook, *, dev: int = 0, ino: int = 0) -> None:
        """Remove an armed verdict (absent is fine)."""
        self._require_loaded("guard_dynamic")
        self._dynamic.pop((group, hook, dev, ino), None)

    def counters(self, hook: Hook) -> dict[abi.Counter, int]:
        """Return the hook's six counters."""
        self._require_loaded("guard_counters")
        return dict(self._counters[hook])

    def poll_events(self, timeout_ms: int = 100) -> list[abi.Event]:
        """Return and clear the queued decisions, then events (never waits: the calls are synchronous)."""
        self._require_loaded("guard_events")
        batch = self._decisions + self._events
        self._decisions, self._events = [], []
        return batch

    def process_records(self) -> list[abi.ProcRecord]:
        """Return and clear the queued process records (forks, execs, exits)."""
        self._require_loaded("guard_procs")
        records, self._procs = self._procs, []
        return records

    def set_process_events(
        self,
        on: bool,
        *,
        env_vars: bool = False,
        syscalls: bool = True,
        modify: bool = False,
        dns: bool = False,
    ) -> None:
        """Report governed forks, execs and exits to the process ring (as ``GUARD_CF_PROCESS_EVENTS``).

        With them, what the flags ask for (as the other ``GUARD_CF_*`` flags).
        """
        self._process_events = on
        self._env_vars = env_vars and on
        self._syscalls = syscalls and on
        self._modify = modify and on
        self._dns = dns and on

    def decision_drops(self) -> dict[DropKey, int]:
        """Return the decisions the decision ring had no room for, by (rule, hook, decision)."""
        self._require_loaded("guard_decision_drops")
        return dict(self._drops)

    def decision_drops_epoch(self) -> str:
        """Return the drop table's identity (a new one whenever the table starts over)."""
        self._require_loaded("guard_decision_drops")
        return self._drops_epoch

    def plane_counters(self) -> dict[str, int]:
        """Return the plane's own counters (``ring_bad_size``: ring records of the wrong size)."""
        self._require_loaded("guard_events")
        return self._ring.counters()

    def submit(self, record: bytes) -> None:
        """Hand the rings one raw record, as the kernel does (decoded as a real plane decodes it).

        A decoded decision joins the decision ring, anything else the event ring (no capacity applies).
        """
        self._require_loaded("guard_events")
        event = self._ring.decode(record)
        if event is not None:
            allowed = event.decision == Decision.ALLOWED
            (self._events if allowed else self._decisions).append(event)

    # ------------------------------------------------------------------ inspection

    def modes(self) -> dict[Hook, ModeId]:
        """Return every hook's mode (an unconfigured hook is off)."""
        return {hook: self._modes.get(hook, ModeId.OFF) for hook in HOOKS}

    def group_of(self, tgid: int) -> int | None:
        """Return the entity group of a process, or None when it is not tracked."""
        self._require_loaded("guard_entities")
        return self._entities.get(tgid)

    def armed(self) -> list[DynamicVerdict]:
        """Every armed verdict still in the map (expired ones are deleted only when looked up)."""
        self._require_loaded("guard_dynamic")
        return list(self._dynamic.values())

    # ------------------------------------------------------------------ process lifecycle

    def fork(
        self,
        parent_tgid: int,
        child_tgid: int,
        *,
        cgroup: int = 0,
        start_ns: int = 0,
        parent_start_ns: int = 0,
        uid: int = 0,
        comm: bytes = b"",
    ) -> None:
        """Start a process: it joins its parent's group, if the parent is tracked (and is reported)."""
        self._require_loaded("guard_entities")
        group = self._entities.get(parent_tgid)
        if group is not None and child_tgid != parent_tgid:
            self._entities[child_tgid] = group
        if child_tgid != parent_tgid:
            parent = _task(parent_tgid, None, uid, comm, cgroup, (0, 0, 0), (0, 0))
            self._proc_record(
                abi.ProcEvent(), abi.PROC_FORK, parent,
                tgid=child_tgid, ppid=parent_tgid, start_ns=start_ns, parent_start_ns=parent_start_ns,
            )  # fmt: skip

    def exit(self, tgid: int, *, cgroup: int = 0, start_ns: int = 0, status: int = 0, uid: int = 0) -> None:
        """End a process: it leaves its group (and is reported, with its wait status)."""
        self._require_loaded("guard_entities")
        self._entities.pop(tgid, None)
        record = abi.ProcEvent()
        record.exit_code = status
        self._report(record, abi.PROC_EXIT, tgid, cgroup=cgroup, start_ns=start_ns, uid=uid)

    def delete(
        self, tgid: int, *, path: str, cwd: str = "", cgroup: int = 0, start_ns: int = 0, uid: int = 0
    ) -> None:
        """Report a successful unlink of ``path`` (relative to ``cwd`` when not absolute); never decided."""
        self._require_loaded("guard_procs")
        if not self._syscalls:
            return
        record = abi.FileEvent(path=os.fsencode(path), dir=_base(path, cwd))
        self._report(record, abi.PROC_DELETE, tgid, cgroup=cgroup, start_ns=start_ns, uid=uid)

    def modify(self, tgid: int, *, path: str, cgroup: int = 0, start_ns: int = 0, uid: int = 0) -> None:
        """Report the first write through a file ``tgid`` opened (``path``: absolute, as walked).

        As bpf/hooks/syscall_events.bpf.c does once modification events are asked for.
        """
        self._require_loaded("guard_procs")
        if not self._modify:
            return
        record = abi.FileEvent(path=os.fsencode(path))
        self._report(record, abi.PROC_MODIFY, tgid, cgroup=cgroup, start_ns=start_ns, uid=uid)

    def tcp_close(
        self,
        tgid: int,
        *,
        local: tuple[str, int],
        remote: tuple[str, int],
        cgroup: int = 0,
        start_ns: int = 0,
        uid: int = 0,
    ) -> None:
        """Report the task's own close of an established TCP connection, as guard_tcp_state does."""
        self._require_loaded("guard_procs")
        if not self._syscalls:
            return
        v6 = ipaddress.ip_address(remote[0]).version == 6
        record = abi.NetEvent(
            family=socket.AF_INET6 if v6 else socket.AF_INET, local_port=local[1], remote_port=remote[1]
        )
        record.local_addr[:] = normalise_ip(local[0]).packed
        record.remote_addr[:] = normalise_ip(remote[0]).packed
        self._report(record, abi.PROC_DISCONNECT, tgid, cgroup=cgroup, start_ns=start_ns, uid=uid)

    def ptrace_attach(
        self,
        tgid: int,
        *,
        child: int,
        request: int = abi.PTRACE_ATTACH,
        cgroup: int = 0,
        start_ns: int = 0,
        uid: int = 0,
    ) -> None:
        """Report a ptrace attach (or seize) of ``child`` that succeeded, as guard_sys_exit does."""
        self._require_loaded("guard_procs")
        if not self._syscalls or request not in (abi.PTRACE_ATTACH, abi.PTRACE_SEIZE):
            return
        record = abi.PtraceEvent(child_pid=child, request=request)
        self._report(record, abi.PROC_PTRACE, tgid, cgroup=cgroup, start_ns=start_ns, uid=uid)

    def rename(
        self,
        tgid: int,
        *,
        old: str,
        new: str,
        cwd: str = "",
        cgroup: int = 0,
        start_ns: int = 0,
        uid: int = 0,
    ) -> None:
        """Report a successful rename of ``old`` to ``new`` (relative ones to ``cwd``); never decided."""
        self._require_loaded("guard_procs")
        if not self._syscalls:
            return
        record = abi.FileEvent(
            path=os.fsencode(new),
            dir=_base(new, cwd),
            old_path=os.fsencode(old),
            old_dir=_base(old, cwd),
        )
        self._report(record, abi.PROC_RENAME, tgid, cgroup=cgroup, start_ns=start_ns, uid=uid)

    def dns(
        self,
        tgid: int,
        *,
        message: bytes,
        server: str,
        port: int = 53,
        local: str = "",
        local_port: int = 0,
        answer: bool = False,
        cgroup: int = 0,
        start_ns: int = 0,
        uid: int = 0,
    ) -> None:
        """Report a DNS message sent to ``server``:``port`` (``answer``: read back from it).

        As bpf/hooks/dns.bpf.c does: only a send to port 53 (and a read from that server), its first
        ``DNS_MAX`` bytes; never decided.
        """
        self._require_loaded("guard_procs")
        if not self._dns or port != 53 or len(message) < 12:
            return
        v6 = ipaddress.ip_address(server).version == 6
        record = abi.DnsEvent(
            family=socket.AF_INET6 if v6 else socket.AF_INET,
            local_port=local_port,
            remote_port=port,
            len=len(message),
            data_len=min(len(message), abi.DNS_MAX),
        )
        record.local_addr[:] = normalise_ip(local or ("::1" if v6 else "127.0.0.1")).packed
        record.remote_addr[:] = normalise_ip(server).packed
        kept = message[: abi.DNS_MAX]
        record.data[: len(kept)] = kept
        kind = abi.PROC_DNS_ANSWER if answer else abi.PROC_DNS_QUERY
        self._report(record, kind, tgid, cgroup=cgroup, start_ns=start_ns, uid=uid)

    def _report(
        self, record: abi.ProcRecord, kind: int, tgid: int, *, cgroup: int, start_ns: int, uid: int
    ) -> None:
        """Queue a record the kernel reports for ``tgid`` alone (no comm, no lineage: exits, changes)."""
        task = _task(tgid, None, uid, b"", cgroup, (0, 0, 0), (0, 0))
        self._proc_record(record, kind, task, tgid=tgid, start_ns=start_ns)

    def _proc_record(
        self,
        record: abi.ProcRecord,
        kind: int,
        task: _Task,
        *,
        tgid: int,
        ppid: int = 0,
        start_ns: int = 0,
        parent_start_ns: int = 0,
    ) -> None:
        """Queue a process record when process events are on and ``task`` (the reporting one) is governed."""
        if not self._process_events or not self._governed(task):
            return
        proc = record if isinstance(record, abi.ProcEvent) else record.proc
        proc.ts_ns = self._clock()
        proc.cgroup_id = task.cgroup
        proc.kind = kind
        proc.pid = proc.tgid = tgid
        proc.ppid = ppid
        proc.start_ns, proc.parent_start_ns = start_ns, parent_start_ns
        proc.uid = proc.euid = proc.suid = task.uid
        proc.comm = task.comm
        self._procs.append(record)

    # ------------------------------------------------------------------ hook calls

    def exec(
        self,
        tgid: int,
        *,
        path: str | bytes | None,
        dev: int = 0,
        ino: int = 0,
        cgroup: int = 0,
        pid: int | None = None,
        uid: int = 0,
        comm: bytes = b"",
        parent_name: bytes = b"",
        mode: int = 0,
        ppid: int = 0,
        start_ns: int = 0,
        parent_start_ns: int = 0,
        exe_dev: int = 0,
        exe_ino: int = 0,
        parents: Sequence[int] = (),
        args: Sequence[str] = (),
        cwd: str = "",
        env: Sequence[str] = (),
    ) -> int:
        """Run bprm_check_security for an exec of ``path`` (None: unresolvable); 0 or EPERM.

        ``mode`` is the file's i_mode; ``ppid``, ``start_ns`` and ``parent_start_ns`` the caller's
        lineage (its events carry them). An exec that went through is reported to the process ring
        (with ``args`` and ``cwd``) when process events are on, as sched_process_exec does.
        """
        task = _task(
            tgid, pid, uid, comm, cgroup, (ppid, start_ns, parent_start_ns), (exe_dev, exe_ino), parent_name
        )
        result = self._file_hook(Hook.BPRM_CHECK_SECURITY, task, path, dev, ino, mode=mode, parents=parents)
        if result == 0 and self._process_events:
            record = abi.ExecEvent()
            exe, where = (b"" if path is None else os.fsencode(path)), os.fsencode(cwd)
            if len(exe) < abi.PATH_MAX:
                record.exe = exe
            if not record.exe:
                record.proc.flags |= abi.PF_EXE_UNRESOLVED
            if len(where) < abi.PATH_MAX:
                record.cwd = where
            else:
                record.proc.flags |= abi.PF_CWD_UNRESOLVED
            packed = b"".join(os.fsencode(a) + b"\0" for a in args)
            if len(packed) > abi.ARGS_MAX - 1:
                packed = packed[: abi.ARGS_MAX - 1]
                record.proc.flags |= abi.PF_ARGS_TRUNCATED
            strings = ctypes.addressof(record) + abi.ExecEvent.strings.offset
            ctypes.memmove(strings, packed, len(packed))
            record.proc.args_len = len(packed)
            record.proc.argc = len(args)
            if self._env_vars:
                environ = b"".join(os.fsencode(e) + b"\0" for e in env)[: abi.ENV_MAX - 1]
                ctypes.memmove(strings + len(packed), environ, len(environ))
                record.proc.env_len = len(environ)
            self._proc_record(
                record,
                abi.PROC_EXEC,
                task,
                tgid=tgid,
                ppid=ppid,
                start_ns=start_ns,
                parent_start_ns=parent_start_ns,
            )
        return result

    def open(
        self,
        tgid: int,
        *,
        path: str | bytes | None,
        dev: int = 0,
        ino: int = 0,
        cgroup: int = 0,
        pid: int | None = None,
        uid: int = 0,
        comm: bytes = b"",
        parent_name: bytes = b"",
        mode: int = 0,
        created: bool = False,
        write: bool = False,
        ppid: int = 0,
        start_ns: int = 0,
        parent_start_ns: int = 0,
        exe_dev: int = 0,
        exe_ino: int = 0,
        parents: Sequence[int] = (),
    ) -> int:
        """Run file_open for ``path`` (None: unresolvable); 0 or EPERM.

        ``created``: this open created the file (``FMODE_CREATED``); ``write``: it is open for
        writing (``FMODE_WRITE``); ``mode``: the file's i_mode.
        """
        task = _task(
            tgid, pid, uid, comm, cgroup, (ppid, start_ns, parent_start_ns), (exe_dev, exe_ino), parent_name
        )
        flags = (abi.EVF_CREATED if created else 0) | (abi.EVF_WRITE if write else 0)
        return self._file_hook(Hook.FILE_OPEN, task, path, dev, ino, mode=mode, flags=flags, parents=parents)

    def chmod(
        self,
        tgid: int,
        *,
        path: str | bytes | None,
        mode: int,
        dev: int = 0,
        ino: int = 0,
        cgroup: int = 0,
        pid: int | None = None,
        uid: int = 0,
        comm: bytes = b"",
        parent_name: bytes = b"",
        ppid: int = 0,
        start_ns: int = 0,
        parent_start_ns: int = 0,
        exe_dev: int = 0,
        exe_ino: int = 0,
    ) -> int:
        """Run path_chmod for a chmod of ``path`` (None: unresolvable) to ``mode``; always 0.

        Emits a ``Telemetry.CHMOD`` event while file_open is not off and has ``HF_EMIT_CHMOD`` and the
        caller is governed; counts no call.
        """
        hook = Telemetry.CHMOD.gate
        self._require_loaded(Telemetry.CHMOD.value)
        task = _task(
            tgid, pid, uid, comm, cgroup, (ppid, start_ns, parent_start_ns), (exe_dev, exe_ino), parent_name
        )
        if self._modes.get(hook, ModeId.OFF) == ModeId.OFF:
            return 0
        if not self._tables.hook_flags.get(hook, 0) & abi.HF_EMIT_CHMOD or not self._governed(task):
            return 0
        event = self._new_event(hook, task)
        event.hook = Telemetry.CHMOD.abi
        event.dev = dev
        event.ino = ino
        event.mode = mode
        raw = None if path is None else os.fsencode(path)
        if raw is None or not 0 < len(raw) < abi.PATH_MAX:
            self._count(hook, Counter.PATH_TOO_LONG)
            event.flags |= abi.EVF_PATH_TOO_LONG
        else:
            event.path = raw
        self._emit(hook, event, Decision.ALLOWED, 0, Match.ALL)
        return 0

    def connect(
        self,
        tgid: int,
        *,
        address: str,
        port: int,
        family: int | None = None,
        cgroup: int = 0,
        pid: int | None = None,
        uid: int = 0,
        comm: bytes = b"",
        parent_name: bytes = b"",
        sendmsg: bool = False,
        ppid: int = 0,
        start_ns: int = 0,
        parent_start_ns: int = 0,
        exe_dev: int = 0,
        exe_ino: int = 0,
    ) -> int:
        """Run socket_connect to ``address``:``port`` (family from the address by default); 0 or EPERM.

        ``sendmsg=True`` is socket_sendmsg with that explicit destination: the same decision, and
        the event carries ``EVF_SENDMSG``.
        """
        hook = Hook.SOCKET_CONNECT
        task = _task(
            tgid, pid, uid, comm, cgroup, (ppid, start_ns, parent_start_ns), (exe_dev, exe_ino), parent_name
        )
        mode = self._enter(hook, task)
        if mode == ModeId.OFF:
            return 0
        if family is None:
            family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        if family not in (socket.AF_INET, socket.AF_INET6):
            return 0
        event = self._new_event(hook, task)
        event.flags |= abi.EVF_SENDMSG if sendmsg else 0
        event.family = family
        event.port = port
        event.addr[:] = normalise_ip(address).packed
        return self._finish(hook, mode, event, self._net_hits(task.tgid, address, port), caller=task)

    def ptrace(
        self,
        tgid: int,
        *,
        target_tgid: int,
        mode: int = abi.PTRACE_MODE_ATTACH,
        cgroup: int = 0,
        pid: int | None = None,
        uid: int = 0,
        comm: bytes = b"",
        parent_name: bytes = b"",
        ppid: int = 0,
        start_ns: int = 0,
        parent_start_ns: int = 0,
        exe_dev: int = 0,
        exe_ino: int = 0,
    ) -> int:
        """Run ptrace_access_check on ``target_tgid`` with a ptrace access ``mode``; 0 or EPERM."""
        hook = Hook.PTRACE_ACCESS_CHECK
        task = _task(
            tgid, pid, uid, comm, cgroup, (ppid, start_ns, parent_start_ns), (exe_dev, exe_ino), parent_name
        )
        hook_mode = self._enter(hook, task)
        if hook_mode == ModeId.OFF or not mode & abi.PTRACE_MODE_ATTACH:
            return 0
        event = self._new_event(hook, task)
        event.target_tgid = target_tgid
        return self._finish(hook, hook_mode, event, self._ptrace_hits(task.tgid, target_tgid), caller=task)

    # ------------------------------------------------------------------ the hooks' shared steps

    def _require_loaded(self, what: str) -> None:
        if not self._loaded:
            raise MapError(f"{what}: the data plane is not loaded")

    def _count(self, hook: Hook, counter: Counter) -> None:
        self._counters[hook][counter] += 1

    def _enter(self, hook: Hook, task: _Task) -> ModeId:
        """Run steps 1-3: return the hook's mode if the call is governed, else OFF."""
        self._require_loaded(hook.value)
        mode = self._modes.get(hook, ModeId.OFF)
        if mode == ModeId.OFF:
            return ModeId.OFF
        self._count(hook, Counter.CALLS)
        return mode if self._governed(task) else ModeId.OFF

    def _governed(self, task: _Task) -> bool:
        """Step 3: the agent is exempt; otherwise every task (all_tasks), or its tgid or cgroup in scope."""
        if task.tgid == self._agent_tgid:
            return False
        return self._all_tasks or task.tgid in self._scope_pids or task.cgroup in self._scope_cgroups

    def _new_event(self, hook: Hook, task: _Task) -> abi.Event:
        """Return an event with the task's fields; the decision is filled in when it is emitted."""
        event = abi.Event()
        event.cgroup_id = task.cgroup
        event.hook = hook.abi
        event.pid = task.pid
        event.tgid = task.tgid
        event.uid = task.uid
        event.comm = task.comm[: abi.COMM_LEN - 1]
        event.ppid = task.ppid
        event.start_ns = task.start_ns
        event.parent_start_ns = task.parent_start_ns
        return event

    def _file_hook(
        self,
        hook: Hook,
        task: _Task,
        path: str | bytes | None,
        dev: int,
        ino: int,
        *,
        mode: int = 0,
        flags: int = 0,
        parents: Sequence[int] = (),
    ) -> int:
        hook_mode = self._enter(hook, task)
        if hook_mode == ModeId.OFF:
            return 0
        event = self._new_event(hook, task)
        event.dev = dev
        event.ino = ino
        event.mode = mode
        event.flags |= flags
        raw = None if path is None else os.fsencode(path)
        if raw is None or not 0 < len(raw) < abi.PATH_MAX:
            raw = None
            self._count(hook, Counter.PATH_TOO_LONG)
            event.flags |= abi.EVF_PATH_TOO_LONG
        else:
            event.path = raw
        hits = self._file_hits(hook, task.tgid, dev, ino, raw, parents)
        return self._finish(hook, hook_mode, event, hits, path_unavailable=raw is None, caller=task)

    def _dynamic_hits(self, hook: Hook, tgid: int, dev: int = 0, ino: int = 0) -> Iterator[_Hit]:
        """Yield the caller's group's armed verdicts: for this target, then for any target."""
        group = self._entities.get(tgid)
        if group is None:
            return
        keys = [(group, hook, dev, ino)]
        if dev or ino:
            keys.append((group, hook, 0, 0))
        for key in keys:
            verdict = self._dynamic.get(key)
            if verdict is None:
                continue
            if verdict.expires_ns and self._clock() > verdict.expires_ns:
                del self._dynamic[key]
                continue
            yield _rule_hit(verdict.rule_id, verdict.action, Match.DYNAMIC)

    def _file_hits(
        self, hook: Hook, tgid: int, dev: int, ino: int, path: bytes | None, parents: Sequence[int] = ()
    ) -> Iterator[_Hit]:
        tables = self._tables
        yield from self._dynamic_hits(hook, tgid, dev, ino)
        yield self._table_hit(tables.inodes.get((dev, ino)), hook, Match.INODE)
        if path is not None:
            yield from self._path_hits(hook, path)
        for parent in parents[: abi.SUBTREE_DEPTH]:
            yield self._table_hit(tables.subtrees.get((dev, parent)), hook, Match.SUBTREE)

    def _path_hits(self, hook: Hook, path: bytes) -> Iterator[_Hit]:
        tables = self._tables
        yield self._table_hit(tables.paths.get(path), hook, Match.PATH)
        yield self._table_hit(
            lpm_lookup(tables.prefixes, path.ljust(abi.PATH_MAX, b"\0")), hook, Match.PREFIX
        )
        yield self._table_hit(
            lpm_lookup(tables.suffixes, path[::-1].ljust(abi.PATH_MAX, b"\0")), hook, Match.SUFFIX
        )
        program = tables.dfas.get(hook)
        if program is not None:
            first = program.tables.walk(path).first
            if first:
                rule_id, action = program.rules[first - 1]
                yield _rule_hit(rule_id, action, Match.DFA)

    def _net_hits(self, tgid: int, address: str, port: int) -> Iterator[_Hit]:
        yield from self._dynamic_hits(Hook.SOCKET_CONNECT, tgid)
        for _bits, data in net_lookup_keys(address, port):
            yield self._table_hit(lpm_lookup(self._tables.nets, data), Hook.SOCKET_CONNECT, Match.NET)

    def _ptrace_hits(self, tgid: int, target_tgid: int) -> Iterator[_Hit]:
        yield from self._dynamic_hits(Hook.PTRACE_ACCESS_CHECK, tgid)
        yield self._table_hit(self._tables.ptrace.get(target_tgid), Hook.PTRACE_ACCESS_CHECK, Match.PTRACE)

    def _finish(
        self,
        hook: Hook,
        mode: ModeId,
        event: abi.Event,
        hits: Iterable[_Hit],
        *,
        path_unavailable: bool = False,
        caller: _Task | None = None,
    ) -> int:
        """Run steps 4-5: search the tables in order (the first deny wins) and decide."""
        deny: tuple[int, Match] | None = None
        notify: tuple[int, Match] | None = None
        self._caller = caller.caller() if caller is not None else None  # read by _table_hit
        for deny_id, notify_id, match in hits:
            if deny_id:
                deny = (deny_id, match)
                break
            if notify_id and notify is None:
                notify = (notify_id, match)
        self._caller = None
        flags = self._tables.hook_flags.get(hook, 0)
        if deny is not None and caller is not None and (deny[0], *caller.exe) in self._tables.exemptions:
            deny = None  # the rule exempts the caller's executable
        if deny is not None:
            mode = self._rule_modes.get(deny[0], mode)
            if mode == ModeId.OFF:
                deny = None  # the deciding rule is off: as if it had not matched
        if deny is None and path_unavailable and flags & abi.HF_LONG_PATH_DENY:
            deny = (0, Match.LONG_PATH)
            mode = self._modes.get(hook, ModeId.OFF)
        if deny is not None:
            if mode == ModeId.ENFORCE:
                self._count(hook, Counter.DENIES)
                self._emit(hook, event, Decision.DENIED, *deny)
                return errno.EPERM
            self._count(hook, Counter.WOULD_BLOCK)
            self._emit(hook, event, Decision.WOULD_BLOCK, *deny)
            return 0
        if notify is not None and self._rule_modes.get(notify[0]) != ModeId.OFF:
            self._emit(hook, event, Decision.ALLOWED, *notify)
        elif (
            flags & abi.HF_EMIT_ALL and not (hook is Hook.BPRM_CHECK_SECURITY and self._process_events)
        ) or (
            flags & abi.HF_EMIT_CREATED and event.flags & abi.EVF_CREATED
        ):  # with process records on, every exec is reported there already
            self._emit(hook, event, Decision.ALLOWED, 0, Match.ALL)
        elif path_unavailable:
            self._emit(hook, event, Decision.ALLOWED, 0, Match.LONG_PATH)
        return 0

    def _table_hit(self, value: VerdictValue | None, hook: Hook, match: Match) -> _Hit:
        """Return a static table's answer for the hook and the caller being decided.

        An absent key answers nothing; subtree verdicts carry no caller tests (as in the kernel).
        """
        caller = None if match is Match.SUBTREE else self._caller
        deny, notify = self._tables.decide(value, hook, caller)
        return deny, notify, match

    def _emit(self, hook: Hook, event: abi.Event, decision: Decision, rule_id: int, match: Match) -> None:
        if decision == Decision.ALLOWED:
            ring = self._events
            if len(ring) >= self._capacity:
                self._count(hook, Counter.RINGBUF_DROPS)
                return
        else:
            ring = self._decisions
            if len(ring) >= self._decision_capacity:
                key = (rule_id, hook, decision)
                if key in self._drops or len(self._drops) < self._max_drops:
                    self._drops[key] = self._drops.get(key, 0) + 1
                self._count(hook, Counter.DECISION_DROPS)
                return
        event.ts_ns = self._clock()
        event.decision = decision
        event.rule_id = rule_id
        event.match = match
        ring.append(event)
        self._count(hook, Counter.EMITTED)


def _base(name: str, cwd: str) -> bytes:
    """Return the base directory of a relative name as the kernel reports it ("" for an absolute name)."""
    return b"" if name.startswith("/") else os.fsencode(cwd)


if TYPE_CHECKING:

    def _conforms(backend: FakeBackend) -> KernelBackend:
        """Let mypy check FakeBackend against the protocol."""
        return backend
