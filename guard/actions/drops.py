"""Decisions the kernel could not hand over, turned into signed audit records.

Every denied, would-block and killed call travels on the decision ring (``guard_decisions``), apart
from telemetry. When that ring is full the kernel counts the decision instead: in the pinned hash
map ``guard_decision_drops`` under (rule number, hook, decision), and in the hook's
``DECISION_DROPS`` counter. :class:`DropReporter` reads both and, for every key whose count grew
since it was last reported, writes one ``decisions_not_recorded`` record (rule, hook, verdict,
count, window), then forces a signed checkpoint. So every kernel decision is either a record of
its own or counted in a signed one. A drop the table had no room for (more distinct keys than it
holds) is in the per-hook counter only: its surplus over the table is reported per hook, without
a rule or verdict.

The window of a record is the interval the growth happened in: from the start of the previous
read of the table (or the plane's load, for a table still empty then; unknown, ``None``, for
counts an earlier agent left without a state file) to the end of this read.

What is already in the trail is kept in a small JSON state file beside it, written after the
records and their checkpoint: the table's epoch (its identity: the boot and the map), the counts
reported per key and when they were read. The table is pinned, so an agent that starts on the same
table reports only the growth since, including what accumulated while no agent ran; on a new table
(another boot, another map layout) it starts from zero. A crash between the records and the state
write reports that growth again at the next start (each record carries the cumulative ``total``,
so a reader sees the overlap): a count may be reported twice, never lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import structlog

from guard.audit.query import format_ts
from guard.audit.record import Decision, JsonValue, Kind
from guard.audit.sink import AuditSink
from guard.errors import KernelError
from guard.lsm import abi
from guard.lsm.backend import DropKey, KernelBackend
from guard.model import HOOKS, Hook

__all__ = ["STATE_VERSION", "VERDICTS", "DropReporter"]

log = structlog.get_logger(__name__)

#: The state file's format.
STATE_VERSION: Final = 1

#: A kernel decision's verdict in a ``decisions_not_recorded`` record.
VERDICTS: Final = {
    abi.Decision.DENIED: "deny",
    abi.Decision.WOULD_BLOCK: "would_block",
    abi.Decision.KILLED: "kill",
}

#: the (rule, hook) key lines ``status()`` lists at most
_STATUS_KEYS: Final = 20


class DropReporter:
    """Reads the decision-drop table and audits its growth; see the module docstring."""

    def __init__(
        self,
        backend: KernelBackend,
        audit: AuditSink,
        *,
        state_path: Path | None = None,
        interval_s: float = 1.0,
        clock: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.audit = audit
        self.state_path = state_path
        self.interval_s = interval_s
        self._clock = clock
        self._monotonic = monotonic
        self._epoch = ""
        self._reported: dict[DropKey, int] = {}
        self._unattributed: dict[Hook, int] = {}
        self._since: int | None = None
        self._due = -float("inf")
        self._read_failed = False
        #: records this agent wrote
        self.records = 0

    # ------------------------------------------------------------------ start

    def start(self, *, loaded_ns: int) -> None:
        """Take up the loaded plane's table: what the state file says is in the trail, if it is that table.

        ``loaded_ns`` is when the plane was loaded. Without a state for this table, every count in
        it is new; the first window opens at ``loaded_ns`` when the table is still empty, else at
        an unknown time (a table an earlier agent left: its counts may predate this one).
        """
        self._due = -float("inf")
        self._reported, self._unattributed, self._since = {}, {}, None
        try:
            epoch = self.backend.decision_drops_epoch()
            empty = not self.backend.decision_drops() and not any(
                self.backend.counters(h).get(abi.Counter.DECISION_DROPS, 0) for h in HOOKS
            )
        except KernelError as exc:
            log.warning("decision_drops_unreadable", error=str(exc))
            epoch, empty = "", False
        self._epoch = epoch
        state = self._load_state()
        if state is not None and epoch and state[0] == epoch:
            _, self._reported, self._unattributed, self._since = state
            return
        if state is not None:
            log.info("decision_drops_new_table", epoch=epoch, previous=state[0])
        self._since = loaded_ns if empty else None

    # ------------------------------------------------------------------ report

    def due(self) -> bool:
        """Return whether the next read is due (at most one per ``interval_s``)."""
        return self._monotonic() >= self._due

    def report(self, rule_ids: Mapping[int, str], *, backend: str) -> int:
        """Read the table; audit each key that grew, checkpoint, save the state; return the records."""
        self._due = self._monotonic() + self.interval_s
        before = self._clock()
        try:
            # the counters first: the kernel adds to the table before the counter, so a counter
            # read before the table never counts more attributable drops than the table holds
            counters = {h: self.backend.counters(h).get(abi.Counter.DECISION_DROPS, 0) for h in HOOKS}
            table = self.backend.decision_drops()
        except KernelError as exc:
            if not self._read_failed:
                log.warning("decision_drops_unreadable", error=str(exc))
            self._read_failed = True
            return 0
        self._read_failed = False
        after = self._clock()
        records = []
        for key in sorted(table, key=_key_order):
            total, done = table[key], self._reported.get(key, 0)
            if total > done:
                records.append(self._record(key, total - done, total, rule_ids, backend, after))
            if total != done:
                self._reported[key] = total
        for hook in HOOKS:
            attributed = sum(n for (_, h, _), n in table.items() if h is hook)
            surplus, done = counters[hook] - attributed, self._unattributed.get(hook, 0)
            if surplus > done:
                key_none = (None, hook, None)
                records.append(self._record(key_none, surplus - done, surplus, rule_ids, backend, after))
                self._unattributed[hook] = surplus
        for record in records:
            self.audit.append(record)
        if records:
            self.audit.checkpoint()
            self.records += len(records)
        self._since = before
        if records:
            self._save_state()
        return len(records)

    def _record(
        self,
        key: tuple[int | None, Hook, abi.Decision | None],
        count: int,
        total: int,
        rule_ids: Mapping[int, str],
        backend: str,
        end_ns: int,
    ) -> Decision:
        number, hook, decision = key
        rule = None if not number else rule_ids.get(number, f"#{number}")
        verdict = VERDICTS[decision] if decision is not None else None
        since = (
            "an unknown time (a table an earlier agent left)"
            if self._since is None
            else format_ts(self._since)
        )
        what = f"{verdict} decision(s) of rule {rule}" if number else f"{verdict or 'kernel'} decision(s)"
        why = "the decision ring was full" if decision is not None else "the ring and drop table were full"
        detail: dict[str, JsonValue] = {
            "count": count,
            "total": total,
            "rule_number": number,
            "decision": decision.name.lower() if decision is not None else None,
            "window_start_ns": self._since,
            "window_end_ns": end_ns,
            "backend": backend,
            "table_epoch": self._epoch,
        }
        return Decision(
            Kind.DECISIONS_NOT_RECORDED,
            rule_id=rule,
            hook=hook.value,
            verdict=verdict,
            outcome="not_recorded",
            reason=(
                f"{count} {what} on {hook.value} not recorded one by one ({why}), "
                f"between {since} and {format_ts(end_ns)}"
            ),
            detail=detail,
            ts=end_ns,
        )

    # ------------------------------------------------------------------ status

    def status(self, rule_ids: Mapping[int, str]) -> dict[str, JsonValue]:
        """Return the totals reported for this table: overall, and by (rule, hook, verdict)."""
        keys: list[JsonValue] = [
            {
                "rule": rule_ids.get(n, f"#{n}") if n else None,
                "hook": hook.value,
                "verdict": VERDICTS[d],
                "count": count,
            }
            for (n, hook, d), count in sorted(self._reported.items(), key=lambda kv: -kv[1])[:_STATUS_KEYS]
        ]
        unattributed = sum(self._unattributed.values())
        return {
            "total": sum(self._reported.values()) + unattributed,
            "unattributed": unattributed,
            "records": self.records,
            "last_read_ns": self._since,
            "by_rule": keys,
        }

    # ------------------------------------------------------------------ state

    def _load_state(self) -> tuple[str, dict[DropKey, int], dict[Hook, int], int | None] | None:
        """Return (epoch, reported, unattributed, read_ns) from the state file; None: absent or unreadable."""
        if self.state_path is None:
            return None
        try:
            data = json.loads(self.state_path.read_text())
            if data.get("v") != STATE_VERSION:
                raise ValueError(f"version {data.get('v')!r}")
            reported = {
                (int(n), Hook.from_abi(int(h)), abi.Decision(int(d))): int(c)
                for n, h, d, c in data["reported"]
            }
            unattributed = {Hook.from_abi(int(h)): int(c) for h, c in data["unattributed"]}
            read_ns = data["read_ns"]
            return str(data["epoch"]), reported, unattributed, None if read_ns is None else int(read_ns)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # without it every count in the table is reported again: twice rather than never
            log.warning("decision_drops_state_unreadable", path=str(self.state_path), error=str(exc))
            return None

    def _save_state(self) -> None:
        """Write the state file atomically (a temporary file renamed over it)."""
        if self.state_path is None:
            return
        data = {
            "v": STATE_VERSION,
            "epoch": self._epoch,
            "read_ns": self._since,
            "reported": [
                [n, h.abi, int(d), c] for (n, h, d), c in sorted(self._reported.items(), key=_by_key)
            ],
            "unattributed": [[h.abi, c] for h, c in self._unattributed.items()],
        }
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_path)
        except OSError as exc:
            # the records are in the trail; the next agent on this table reports them again
            log.warning("decision_drops_state_unwritable", path=str(self.state_path), error=exc.strerror)
            with contextlib.suppress(OSError):
                tmp.unlink()


def _key_order(key: DropKey) -> tuple[int, int, int]:
    number, hook, decision = key
    return number, hook.abi, int(decision)


def _by_key(item: tuple[DropKey, int]) -> tuple[int, int, int]:
    return _key_order(item[0])
