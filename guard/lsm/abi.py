"""ctypes mirror of bpf/include/guard_abi.h (a test compares sizes and offsets with the C side).

Hook ids (``enum guard_hook``) and telemetry kinds (``GUARD_EVENT_*``) are not repeated here: they
are :class:`guard.model.Hook` and :class:`guard.model.Telemetry` (``.abi``); the C enumerators are
derived from them in :data:`EVENT_ENUMERATORS`.
"""

from __future__ import annotations

import ctypes
import enum
from collections.abc import Mapping
from typing import Final, TypeAlias

from guard.model import HOOKS, Hook, Telemetry

__all__ = [
    "ACTION_DENY",
    "ACTION_NOTIFY",
    "ARGS_MAX",
    "CF_ALL_TASKS",
    "CF_DNS_EVENTS",
    "CF_ENV_VARS",
    "CF_MODIFY_EVENTS",
    "CF_PROCESS_EVENTS",
    "CF_SYSCALL_EVENTS",
    "COMM_LEN",
    "COND_ENTRIES",
    "COND_SLOTS",
    "COUNTER_COUNT",
    "DNS_MAX",
    "ENV_MAX",
    "EVENT_CHMOD",
    "EVENT_ENUMERATORS",
    "EVF_CREATED",
    "EVF_LINK",
    "EVF_MMAP",
    "EVF_PATH_TOO_LONG",
    "EVF_RENAME",
    "EVF_SENDMSG",
    "EVF_WRITE",
    "FMODE_CREATED",
    "FMODE_WRITE",
    "HF_EMIT_ALL",
    "HF_EMIT_CHMOD",
    "HF_EMIT_CREATED",
    "HF_HAS_CONDS",
    "HF_HAS_EXEMPTIONS",
    "HF_HAS_SUBTREES",
    "HF_HAS_SUFFIXES",
    "HF_LONG_PATH_DENY",
    "HOOK_COUNT",
    "NET_DATA",
    "PATH_MAX",
    "PF_ARGS_TRUNCATED",
    "PF_CWD_UNRESOLVED",
    "PF_ENV_TRUNCATED",
    "PF_EXE_UNRESOLVED",
    "PF_THREAD",
    "PROC_ACCEPT",
    "PROC_CHOWN",
    "PROC_DELETE",
    "PROC_DISCONNECT",
    "PROC_DNS_ANSWER",
    "PROC_DNS_QUERY",
    "PROC_EXEC",
    "PROC_EXIT",
    "PROC_FORK",
    "PROC_GID_CHANGE",
    "PROC_MEMFD",
    "PROC_MODIFY",
    "PROC_MODULE_LOAD",
    "PROC_MODULE_UNLOAD",
    "PROC_MOUNT",
    "PROC_PTRACE",
    "PROC_RENAME",
    "PROC_UID_CHANGE",
    "PROC_UNMOUNT",
    "PROC_XATTR",
    "PROT_EXEC",
    "PTRACE_MODE_ATTACH",
    "STRINGS_MAX",
    "SUBJECT_TEXT",
    "SUBTREE_DEPTH",
    "CommKey",
    "Cond",
    "Config",
    "Counter",
    "Decision",
    "DecisionDropKey",
    "Dfa",
    "DfaRule",
    "DfaState",
    "DnsEvent",
    "DynKey",
    "DynVerdict",
    "Entity",
    "Event",
    "ExecEvent",
    "ExemptKey",
    "FileEvent",
    "InodeKey",
    "LpmPathKey",
    "Match",
    "ModeId",
    "NetEvent",
    "NetKey",
    "PathKey",
    "ProcEvent",
    "ProcRecord",
    "PtraceEvent",
    "Record",
    "SubjectBits",
    "SubjectField",
    "SubjectKey",
    "Verdict",
]

