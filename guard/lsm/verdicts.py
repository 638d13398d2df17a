"""The data a policy compiles to for the kernel, and its encoding into the verdict maps' keys.

The policy compiler of the agent produces a :class:`KernelPolicy` (plain data: path, inode,
network and ptrace rules per hook, plus the per-hook interest flags); :func:`build_tables` turns it
into :class:`VerdictTables`, the exact key -> value contents of every map, which each backend
writes (``LsmBackend``) or evaluates (``FakeBackend``). Both backends therefore share one
definition of what a rule means in the kernel:

- A key's value carries, per hook, the smallest deny rule id and the smallest notify rule id
  (0 = none). Deny wins over notify; among denies the smallest rule id is reported.
- An LPM trie returns only the LONGEST matching entry, so every prefix (suffix, network) entry is
  closed over the shorter entries it extends: its value already holds their rule ids.
- Prefixes and suffixes are byte-wise (``/tmp`` also matches ``/tmpfile``: write ``/tmp/``);
  suffixes are stored reversed. Paths are at most ``PATH_MAX - 1`` bytes.
- Networks live in one IPv6 space (IPv4 as v4-mapped ``::ffff:a.b.c.d``), prefixed by the port
  (big-endian; 0 = every port); the kernel looks up (port, address) then (0, address).
- ``contains`` and ``glob`` patterns become one DFA per hook (:mod:`guard.lsm.dfa`); DFA ids
  are numbered denies first, so the walk's smallest id is a deny whenever one matches.
"""

from __future__ import annotations

import enum
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from guard.errors import PolicyCompileError
from guard.lsm import abi, dfa
from guard.model import HOOKS, Hook

__all__ = [
    "MAX_SUBJECT_TESTS",
    "PATH_HOOKS",
    "Action",
    "Caller",
    "DfaProgram",
    "DynamicVerdict",
    "InodeRule",
    "KernelPolicy",
    "NetRule",
    "PathKind",
    "PathRule",
    "PtraceRule",
    "Subject",
    "SubjectField",
    "SubjectTerm",
    "VerdictTables",
    "VerdictValue",
    "atom_masks",
    "build_tables",
    "caller_bits",
    "cond_masks",
    "encode_path",
    "kernel_dev",
    "lpm_lookup",
    "lpm_path_key",
    "net_key",
    "net_lookup_keys",
    "normalise_ip",
    "same_bits",
    "subject_bits",
    "term_key",
]

PathKind = Literal["exact", "prefix", "suffix", "contains", "glob"]

#: Hooks whose object is a file path.
PATH_HOOKS: Final = tuple(hook for hook in HOOKS if hook.on_file)


class Action(enum.IntEnum):
    """What a matching verdict does: deny (under enforce; would-block under detect) or notify."""

    DENY = abi.ACTION_DENY
    NOTIFY = abi.ACTION_NOTIFY


def _check_rule_id(rule_id: int) -> None:
    if isinstance(rule_id, bool) or not isinstance(rule_id, int) or not 0 < rule_id < 2**32:
        raise PolicyCompileError(f"rule id {rule_id!r}: must be an integer in 1..{2**32 - 1}")


@dataclass(frozen=True)
class PathRule:
    """A path verdict on the exec or file_open hook."""

    hook: Hook
    kind: PathKind
    pattern: str
    rule_id: int
    action: Action = Action.DENY
    case_insensitive: bool = False  # contains / glob only

    def __post_init__(self) -> None:
        _check_rule_id(self.rule_id)
        if self.hook not in PATH_HOOKS:
            raise PolicyCompileError(
                f"rule {self.rule_id}: path rules apply to exec and file_open, not {self.hook.short.upper()}"
            )
        if self.kind not in ("exact", "prefix", "suffix", "contains", "glob"):
            raise PolicyCompileError(f"rule {self.rule_id}: unknown path match kind {self.kind!r}")
        if self.case_insensitive and self.kind in ("exact", "prefix", "suffix"):
            raise PolicyCompileError(f"rule {self.rule_id}: {self.kind} paths are case-sensitive; use a glob")
        if self.kind in ("exact", "prefix", "suffix"):
            encode_path(self.pattern, f"rule {self.rule_id} {self.kind}")


