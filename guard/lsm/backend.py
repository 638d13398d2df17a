"""The KernelBackend protocol: what every data plane (lsm, compat, fake) offers the agent.

The agent never touches maps directly: it configures modes (per hook, and per rule) and scope,
replaces the static verdict tables produced by :func:`guard.lsm.verdicts.build_tables`, arms and
disarms per-entity verdicts, and reads events and counters. ``LsmBackend`` and ``CompatBackend``
(guard/lsm/bcc_backend.py) write BPF maps; ``FakeBackend`` (guard/lsm/fake.py) holds the same
tables in memory and evaluates the hooks with the same semantics, for tests that cannot load BPF.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from guard.lsm import abi
from guard.lsm.abi import ModeId
from guard.lsm.verdicts import DynamicVerdict, VerdictTables
from guard.model import BackendName, Hook

__all__ = ["DropKey", "KernelBackend"]

#: A key of the decision-drop table: (kernel rule number, 0 = the long-path deny; hook; decision).
DropKey = tuple[int, Hook, abi.Decision]


@runtime_checkable
class KernelBackend(Protocol):
    """A loaded data plane. Every method raises a :class:`~guard.errors.KernelError` subclass."""

    name: BackendName

    def load(self) -> None:
        """Load and attach; everything allows until configured."""

    def close(self) -> None:
        """Detach and release."""

    def configure(self, modes: Mapping[Hook, ModeId], *, agent_tgid: int) -> None:
        """Set every hook's mode (missing hooks: off) and the agent's tgid (never governed)."""

    def set_scope(
        self, *, cgroups: Iterable[int] = (), pids: Iterable[int] = (), all_tasks: bool = False
    ) -> None:
        """Replace the governed set: cgroup v2 ids and tgids, or every task but the agent (``all_tasks``)."""

    def set_rule_modes(self, modes: Mapping[int, ModeId]) -> None:
        """Replace every rule's mode override (rule id -> mode; a rule without one follows its hook).

        The deciding rule's mode replaces the hook's: off = as if it had not matched, detect =
        would-block, enforce = deny even while the hook detects. A hook that is off stays off.
        """

    def rule_modes(self) -> dict[int, ModeId]:
        """Return every rule's mode override."""

    def apply(self, tables: VerdictTables) -> None:
        """Replace every static verdict table (and the per-hook interest flags) with ``tables``."""

    def track(self, tgid: int, group: int) -> None:
        """Put a process into an entity group; its future children inherit the group."""

    def untrack(self, tgid: int) -> None:
        """Remove a process from its group."""

    def arm(self, verdict: DynamicVerdict) -> None:
        """Arm a per-entity verdict (replacing one with the same group, hook and target)."""

    def disarm(self, group: int, hook: Hook, *, dev: int = 0, ino: int = 0) -> None:
        """Remove an armed verdict (absent is fine)."""

    def modes(self) -> dict[Hook, ModeId]:
        """Return every hook's mode as last written (or adopted from pinned maps)."""

    def group_of(self, tgid: int) -> int | None:
        """Return the entity group a process is in (None: untracked)."""

    def armed(self) -> list[DynamicVerdict]:
        """Return every armed verdict held (an expired one may stay until a hook meets it)."""

    def counters(self, hook: Hook) -> dict[abi.Counter, int]:
        """Return the hook's counters (calls, denies, would-blocks, drops, over-long paths, emitted)."""

    def poll_events(self, timeout_ms: int = 100) -> list[abi.Event]:
        """Return what the rings hold now (waiting up to ``timeout_ms`` for the first record).

        Decisions (denied, would-block, killed: the decision ring) come first in the batch, then
        telemetry (allowed events: the event ring). Process records read by the same poll are
        kept for :meth:`process_records`.
        """

    def process_records(self) -> list[abi.ProcRecord]:
        """Return (and forget) the process records (forks, execs, exits) polls read so far."""

    def set_process_events(
        self,
        on: bool,
        *,
        env_vars: bool = False,
        syscalls: bool = True,
        modify: bool = False,
        dns: bool = False,
    ) -> None:
        """Report governed forks, execs and exits with their context (the agent's process table).

        With them, as the loaded rules need: ``env_vars``, exec records carry the new image's
        environment (the agent keeps only the variables its allow-list names); ``syscalls``, the
        changes reported at the syscalls' exits (deletions, renames, id changes, memfds, modules,
        accepts, ownership, xattrs, mounts); ``modify``, the first write through each file a task
        opened (modification); ``dns``, the DNS messages sent to port 53 and read back
        (lookup_requested, lookup_result).
        """

    def decision_drops(self) -> dict[DropKey, int]:
        """Return, by (rule number, hook, decision), the decisions the decision ring had no room for.

        Counts only grow while the table lives (with pinned maps, across agents and while none
        runs); :meth:`decision_drops_epoch` says when it started over. A drop the table had no room
        for is in the hook's ``DECISION_DROPS`` counter only.
        """

    def decision_drops_epoch(self) -> str:
        """Return the drop table's identity: it changes whenever the table starts over, never else."""

    def plane_counters(self) -> dict[str, int]:
        """Return the plane's own counters (``ring_bad_size``: ring records of the wrong size)."""