PATH_MAX: Final = 256
COMM_LEN: Final = 16
NET_DATA: Final = 20
HF_EMIT_ALL: Final = 0x1
HF_LONG_PATH_DENY: Final = 0x2
#: Set by the loader (never by a policy) on hooks that have suffix verdicts.
HF_HAS_SUFFIXES: Final = 0x4
#: Set by the loader (never by a policy) on every hook when some rule exempts executables.
HF_HAS_EXEMPTIONS: Final = 0x20
#: Set by the loader (never by a policy) on hooks that have subtree verdicts.
HF_HAS_SUBTREES: Final = 0x40
HF_HAS_CONDS: Final = 0x80
#: guard_config.flags: every task but the agent is governed.
CF_ALL_TASKS: Final = 0x1
#: guard_config.flags: governed forks, execs and exits are reported to guard_procs.
CF_PROCESS_EVENTS: Final = 0x2
#: guard_config.flags: exec records carry the new image's environment (filtered by the agent).
CF_ENV_VARS: Final = 0x4
#: guard_config.flags: governed deletions, renames, id changes, memfds, module loads and accepts are reported.
CF_SYSCALL_EVENTS: Final = 0x8
#: guard_config.flags: DNS messages governed tasks send to port 53 and read back are reported.
CF_DNS_EVENTS: Final = 0x10
#: guard_config.flags: the first write (or truncate) through each file a governed task opened is reported.
CF_MODIFY_EVENTS: Final = 0x20
#: DNS message bytes a record keeps (a power of two)
DNS_MAX: Final = 512
#: environment bytes an exec record keeps (a power of two)
ENV_MAX: Final = 4096
#: argv bytes an exec record keeps (a power of two; longer is truncated and flagged).
ARGS_MAX: Final = 4096
#: an exec record's argv and environment bytes together
STRINGS_MAX: Final = ARGS_MAX + ENV_MAX
PROC_FORK: Final = 1
PROC_EXEC: Final = 2
PROC_EXIT: Final = 3
PROC_DELETE: Final = 4
PROC_RENAME: Final = 5
PROC_UID_CHANGE: Final = 6
PROC_GID_CHANGE: Final = 7
PROC_MEMFD: Final = 8
PROC_MODULE_LOAD: Final = 9
PROC_ACCEPT: Final = 10
PROC_CHOWN: Final = 11
PROC_XATTR: Final = 12
PROC_MOUNT: Final = 13
PROC_UNMOUNT: Final = 14
PROC_MODULE_UNLOAD: Final = 15
PROC_DNS_QUERY: Final = 16
PROC_DNS_ANSWER: Final = 17
PROC_MODIFY: Final = 18
PROC_PTRACE: Final = 19
PROC_DISCONNECT: Final = 20
#: ptrace(2) requests that make the caller the target's tracer
PTRACE_ATTACH: Final = 16
PTRACE_SEIZE: Final = 0x4206
PF_ARGS_TRUNCATED: Final = 0x1  # argv longer than ARGS_MAX - 1 bytes
PF_EXE_UNRESOLVED: Final = 0x2  # the image's path did not fit or could not be walked
PF_CWD_UNRESOLVED: Final = 0x4  # the working directory's path likewise
PF_THREAD: Final = 0x8  # exit: a thread, not the whole process
PF_ENV_TRUNCATED: Final = 0x10  # the environment was longer than ENV_MAX - 1 bytes
#: file_open interest: an event for every governed open that created its file.
HF_EMIT_CREATED: Final = 0x8
#: On file_open: a chmod event for every governed chmod (while file_open is not off).
HF_EMIT_CHMOD: Final = 0x10
EVF_PATH_TOO_LONG: Final = 0x1
EVF_SENDMSG: Final = 0x2  # socket_sendmsg to an explicit destination, decided as a connect
EVF_CREATED: Final = 0x4  # file events: this open created the file (FMODE_CREATED)
EVF_WRITE: Final = 0x8  # file events: open for writing (FMODE_WRITE)
EVF_LINK: Final = 0x10  # file_open: a hard link made to the file (path_link)
EVF_RENAME: Final = 0x20  # file_open: the file renamed (path_rename)
EVF_MMAP: Final = 0x40  # exec: the file mapped executable (mmap_file)
PROT_EXEC: Final = 0x4
#: directories above a file that the subtree verdicts look at
SUBTREE_DEPTH: Final = 32
FMODE_WRITE: Final = 0x2
FMODE_CREATED: Final = 0x100000
#: ``GUARD_EVENT_CHMOD``: an event's ``hook`` for a chmod (telemetry: not a hook, never a deny).
EVENT_CHMOD: Final = Telemetry.CHMOD.abi
PTRACE_MODE_ATTACH: Final = 0x02
ACTION_DENY: Final = 1
ACTION_NOTIFY: Final = 2


#: ``GUARD_HOOK_COUNT``: the length of every per-hook array.
HOOK_COUNT: Final = len(HOOKS)


def _enumerator(kind: Hook | Telemetry) -> str:
    return f"GUARD_{'HOOK' if isinstance(kind, Hook) else 'EVENT'}_{kind.short.upper()}"


#: The C names of the hook ids and telemetry kinds (``GUARD_HOOK_EXEC``, ``GUARD_EVENT_CHMOD``...).
EVENT_ENUMERATORS: Final[Mapping[str, int]] = {
    **{_enumerator(kind): kind.abi for kind in (*HOOKS, *Telemetry)},
    "GUARD_HOOK_COUNT": HOOK_COUNT,
}


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
    KILLED = 3


class Match(enum.IntEnum):
    """``enum guard_match``: which table produced the event."""

    NONE = 0
    INODE = 1
    PATH = 2
    PREFIX = 3
    SUFFIX = 4
    DFA = 5
    NET = 6
    PTRACE = 7
    DYNAMIC = 8
    LONG_PATH = 9
    ALL = 10
    SUBTREE = 11