@dataclass(frozen=True)
class InodeRule:
    """A file by (device, inode) on exec or file_open; ``dev`` is the kernel dev_t."""

    hook: Hook
    dev: int
    ino: int
    rule_id: int
    action: Action = Action.DENY

    def __post_init__(self) -> None:
        _check_rule_id(self.rule_id)
        if self.hook not in PATH_HOOKS:
            raise PolicyCompileError(
                f"rule {self.rule_id}: inode rules apply to exec and file_open, not {self.hook.short.upper()}"
            )


@dataclass(frozen=True)
class NetRule:
    """A destination network (CIDR) and port (0 = every port) on the connect hook."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int
    rule_id: int
    action: Action = Action.DENY

    def __post_init__(self) -> None:
        _check_rule_id(self.rule_id)
        if not 0 <= self.port <= 65535:
            raise PolicyCompileError(f"rule {self.rule_id}: port {self.port} out of range 0..65535")


@dataclass(frozen=True)
class PtraceRule:
    """A protected process (by tgid): attach-class ptrace access to it is the verdict's subject."""

    tgid: int
    rule_id: int
    action: Action = Action.DENY

    def __post_init__(self) -> None:
        _check_rule_id(self.rule_id)
        if not 0 < self.tgid < 2**32:
            raise PolicyCompileError(f"rule {self.rule_id}: tgid {self.tgid} out of range")


@dataclass(frozen=True)
class DynamicVerdict:
    """A verdict armed for an entity group (a process and its descendants) until ``expires_ns``.

    ``dev``/``ino`` name one file (exec, file_open); 0/0 targets every call on the hook.
    ``expires_ns`` is CLOCK_MONOTONIC (``time.monotonic_ns()``); 0 means until disarmed.
    """

    group: int
    hook: Hook
    rule_id: int
    action: Action = Action.DENY
    expires_ns: int = 0
    dev: int = 0
    ino: int = 0

    def __post_init__(self) -> None:
        _check_rule_id(self.rule_id)
        if not 0 < self.group < 2**64:
            raise PolicyCompileError(f"rule {self.rule_id}: entity group {self.group} out of range")


SubjectField = abi.SubjectField


@dataclass(frozen=True)
class SubjectTerm:
    """One test of the caller: its ``field`` is one of ``values`` (``negate``: is none of them).

    Names are bytes (a comm, or a parent's name: at most ``SUBJECT_TEXT - 2`` bytes, no NUL);
    uids are ints.
    """

    field: SubjectField
    values: frozenset[bytes] | frozenset[int]
    negate: bool = False

    def __post_init__(self) -> None:
        if self.field is SubjectField.NONE or not self.values:
            raise PolicyCompileError(f"subject term on {self.field.name}: needs a field and values")
        for v in self.values:
            self.encode(v)

    def encode(self, value: bytes | int) -> bytes:
        """Return a value as the kernel's atom key holds it (SUBJECT_TEXT bytes, zero-padded)."""
        if self.field is SubjectField.UID:
            if isinstance(value, bytes) or not 0 <= value < 2**32:
                raise PolicyCompileError(f"uid {value!r}: must be an integer in 0..{2**32 - 1}")
            raw = value.to_bytes(4, "little")
        else:
            if not isinstance(value, bytes) or not 0 < len(value) <= abi.SUBJECT_TEXT - 2 or b"\0" in value:
                raise PolicyCompileError(
                    f"name {value!r}: must be 1..{abi.SUBJECT_TEXT - 2} bytes without NUL"
                )
            raw = value
        return raw.ljust(abi.SUBJECT_TEXT, b"\0")

    def holds(self, caller: Caller) -> bool:
        """Return whether the caller meets this term."""
        if self.field is SubjectField.NAME:
            value: bytes | int = caller.name
        elif self.field is SubjectField.PARENT_NAME:
            value = caller.parent_name
        else:
            value = caller.uid
        return (value in self.values) != self.negate


@dataclass(frozen=True)
class Caller:
    """What subject terms test of a calling task (the hook reads it from ``current``)."""

    name: bytes = b""
    parent_name: bytes = b""
    uid: int = 0


@dataclass(frozen=True)
class Subject:
    """A deny rule's subject condition: every term must hold of the caller."""

    rule_id: int
    terms: tuple[SubjectTerm, ...]

    def __post_init__(self) -> None:
        _check_rule_id(self.rule_id)
        if not self.terms:
            raise PolicyCompileError(f"rule {self.rule_id}: a subject condition without terms")

    def holds(self, caller: Caller) -> bool:
        """Return whether the caller meets every term."""
        return all(t.holds(caller) for t in self.terms)


