"""Protected processes and exempt executables: policy selectors resolved to pids and inodes.

A ptrace rule may protect processes by name or executable, and a file rule may exempt callers by
executable; the kernel decides by pid and by (dev, inode), and both drift (processes start and
exit, a package upgrade replaces a binary: a new inode). :class:`Protection` resolves them again
every ``refresh_s`` and rewrites the verdict tables when something changed. The agent protects
itself from ptrace (:data:`SELF_RULE`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Final

from guard.lsm.backend import KernelBackend
from guard.lsm.verdicts import Action, VerdictTables, VerdictValue, build_tables
from guard.model import Hook
from guard.plan.compiler import CompiledPolicy

__all__ = ["SELF_RULE", "SELF_RULE_ID", "Protection"]

#: The kernel rule number and id of the agent's own protection (ptrace of the agent is denied).
SELF_RULE: Final = 0xFFFF_FF00
SELF_RULE_ID: Final = "guard_self_protect"


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
        self._next_refresh = 0.0

    def use(self, compiled: CompiledPolicy) -> None:
        """Resolve against ``compiled`` from now on (the next refresh writes its tables)."""
        self.compiled = compiled
        self._static = build_tables(compiled.kernel)

    def due(self, now: float) -> bool:
        """Return whether the periodic refresh is due."""
        return now >= self._next_refresh

    def refresh(self, *, force: bool = False) -> None:
        """Resolve protected names to pids and exempt executables to inodes; rewrite what changed."""
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
        if not force and targets == self.targets and exempt == self._exempt:
            return
        self.targets = targets
        self._exempt = exempt
        tables = dataclasses.replace(self._static, ptrace=dict(self._static.ptrace), exemptions=exempt)
        for tgid, (number, action) in targets.items():
            tables.ptrace.setdefault(tgid, VerdictValue()).add(Hook.PTRACE_ACCESS_CHECK, number, action)
        self.backend.apply(tables)