class Counter(enum.IntEnum):
    """``enum guard_counter``."""

    CALLS = 0
    DENIES = 1
    WOULD_BLOCK = 2
    RINGBUF_DROPS = 3
    PATH_TOO_LONG = 4
    EMITTED = 5
    #: a decision the decision ring had no room for (also in ``guard_decision_drops``)
    DECISION_DROPS = 6


COUNTER_COUNT: Final = 7

_u8 = ctypes.c_uint8
_u16 = ctypes.c_uint16
_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64


class Config(ctypes.Structure):
    """``struct guard_config``."""

    _fields_ = (
        ("mode", _u32 * HOOK_COUNT),
        ("hook_flags", _u32 * HOOK_COUNT),
        ("dfa_slot", _u32 * HOOK_COUNT),
        ("agent_tgid", _u32),
        ("flags", _u32),
    )


#: ``GUARD_COND_SLOTS``: conditioned deny rules per key and hook; ``GUARD_SUBJECT_TEXT``: value bytes.
COND_SLOTS: Final = 2
COND_ENTRIES: Final = HOOK_COUNT * COND_SLOTS
SUBJECT_TEXT: Final = 48


class SubjectField(enum.IntEnum):
    """``enum guard_subject_field``: what of the caller a subject test reads."""

    NONE = 0
    NAME = 1
    PARENT_NAME = 2
    UID = 3


class Cond(ctypes.Structure):
    """``struct guard_cond``: a conditioned deny rule: its bank's ``need`` bits set, ``forbid`` clear."""

    _fields_ = (("rule", _u32), ("bank", _u32), ("need", _u64), ("forbid", _u64))


class Verdict(ctypes.Structure):
    """``struct guard_verdict``: per-hook deny and notify rule ids (0 = none), and conditioned denies.

    ``cond[hook * COND_SLOTS + i]``: deny rules that also need the caller to be someone.
    """

    _fields_ = (
        ("deny", _u32 * HOOK_COUNT),
        ("notify", _u32 * HOOK_COUNT),
        ("cond", Cond * COND_ENTRIES),
    )


class SubjectKey(ctypes.Structure):
    """``struct guard_subject_key``: one value of one field of the caller."""

    _fields_ = (("field", _u32), ("pad", _u32), ("value", ctypes.c_char * SUBJECT_TEXT))


class SubjectBits(ctypes.Structure):
    """``struct guard_subject_bits``: the subject-test bits a value sets, per bank."""

    _fields_ = (("bank", _u64 * 2),)


class PathKey(ctypes.Structure):
    """``struct guard_path_key``."""

    _fields_ = (("path", ctypes.c_char * PATH_MAX),)


class LpmPathKey(ctypes.Structure):
    """``struct guard_lpm_path_key``."""

    _fields_ = (("prefixlen", _u32), ("path", ctypes.c_char * PATH_MAX))


class ExemptKey(ctypes.Structure):
    """``struct guard_exempt_key``: a rule and an executable it exempts."""

    _fields_ = (("rule_id", _u32), ("pad", _u32), ("dev", _u64), ("ino", _u64))


class InodeKey(ctypes.Structure):
    """``struct guard_inode_key``."""

    _fields_ = (("dev", _u64), ("ino", _u64))


class CommKey(ctypes.Structure):
    """``struct guard_comm_key``: a task name (comm), NUL-padded."""

    _fields_ = (("comm", ctypes.c_char * COMM_LEN),)


class NetKey(ctypes.Structure):
    """``struct guard_net_key``."""

    _fields_ = (("prefixlen", _u32), ("data", _u8 * NET_DATA))


class DfaState(ctypes.Structure):
    """``struct guard_dfa_state``."""

    _fields_ = (("step_first", _u32), ("accept_first", _u32))


class Dfa(ctypes.Structure):
    """``struct guard_dfa`` at the default sizes (the loader writes bcc's type for the compiled sizes)."""

    _fields_ = (
        ("num_states", _u32),
        ("num_classes", _u32),
        ("start", _u32),
        ("anchored_start", _u32),
        ("dead", _u32),
        ("rule_base", _u32),
        ("byte_class", _u8 * 256),
        ("states", DfaState * 16384),
        ("trans", _u32 * 65536),
    )


class DfaRule(ctypes.Structure):
    """``struct guard_dfa_rule``."""

    _fields_ = (("rule_id", _u32), ("action", _u32))


class Entity(ctypes.Structure):
    """``struct guard_entity``."""

    _fields_ = (("group", _u64),)