#: One subject-test bit: a field and the values it tests (a term and its negation share it).
TermKey = tuple[SubjectField, frozenset[bytes] | frozenset[int]]
#: Distinct subject tests the kernel tells apart (the bits of one u64).
MAX_SUBJECT_TESTS: Final = 64


def term_key(term: SubjectTerm) -> TermKey:
    """Return the bit a term reads (its field and values; negation is the rule's business)."""
    return (term.field, term.values)


def subject_bits(subjects: Mapping[int, Subject]) -> dict[TermKey, int]:
    """Return a bit for every distinct subject test of a policy (at most MAX_SUBJECT_TESTS)."""
    keys = {term_key(t) for s in subjects.values() for t in s.terms}
    ordered = sorted(keys, key=lambda k: (int(k[0]), sorted(repr(v) for v in k[1])))
    if len(ordered) > MAX_SUBJECT_TESTS:
        raise PolicyCompileError(
            f"{len(ordered)} distinct tests of the caller: the kernel tells {MAX_SUBJECT_TESTS} apart"
        )
    return {k: i for i, k in enumerate(ordered)}


def cond_masks(subjects: Mapping[int, Subject], bits: Mapping[TermKey, int]) -> dict[int, tuple[int, int]]:
    """Return each conditioned rule's (need, forbid) bit masks."""
    out = {}
    for rule, subject in subjects.items():
        need = forbid = 0
        for t in subject.terms:
            bit = 1 << bits[term_key(t)]
            if t.negate:
                forbid |= bit
            else:
                need |= bit
        out[rule] = (need, forbid)
    return out


def atom_masks(
    subjects: Mapping[int, Subject], bits: Mapping[TermKey, int]
) -> dict[tuple[SubjectField, bytes], int]:
    """Return the ``guard_subject_atoms`` contents: (field, encoded value) -> the bits it sets."""
    out: dict[tuple[SubjectField, bytes], int] = {}
    for key, bit in bits.items():
        field_, values = key
        term = SubjectTerm(field_, values)
        for v in values:
            raw = term.encode(v)
            out[(field_, raw)] = out.get((field_, raw), 0) | (1 << bit)
    return out


def caller_bits(atoms: Mapping[tuple[SubjectField, bytes], int], caller: Caller) -> int:
    """Return the bits a caller sets, the kernel's way (one lookup per field)."""
    who = 0
    for field_, value in (
        (SubjectField.NAME, caller.name),
        (SubjectField.UID, caller.uid),
        (SubjectField.PARENT_NAME, caller.parent_name),
    ):
        try:
            raw = SubjectTerm(field_, frozenset({value})).encode(value)  # type: ignore[arg-type]
        except PolicyCompileError:
            continue  # a value no test can name (empty, too long)
        who |= atoms.get((field_, raw), 0)
    return who


@dataclass(frozen=True)
class KernelPolicy:
    """Everything the kernel decides alone, plus which calls user space wants to see."""

    paths: tuple[PathRule, ...] = ()
    inodes: tuple[InodeRule, ...] = ()
    nets: tuple[NetRule, ...] = ()
    ptrace: tuple[PtraceRule, ...] = ()
    #: Per-hook ``abi.HF_*`` bits (interest "emit every call", fail-closed on over-long paths).
    hook_flags: Mapping[Hook, int] = field(default_factory=dict)
    #: deny rules that also test the caller: their object entries above deny only when it holds
    subjects: tuple[Subject, ...] = ()


