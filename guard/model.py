"""Core value types shared by every layer: hooks and telemetry kinds, modes and backend names.

A hook is one :class:`Hook` member, and everything known about it lives on that member: its
kernel LSM hook name (the value, as JSON, the audit trail and the CLI print it), its id in the C
``enum guard_hook`` (``bpf/include/guard_abi.h``; the index of its slot in every per-hook array),
its short name (``kestrel.hook`` in ECS, a plan's hook), the ECS category and the
(``event.type``, ``event.action``) shapes of its events, and what each kernel plane does on it.

A ring-buffer record's ``hook`` field holds a hook's id or a :class:`Telemetry` kind's: a chmod is
reported and never decided (no mode, flags or verdicts of its own), so it is not a hook.
:data:`EVENT_KINDS` is both, in ABI order; :func:`event_kind` reads a record's field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

__all__ = [
    "EVENT_KINDS",
    "HOOKS",
    "BackendName",
    "EventKind",
    "EventShape",
    "Hook",
    "Mode",
    "PlaneFacts",
    "Reaction",
    "Telemetry",
    "event_kind",
]


class Reaction(enum.StrEnum):
    """What a plane does under enforce to a call a verdict denies."""

    #: The call fails with EPERM (an LSM hook, a cgroup program).
    INLINE_DENY = "inline deny"
    #: The call has happened; the caller gets SIGKILL before it runs another user instruction.
    KILL_REACTION = "kill reaction"


@dataclass(frozen=True, slots=True)
class PlaneFacts:
    """What one kernel plane does on a hook: where its programs attach and what a deny becomes."""

    reaction: Reaction
    #: ``<program type>/<target>`` of every program that decides the hook's calls, the main one first.
    attach: tuple[str, ...]
    #: Probe features without which no program sees the hook's calls.
    sees: tuple[str, ...] = ()
    #: Probe features the reaction needs; without them the plane only detects.
    needs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventShape:
    """One kind of event as ECS describes it: ``event.type`` and ``event.action``."""

    type: str
    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _KindRow:
    name: str
    abi: int
    short: str
    category: str
    events: tuple[EventShape, ...]
    on_file: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _HookRow(_KindRow):
    lsm: PlaneFacts
    compat: PlaneFacts


@dataclass(frozen=True, slots=True, kw_only=True)
class _TelemetryRow(_KindRow):
    gate: Hook


def _lsm(*hooks: str) -> PlaneFacts:
    return PlaneFacts(Reaction.INLINE_DENY, tuple(f"lsm/{h}" for h in hooks))


def _tracepoint_kill(tracepoint: str, *, syscall: bool) -> PlaneFacts:
    sees = ("raw_tracepoint", "syscall_tracepoints") if syscall else ("raw_tracepoint",)
    return PlaneFacts(Reaction.KILL_REACTION, (f"raw_tracepoint/{tracepoint}",), sees, ("send_signal",))


class Hook(enum.StrEnum):
    """An LSM hook the agent decides on; the value is the kernel's hook name.

    ``events`` lists the shapes its events take, a plain call's first, then the one its record
    flags select (an open that created its file, a datagram with an explicit destination).
    ``on_file``: the hook's object is a file (path, device and inode); otherwise a destination
    (connect) or a target process (ptrace).
    """

    abi: int
    short: str
    category: str
    events: tuple[EventShape, ...]
    on_file: bool
    lsm: PlaneFacts
    compat: PlaneFacts

    def __new__(cls, row: _HookRow) -> Hook:
        """Build a member from its row: the value is the hook name, the rest become attributes."""
        member = str.__new__(cls, row.name)
        member._value_ = row.name
        member.abi, member.short, member.category = row.abi, row.short, row.category
        member.events, member.on_file = row.events, row.on_file
        member.lsm, member.compat = row.lsm, row.compat
        return member

    BPRM_CHECK_SECURITY = _HookRow(
        name="bprm_check_security",
        abi=0,
        short="exec",
        category="process",
        events=(EventShape("start", "exec"),),
        on_file=True,
        lsm=_lsm("bprm_check_security", "mmap_file"),
        compat=_tracepoint_kill("sched_process_exec", syscall=False),
    )
    FILE_OPEN = _HookRow(
        name="file_open",
        abi=1,
        short="file_open",
        category="file",
        events=(EventShape("access", "open"), EventShape("creation", "creation")),
        on_file=True,
        lsm=_lsm("file_open", "path_link", "path_rename"),
        compat=_tracepoint_kill("sys_exit", syscall=True),
    )
    SOCKET_CONNECT = _HookRow(
        name="socket_connect",
        abi=2,
        short="connect",
        category="network",
        events=(EventShape("start", "connection_attempted"), EventShape("start", "connection_attempted")),
        on_file=False,
        lsm=_lsm("socket_connect", "socket_sendmsg"),
        compat=PlaneFacts(
            Reaction.INLINE_DENY,
            ("cgroup/connect4", "cgroup/connect6", "cgroup/sendmsg4", "cgroup/sendmsg6"),
            needs=("cgroup_sock_addr",),
        ),
    )
    PTRACE_ACCESS_CHECK = _HookRow(
        name="ptrace_access_check",
        abi=3,
        short="ptrace",
        category="process",
        events=(EventShape("access", "ptrace"),),
        on_file=False,
        lsm=_lsm("ptrace_access_check"),
        compat=_tracepoint_kill("sys_enter", syscall=True),
    )

    @property
    def lsm_function(self) -> str:
        """Return the kernel function a BPF-LSM program attaches to (``bpf_lsm_<hook>``)."""
        return f"bpf_lsm_{self.value}"

    @classmethod
    def from_abi(cls, abi: int) -> Hook:
        """Return the hook with this ``enum guard_hook`` id (ValueError if none has it)."""
        kind = _BY_ABI.get(abi)
        if not isinstance(kind, Hook):
            raise ValueError(f"{abi!r} is not a hook")
        return kind

    @classmethod
    def for_category(cls, category: str) -> Hook | None:
        """Return the hook that decides a plain event of an ECS category (process: exec), or None."""
        return next((hook for hook in cls if hook.category == category), None)


class Telemetry(enum.StrEnum):
    """A ring-buffer record kind that reports and never decides; the value is the kernel hook it uses.

    ``gate`` is the hook whose mode and interest flag it follows and whose counters count it. Only
    the LSM plane has these events: no tracepoint sees what a chmod names (``docs/compat.md``).
    """

    abi: int
    short: str
    category: str
    events: tuple[EventShape, ...]
    on_file: bool
    gate: Hook

    def __new__(cls, row: _TelemetryRow) -> Telemetry:
        """Build a member from its row: the value is the kernel hook name, the rest become attributes."""
        member = str.__new__(cls, row.name)
        member._value_ = row.name
        member.abi, member.short, member.category = row.abi, row.short, row.category
        member.events, member.on_file, member.gate = row.events, row.on_file, row.gate
        return member

    CHMOD = _TelemetryRow(
        name="path_chmod",
        abi=4,
        short="chmod",
        category="file",
        events=(EventShape("change", "chmod"),),
        on_file=True,
        gate=Hook.FILE_OPEN,
    )


#: What a ring-buffer record's ``hook`` field names.
EventKind: TypeAlias = Hook | Telemetry

#: Hooks in ABI order, the order they are reported in.
HOOKS: Final[tuple[Hook, ...]] = tuple(sorted(Hook, key=lambda h: h.abi))
#: Every event kind in ABI order: the hooks, then the telemetry kinds.
EVENT_KINDS: Final[tuple[EventKind, ...]] = (*HOOKS, *sorted(Telemetry, key=lambda t: t.abi))

_BY_ABI: Final[dict[int, EventKind]] = {kind.abi: kind for kind in EVENT_KINDS}


def event_kind(abi: int) -> EventKind:
    """Return what a record's ``hook`` field names (ValueError for an id no kind has)."""
    try:
        return _BY_ABI[abi]
    except KeyError:
        raise ValueError(f"{abi!r} is not an event kind") from None


class Mode(enum.StrEnum):
    """Enforcement mode: off (hooks return at once), detect (record only) or enforce (deny)."""

    OFF = "off"
    DETECT = "detect"
    ENFORCE = "enforce"


class BackendName(enum.StrEnum):
    """Kernel backends, strongest first."""

    LSM = "lsm"
    COMPAT = "compat"
    FAKE = "fake"