class DynKey(ctypes.Structure):
    """``struct guard_dyn_key``."""

    _fields_ = (("group", _u64), ("hook", _u32), ("pad", _u32), ("dev", _u64), ("ino", _u64))


class DynVerdict(ctypes.Structure):
    """``struct guard_dyn_verdict``."""

    _fields_ = (("rule_id", _u32), ("action", _u32), ("expires_ns", _u64))


class DecisionDropKey(ctypes.Structure):
    """``struct guard_decision_drop_key``: a rule (0: the long-path deny), a hook and a Decision."""

    _fields_ = (("rule_id", _u32), ("hook", _u32), ("decision", _u32))


class Event(ctypes.Structure):
    """``struct guard_event``."""

    _fields_ = (
        ("ts_ns", _u64),
        ("cgroup_id", _u64),
        ("hook", _u32),
        ("decision", _u32),
        ("rule_id", _u32),
        ("match", _u32),
        ("pid", _u32),
        ("tgid", _u32),
        ("uid", _u32),
        ("flags", _u32),
        ("dev", _u64),
        ("ino", _u64),
        ("start_ns", _u64),
        ("parent_start_ns", _u64),
        ("ppid", _u32),
        ("mode", _u32),
        ("target_tgid", _u32),
        ("family", _u16),
        ("port", _u16),
        ("addr", _u8 * 16),
        ("comm", ctypes.c_char * COMM_LEN),
        ("path", ctypes.c_char * PATH_MAX),
    )


class ProcEvent(ctypes.Structure):
    """``struct guard_proc_event``: a governed process's fork or exit (and an exec's header)."""

    _fields_ = (
        ("ts_ns", _u64),
        ("cgroup_id", _u64),
        ("start_ns", _u64),
        ("parent_start_ns", _u64),
        ("cap_effective", _u64),
        ("cap_permitted", _u64),
        ("kind", _u32),
        ("flags", _u32),
        ("pid", _u32),
        ("tgid", _u32),
        ("ppid", _u32),
        ("uid", _u32),
        ("euid", _u32),
        ("suid", _u32),
        ("gid", _u32),
        ("egid", _u32),
        ("sgid", _u32),
        ("sid", _u32),
        ("pgid", _u32),
        ("tty_major", _u32),
        ("tty_minor", _u32),
        ("exit_code", _u32),
        ("argc", _u32),
        ("args_len", _u32),
        ("env_len", _u32),
        ("pad", _u32),
        ("comm", ctypes.c_char * COMM_LEN),
    )


class ExecEvent(ctypes.Structure):
    """``struct guard_exec_event``: an exec's header, image, working directory and argv."""

    _fields_ = (
        ("proc", ProcEvent),
        ("exe", ctypes.c_char * PATH_MAX),
        ("cwd", ctypes.c_char * PATH_MAX),
        ("strings", ctypes.c_char * STRINGS_MAX),
    )


class FileEvent(ctypes.Structure):
    """``struct guard_file_event``: a deletion or rename, each name with its base directory."""

    _fields_ = (
        ("proc", ProcEvent),
        ("path", ctypes.c_char * PATH_MAX),
        ("dir", ctypes.c_char * PATH_MAX),
        ("old_path", ctypes.c_char * PATH_MAX),
        ("old_dir", ctypes.c_char * PATH_MAX),
    )


class NetEvent(ctypes.Structure):
    """``struct guard_net_event``: an accepted (or closed) connection's two ends."""

    _fields_ = (
        ("proc", ProcEvent),
        ("family", _u16),
        ("local_port", _u16),
        ("remote_port", _u16),
        ("pad", _u16),
        ("local_addr", _u8 * 16),
        ("remote_addr", _u8 * 16),
    )


class DnsEvent(ctypes.Structure):
    """``struct guard_dns_event``: a DNS message sent or read, the socket's ends and its first bytes."""

    _fields_ = (
        *NetEvent._fields_,  # the same layout as a NetEvent, then the message
        ("len", _u32),
        ("data_len", _u32),
        ("data", _u8 * DNS_MAX),
    )


class PtraceEvent(ctypes.Structure):
    """``struct guard_ptrace_event``: a ptrace attach (or seize) that succeeded, and its target."""

    _fields_ = (
        ("proc", ProcEvent),
        ("child_pid", _u32),
        ("request", _u32),
    )


#: What the process ring carries: forks, exits and id changes (a header), execs, file changes,
#: memfds and module loads (a FileEvent), accepted connections, DNS messages, ptrace attaches.
ProcRecord: TypeAlias = ProcEvent | ExecEvent | FileEvent | NetEvent | DnsEvent | PtraceEvent
#: A ring-buffer record as the planes hand it over: a hook's event, or a process ring's record.
Record: TypeAlias = Event | ProcEvent | ExecEvent | FileEvent | NetEvent | DnsEvent | PtraceEvent