@dataclass
class VerdictValue:
    """The value of every static map: per hook, the smallest deny and notify rule id (0 = none).

    ``cond`` holds, per hook, the ids of the deny rules that also test the caller (ascending):
    the kernel reads them from a ``guard_cond_lists`` entry.
    """

    deny: list[int] = field(default_factory=lambda: [0] * abi.HOOK_COUNT)
    notify: list[int] = field(default_factory=lambda: [0] * abi.HOOK_COUNT)
    cond: list[tuple[int, ...]] = field(default_factory=lambda: [()] * abi.HOOK_COUNT)

    def add(self, hook: Hook, rule_id: int, action: Action) -> None:
        """Record a rule for a hook, keeping the smallest id per action."""
        row = self.deny if Action(action) is Action.DENY else self.notify
        if row[hook.abi] == 0 or rule_id < row[hook.abi]:
            row[hook.abi] = rule_id

    def add_cond(self, hook: Hook, rule_ids: Sequence[int]) -> None:
        """Record conditioned deny rules for a hook (a key holds at most ``COND_PER_KEY``)."""
        merged = tuple(sorted({*self.cond[hook.abi], *rule_ids}))
        if len(merged) > abi.COND_SLOTS:
            raise PolicyCompileError(
                f"{len(merged)} rules with tests of the caller on one {hook.short} key "
                f"(rules {', '.join(map(str, merged))}): the kernel holds {abi.COND_SLOTS} per key"
            )
        self.cond = [merged if i == hook.abi else c for i, c in enumerate(self.cond)]

    def merge(self, other: VerdictValue) -> None:
        """Add every rule id of ``other``."""
        for hook in HOOKS:
            if other.deny[hook.abi]:
                self.add(hook, other.deny[hook.abi], Action.DENY)
            if other.notify[hook.abi]:
                self.add(hook, other.notify[hook.abi], Action.NOTIFY)
            if other.cond[hook.abi]:
                self.add_cond(hook, other.cond[hook.abi])

    def to_abi(self, masks: Mapping[int, tuple[int, int]] | None = None, bank: int = 0) -> abi.Verdict:
        """Return the ``struct guard_verdict`` for this value (``masks``: rule -> need, forbid)."""
        value = abi.Verdict()
        for i in range(abi.HOOK_COUNT):
            value.deny[i] = self.deny[i]
            value.notify[i] = self.notify[i]
            for slot, rule in enumerate(self.cond[i]):
                if masks is None or rule not in masks:
                    raise PolicyCompileError(
                        f"rule {rule}: conditioned, but its tests of the caller are unknown"
                    )
                entry = value.cond[i * abi.COND_SLOTS + slot]
                entry.rule, entry.bank = rule, bank
                entry.need, entry.forbid = masks[rule]
        return value


@dataclass(frozen=True)
class DfaProgram:
    """One hook's DFA: the tables and, per DFA id (1-based), the rule and action it stands for."""

    tables: dfa.DfaTables
    rules: tuple[tuple[int, Action], ...]


@dataclass
class VerdictTables:
    """The exact contents of every static verdict map (keys already encoded)."""

    paths: dict[bytes, VerdictValue] = field(default_factory=dict)
    prefixes: dict[tuple[int, bytes], VerdictValue] = field(default_factory=dict)
    suffixes: dict[tuple[int, bytes], VerdictValue] = field(default_factory=dict)
    inodes: dict[tuple[int, int], VerdictValue] = field(default_factory=dict)
    nets: dict[tuple[int, bytes], VerdictValue] = field(default_factory=dict)
    ptrace: dict[int, VerdictValue] = field(default_factory=dict)
    dfas: dict[Hook, DfaProgram] = field(default_factory=dict)
    hook_flags: dict[Hook, int] = field(default_factory=dict)
    #: (rule id, dev, inode): that rule's deny skips callers running this executable
    exemptions: set[tuple[int, int, int]] = field(default_factory=set)
    #: a directory (dev, inode): its verdict applies to every file below it on its filesystem
    subtrees: dict[tuple[int, int], VerdictValue] = field(default_factory=dict)
    #: an executable (dev, inode) whose processes are protected ptrace targets from their exec on
    protect_exes: dict[tuple[int, int], VerdictValue] = field(default_factory=dict)
    #: a task name (comm, NUL-padded to COMM_LEN) protected the same way
    protect_names: dict[bytes, VerdictValue] = field(default_factory=dict)
    #: rule id -> the subject condition its conditioned entries need
    subjects: dict[int, Subject] = field(default_factory=dict)
    #: (subjects, atoms, masks) as last encoded by decide()
    _encoded: (
        tuple[dict[int, Subject], dict[tuple[SubjectField, bytes], int], dict[int, tuple[int, int]]] | None
    ) = field(default=None, repr=False, compare=False)

    def cond_hooks(self) -> set[Hook]:
        """Return the hooks whose values hold conditioned deny rules."""
        tables: list[Mapping[Any, VerdictValue]] = [
            self.paths, self.prefixes, self.suffixes, self.inodes, self.nets, self.ptrace,
        ]  # fmt: skip
        return {hook for t in tables for v in t.values() for hook in HOOKS if v.cond[hook.abi]}

    def decide(self, value: VerdictValue | None, hook: Hook, caller: Caller | None) -> tuple[int, int]:
        """Return (deny, notify) of one table's value for a caller, as the kernel reads it.

        The plain deny, else the first conditioned rule whose bits the caller's bits meet.
        """
        if value is None:
            return 0, 0
        deny = value.deny[hook.abi]
        if not deny and value.cond[hook.abi] and caller is not None:
            if self._encoded is None or self._encoded[0] != self.subjects:
                bits = subject_bits(self.subjects)
                self._encoded = (
                    dict(self.subjects),
                    atom_masks(self.subjects, bits),
                    cond_masks(self.subjects, bits),
                )
            _, atoms, masks = self._encoded
            who = caller_bits(atoms, caller)
            for rule in value.cond[hook.abi]:
                need, forbid = masks[rule]
                if who & need == need and not who & forbid:
                    deny = rule
                    break
        return deny, value.notify[hook.abi]


