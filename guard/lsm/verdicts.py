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
from typing import Final, Literal

from guard.errors import PolicyCompileError
from guard.lsm import abi, dfa
from guard.model import HOOKS, Hook

__all__ = [
    "PATH_HOOKS",
    "Action",
    "DfaProgram",
    "DynamicVerdict",
    "InodeRule",
    "KernelPolicy",
    "NetRule",
    "PathKind",
    "PathRule",
    "PtraceRule",
    "VerdictTables",
    "VerdictValue",
    "build_tables",
    "encode_path",
    "kernel_dev",
    "lpm_lookup",
    "lpm_path_key",
    "net_key",
    "net_lookup_keys",
    "normalise_ip",
    "same_bits",
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


@dataclass(frozen=True)
class KernelPolicy:
    """Everything the kernel decides alone, plus which calls user space wants to see."""

    paths: tuple[PathRule, ...] = ()
    inodes: tuple[InodeRule, ...] = ()
    nets: tuple[NetRule, ...] = ()
    ptrace: tuple[PtraceRule, ...] = ()
    #: Per-hook ``abi.HF_*`` bits (interest "emit every call", fail-closed on over-long paths).
    hook_flags: Mapping[Hook, int] = field(default_factory=dict)


@dataclass
class VerdictValue:
    """The value of every static map: per hook, the smallest deny and notify rule id (0 = none)."""

    deny: list[int] = field(default_factory=lambda: [0] * abi.HOOK_COUNT)
    notify: list[int] = field(default_factory=lambda: [0] * abi.HOOK_COUNT)

    def add(self, hook: Hook, rule_id: int, action: Action) -> None:
        """Record a rule for a hook, keeping the smallest id per action."""
        row = self.deny if Action(action) is Action.DENY else self.notify
        if row[hook.abi] == 0 or rule_id < row[hook.abi]:
            row[hook.abi] = rule_id

    def merge(self, other: VerdictValue) -> None:
        """Add every rule id of ``other``."""
        for hook in HOOKS:
            if other.deny[hook.abi]:
                self.add(hook, other.deny[hook.abi], Action.DENY)
            if other.notify[hook.abi]:
                self.add(hook, other.notify[hook.abi], Action.NOTIFY)

    def to_abi(self) -> abi.Verdict:
        """Return the ``struct guard_verdict`` for this value."""
        value = abi.Verdict()
        for i in range(abi.HOOK_COUNT):
            value.deny[i] = self.deny[i]
            value.notify[i] = self.notify[i]
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
    patterns: dict[Hook, list[PathRule]] = {}
    for rule in policy.paths:
        if rule.kind == "exact":
            out.paths.setdefault(encode_path(rule.pattern), VerdictValue()).add(
                rule.hook, rule.rule_id, rule.action
            )
        elif rule.kind == "prefix":
            key = lpm_path_key(encode_path(rule.pattern, f"rule {rule.rule_id} prefix"))
            out.prefixes.setdefault(key, VerdictValue()).add(rule.hook, rule.rule_id, rule.action)
        elif rule.kind == "suffix":
            key = lpm_path_key(encode_path(rule.pattern, f"rule {rule.rule_id} suffix")[::-1])
            out.suffixes.setdefault(key, VerdictValue()).add(rule.hook, rule.rule_id, rule.action)
        else:
            patterns.setdefault(rule.hook, []).append(rule)
    for inode in policy.inodes:
        out.inodes.setdefault((inode.dev, inode.ino), VerdictValue()).add(
            inode.hook, inode.rule_id, inode.action
        )
    for net in policy.nets:
        out.nets.setdefault(net_key(net.network, net.port), VerdictValue()).add(
            Hook.SOCKET_CONNECT, net.rule_id, net.action
        )
    for target in policy.ptrace:
        out.ptrace.setdefault(target.tgid, VerdictValue()).add(
            Hook.PTRACE_ACCESS_CHECK, target.rule_id, target.action
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
