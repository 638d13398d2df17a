"""Protected processes, exempt executables and file identities: policy paths resolved to inodes.

A ptrace rule may protect processes by name or executable, and a file rule may exempt callers by
executable; the kernel decides by pid and by (dev, inode), and both drift (processes start and
exit, a package upgrade replaces a binary: a new inode). :class:`Protection` resolves them again
every ``refresh_s`` and rewrites the verdict tables when something changed. The agent protects
itself from ptrace (:data:`SELF_RULE`).

Paths are names; the kernel also judges files by what they are, so another name for the same
object meets the same rule (:func:`identities`):

- an exact path of an exec or file_open rule also becomes a verdict on its file's (dev, inode):
  hard links, bind mounts, chroots, file handles reach it;
- a directory rule (a prefix ending in ``/``, or a glob ``<directory>/*``) also becomes a subtree
  verdict on the directory's (dev, inode): every file below it, by whatever path;
- protected names and executables go to the kernel too, which protects a process at its exec,
  before user space could list it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import Final

from guard.lsm import abi
from guard.lsm.backend import KernelBackend
from guard.lsm.verdicts import Action, PathRule, VerdictTables, VerdictValue, build_tables
from guard.model import Hook
from guard.plan.compiler import CompiledPolicy

__all__ = ["SELF_RULE", "SELF_RULE_ID", "Identities", "Protection", "identities", "subtree_of"]

#: The kernel rule number and id of the agent's own protection (ptrace of the agent is denied).
SELF_RULE: Final = 0xFFFF_FF00
SELF_RULE_ID: Final = "guard_self_protect"


#: A glob that is a directory and everything below it: a literal directory, then ``/*``.
_DIR_GLOB: Final = re.compile(r"(/[^*?\\]*?)/\*")

Identity = tuple[int, int]


def subtree_of(rule: PathRule) -> str | None:
    """Return the directory a path rule covers whole (``/tmp/`` prefix, ``/tmp/*`` glob), or None."""
    if rule.kind == "prefix" and rule.pattern.endswith("/"):
        return rule.pattern.rstrip("/") or "/"
    if rule.kind == "glob":
        m = _DIR_GLOB.fullmatch(rule.pattern)
        if m is not None:
            return m.group(1)
    return None


@dataclasses.dataclass(frozen=True)
class Identities:
    """Policy paths and selectors resolved to what the kernel can also match them by."""

    inodes: dict[Identity, VerdictValue] = dataclasses.field(default_factory=dict)
    subtrees: dict[Identity, VerdictValue] = dataclasses.field(default_factory=dict)
    protect_exes: dict[Identity, VerdictValue] = dataclasses.field(default_factory=dict)
    protect_names: dict[bytes, VerdictValue] = dataclasses.field(default_factory=dict)


def identities(compiled: CompiledPolicy, resolve: Callable[[str], Identity | None]) -> Identities:
    """Resolve exact paths to inodes, directory rules to subtrees, protected processes to identities.

    Protected executables and names are what the kernel protects at exec. A path that does not
    exist is skipped (its path verdict still applies; a later refresh resolves it once it exists).
    """
    out = Identities()
    conditioned = {s.rule_id for s in compiled.kernel.subjects}

    def put(value: VerdictValue, rule: PathRule) -> None:
        if rule.rule_id in conditioned:  # the caller's test goes with the rule, whatever names the file
            value.add_cond(rule.hook, (rule.rule_id,))
        else:
            value.add(rule.hook, rule.rule_id, rule.action)

    for rule in compiled.kernel.paths:
        if rule.kind == "exact" and not rule.case_insensitive:
            found = resolve(rule.pattern)
            if found is not None:
                put(out.inodes.setdefault(found, VerdictValue()), rule)
            continue
        directory = subtree_of(rule)
        if directory is not None and rule.rule_id not in conditioned:  # subtrees test no caller
            found = resolve(directory)
            if found is not None:
                put(out.subtrees.setdefault(found, VerdictValue()), rule)
    for sel in compiled.targets:
        for name in sel.names:
            key = name.encode()[: abi.COMM_LEN - 1].ljust(abi.COMM_LEN, b"\0")
            out.protect_names.setdefault(key, VerdictValue()).add(
                Hook.PTRACE_ACCESS_CHECK, sel.rule_number, sel.action
            )
        for exe in sel.executables:
            found = resolve(exe)
            if found is not None:
                out.protect_exes.setdefault(found, VerdictValue()).add(
                    Hook.PTRACE_ACCESS_CHECK, sel.rule_number, sel.action
                )
    return out


class Protection:
    """The static verdict tables plus the pids ptrace protects and the exempt (rule, dev, inode)."""

    def __init__(
        self,
        backend: KernelBackend,
        compiled: CompiledPolicy,
        *,
        agent_tgid: int,
        self_protect: bool,
        refresh_s: float,
        monotonic: Callable[[], float],
        exe_identity: Callable[[str], tuple[int, int] | None],
        list_processes: Callable[[], Iterable[tuple[int, str, str]]],
    ) -> None:
        self.backend = backend
        self._agent_tgid = agent_tgid
        self._self_protect = self_protect
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._exe_identity = exe_identity
        self._list_processes = list_processes
        self.compiled = compiled
        self._static: VerdictTables = build_tables(compiled.kernel)
        self.targets: dict[int, tuple[int, Action]] = {}
        self._exempt: set[tuple[int, int, int]] = set()
        self._identities = Identities()
        self._next_refresh = 0.0

    def use(self, compiled: CompiledPolicy) -> None:
        """Resolve against ``compiled`` from now on (the next refresh writes its tables)."""
        self.compiled = compiled
        self._static = build_tables(compiled.kernel)

    def due(self, now: float) -> bool:
        """Return whether the periodic refresh is due."""
        return now >= self._next_refresh

    def refresh(self, *, force: bool = False) -> None:
        """Resolve names to pids, executables and policy paths to inodes; rewrite what changed."""
        self._next_refresh = self._monotonic() + self._refresh_s
        exempt = set()
        for number, path in self.compiled.exemptions:
            identity = self._exe_identity(path)
            if identity is not None:
                exempt.add((number, *identity))
        targets: dict[int, tuple[int, Action]] = {}
        if self._self_protect:
            targets[self._agent_tgid] = (SELF_RULE, Action.DENY)
        selectors = self.compiled.targets
        if selectors:
            for pid, name, exe in self._list_processes():
                for sel in selectors:
                    if sel.selects(name, exe) and pid not in targets:
                        targets[pid] = (sel.rule_number, sel.action)
        found = identities(self.compiled, self._exe_identity)
        if not force and targets == self.targets and exempt == self._exempt and found == self._identities:
            return
        self.targets = targets
        self._exempt = exempt
        self._identities = found
        tables = dataclasses.replace(
            self._static,
            ptrace=dict(self._static.ptrace),
            exemptions=exempt,
            inodes=_merged(self._static.inodes, found.inodes),
            subtrees=found.subtrees,
            protect_exes=found.protect_exes,
            protect_names=found.protect_names,
        )
        for tgid, (number, action) in targets.items():
            tables.ptrace.setdefault(tgid, VerdictValue()).add(Hook.PTRACE_ACCESS_CHECK, number, action)
        self.backend.apply(tables)


def _merged(*tables: dict[Identity, VerdictValue]) -> dict[Identity, VerdictValue]:
    out: dict[Identity, VerdictValue] = {}
    for table in tables:
        for key, value in table.items():
            out.setdefault(key, VerdictValue()).merge(value)
    return out