def encode_path(path: str | bytes, what: str = "path") -> bytes:
    """Return a path as the kernel sees it (bytes, ``os.fsencode``), 1..PATH_MAX-1 bytes long."""
    raw = os.fsencode(path)
    if not 0 < len(raw) < abi.PATH_MAX:
        raise PolicyCompileError(f"{what} {path!r}: must be 1..{abi.PATH_MAX - 1} bytes, is {len(raw)}")
    if b"\0" in raw:
        raise PolicyCompileError(f"{what} {path!r}: contains a NUL byte")
    return raw


def lpm_path_key(text: bytes) -> tuple[int, bytes]:
    """(prefixlen in bits, zero-padded data) of a prefix; for a suffix pass the reversed bytes."""
    return 8 * len(text), text.ljust(abi.PATH_MAX, b"\0")


def normalise_ip(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """Any address in the one IPv6 space: IPv4 becomes v4-mapped; IPv6 stays (v4-mapped included)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
    return ip


def _net_data(port: int, addr: bytes) -> bytes:
    return port.to_bytes(2, "big") + addr + b"\0\0"


def net_key(network: ipaddress.IPv4Network | ipaddress.IPv6Network, port: int) -> tuple[int, bytes]:
    """(prefixlen in bits, data) of a CIDR + port entry in guard_nets."""
    if isinstance(network, ipaddress.IPv4Network):
        base = normalise_ip(network.network_address)
        bits = 96 + network.prefixlen
    else:
        base, bits = network.network_address, network.prefixlen
    return 16 + bits, _net_data(port, base.packed)


def net_lookup_keys(
    address: str | ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> list[tuple[int, bytes]]:
    """Return the two full-length keys the connect hook looks up: (port, address), then (0, address)."""
    packed = normalise_ip(address).packed
    return [(16 + 128, _net_data(port, packed)), (16 + 128, _net_data(0, packed))]


def kernel_dev(st_dev: int) -> int:
    """Return the kernel's internal dev_t (MKDEV: major << 20 | minor) for a stat() ``st_dev``."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def _close_lpm(entries: dict[tuple[int, bytes], VerdictValue]) -> None:
    """Give every entry the rule ids of the shorter entries it extends (an LPM lookup sees one).

    Entries are canonical (every bit past the prefix is zero), so the shorter entries an entry
    extends are found by masking its data to each prefix length in use: a dict lookup per length,
    not a comparison per pair.
    """
    lengths = sorted({bits for bits, _ in entries})
    for bits, data in list(entries):
        for shorter in lengths:
            if shorter >= bits:
                break
            value = entries.get((shorter, _mask(data, shorter)))
            if value is not None:
                entries[(bits, data)].merge(value)


def _mask(data: bytes, bits: int) -> bytes:
    """Return ``data`` with every bit past the first ``bits`` cleared (same length)."""
    whole, rest = divmod(bits, 8)
    head = data[:whole]
    if rest:
        head += bytes((data[whole] & (0xFF << (8 - rest)) & 0xFF,))
    return head.ljust(len(data), b"\0")


def same_bits(a: bytes, b: bytes, bits: int) -> bool:
    """Return whether ``a`` and ``b`` agree on their first ``bits`` bits."""
    whole, rest = divmod(bits, 8)
    if a[:whole] != b[:whole]:
        return False
    return rest == 0 or (a[whole] ^ b[whole]) >> (8 - rest) == 0


def lpm_lookup(table: Mapping[tuple[int, bytes], VerdictValue], key: bytes) -> VerdictValue | None:
    """Look ``key`` up as an LPM trie does: the value of the longest entry it starts with."""
    best_bits, best = -1, None
    for (bits, data), value in table.items():
        if bits > best_bits and same_bits(data, key, bits):
            best_bits, best = bits, value
    return best


def build_tables(policy: KernelPolicy, *, max_dfa_states: int = dfa.DEFAULT_MAX_STATES) -> VerdictTables:
    """Encode a kernel policy into map contents; raise PolicyCompileError naming the rule at fault."""
    out = VerdictTables(hook_flags={hook: int(policy.hook_flags.get(hook, 0)) for hook in HOOKS})
    subjects = {s.rule_id: s for s in policy.subjects}
    if len(subjects) != len(policy.subjects):
        raise PolicyCompileError("a rule has two subject conditions")
    out.subjects = subjects

    def put(value: VerdictValue, hook: Hook, rule_id: int, action: Action) -> None:
        if rule_id in subjects:
            if Action(action) is not Action.DENY:
                raise PolicyCompileError(f"rule {rule_id}: only deny rules test the caller")
            value.add_cond(hook, (rule_id,))
        else:
            value.add(hook, rule_id, action)

    patterns: dict[Hook, list[PathRule]] = {}
    for rule in policy.paths:
        if rule.kind == "exact":
            put(
                out.paths.setdefault(encode_path(rule.pattern), VerdictValue()),
                rule.hook,
                rule.rule_id,
                rule.action,
            )
        elif rule.kind == "prefix":
            key = lpm_path_key(encode_path(rule.pattern, f"rule {rule.rule_id} prefix"))
            put(out.prefixes.setdefault(key, VerdictValue()), rule.hook, rule.rule_id, rule.action)
        elif rule.kind == "suffix":
            key = lpm_path_key(encode_path(rule.pattern, f"rule {rule.rule_id} suffix")[::-1])
            put(out.suffixes.setdefault(key, VerdictValue()), rule.hook, rule.rule_id, rule.action)
        elif rule.rule_id in subjects:
            raise PolicyCompileError(
                f"rule {rule.rule_id}: a {rule.kind} path with subject conditions "
                "(the DFA reports one rule per path)"
            )
        else:
            patterns.setdefault(rule.hook, []).append(rule)
    for inode in policy.inodes:
        put(
            out.inodes.setdefault((inode.dev, inode.ino), VerdictValue()),
            inode.hook,
            inode.rule_id,
            inode.action,
        )
    for net in policy.nets:
        put(
            out.nets.setdefault(net_key(net.network, net.port), VerdictValue()),
            Hook.SOCKET_CONNECT,
            net.rule_id,
            net.action,
        )
    for target in policy.ptrace:
        put(
            out.ptrace.setdefault(target.tgid, VerdictValue()),
            Hook.PTRACE_ACCESS_CHECK,
            target.rule_id,
            target.action,
        )
    _close_lpm(out.prefixes)
    _close_lpm(out.suffixes)
    _close_lpm(out.nets)
    for hook, rules in patterns.items():
        out.dfas[hook] = _dfa_program(rules, max_dfa_states)
    return out


def _dfa_program(rules: Sequence[PathRule], max_states: int) -> DfaProgram:
    """Compile one hook's patterns, numbering (rule, action) pairs denies first, smallest first."""
    ordered = sorted({(r.action, r.rule_id) for r in rules})
    ids = {pair: i + 1 for i, pair in enumerate(ordered)}
    pats = []
    for r in rules:
        dfa_id = ids[(r.action, r.rule_id)]
        make = dfa.contains if r.kind == "contains" else dfa.glob
        pats.append(make(os.fsencode(r.pattern), dfa_id, case_insensitive=r.case_insensitive))
    tables = dfa.compile_patterns(pats, max_states=max_states)
    return DfaProgram(tables=tables, rules=tuple((rule_id, action) for action, rule_id in ordered))
