"""``guardctl status``: the running agent's status as a typed value, rendered as text or its JSON."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

from guard.cli.command import Subparsers, command
from guard.cli.output import emit
from guard.config import GuardConfig

__all__ = [
    "AgentStatus",
    "HookCounters",
    "NotRecorded",
    "PredicateStats",
    "RecentDecision",
    "register",
    "render_status",
]

_TRAPS = ("fuel", "memory", "stack", "error")
_RECENT_SHOWN = 10


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _int(data: Mapping[str, object], key: str) -> int:
    value = data.get(key, 0)
    return int(value) if isinstance(value, int | float | str) else 0


@dataclass(frozen=True)
class HookCounters:
    """One hook's kernel counters: calls, denies, would-block decisions and ring-buffer drops."""

    hook: str
    calls: int
    denies: int
    would_block: int
    ringbuf_drops: int

    @classmethod
    def from_json(cls, hook: str, c: Mapping[str, object]) -> HookCounters:
        """Build the counters from the status document's ``counters[hook]``."""
        return cls(hook, *(_int(c, k) for k in ("calls", "denies", "would_block", "ringbuf_drops")))

    def render_text(self) -> str:
        """Return the hook's row."""
        return (
            f"{self.hook:<21} {self.calls:>10} {self.denies:>8} {self.would_block:>8} {self.ringbuf_drops:>6}"
        )


@dataclass(frozen=True)
class PredicateStats:
    """A wasm / lua predicate: its runtime, the events it decided, escaped to the host and trapped."""

    name: str
    runtime: str | None
    events: int
    escaped: int
    trapped: int
    rules: tuple[str, ...]

    @classmethod
    def from_json(cls, name: str, p: Mapping[str, object]) -> PredicateStats:
        """Build the stats from the status document's ``predicates[name]`` (traps summed over their kinds)."""
        runtime = p.get("runtime")
        rules = p.get("rules") or []
        return cls(
            name,
            None if runtime is None else str(runtime),
            _int(p, "events"),
            _int(p, "escaped"),
            sum(_int(p, k) for k in _TRAPS),
            tuple(str(r) for r in rules) if isinstance(rules, list) else (),
        )

    def render_text(self) -> str:
        """Return the predicate's row."""
        return (
            f"{self.name:<10} {self.runtime!s:<8} {self.events:>8} {self.escaped:>8} "
            f"{self.trapped:>8}  {', '.join(self.rules)}"
        )


@dataclass(frozen=True)
class RecentDecision:
    """One of the agent's recent decisions: the event kind, its rule, the process and what it touched."""

    event: str
    rule: str | None
    pid: object
    what: object

    @classmethod
    def from_json(cls, r: Mapping[str, object]) -> RecentDecision:
        """Build the decision from one entry of the status document's ``recent``."""
        rule = r.get("rule")
        return cls(str(r.get("event")), None if rule is None else str(rule), r.get("pid"), r.get("what"))

    def render_text(self) -> str:
        """Return the decision's line."""
        return f"  {self.event:<12} {self.rule!s:<28} pid {self.pid} {self.what}"


@dataclass(frozen=True)
class NotRecorded:
    """Decisions the decision ring had no room for, audited as counts (total, by rule, hook, verdict)."""

    total: int
    records: int
    unattributed: int
    by_rule: tuple[tuple[str, str, str, int], ...]

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> NotRecorded:
        """Build the totals from the status document's ``decisions_not_recorded``."""
        rows = d.get("by_rule") or []
        return cls(
            _int(d, "total"),
            _int(d, "records"),
            _int(d, "unattributed"),
            tuple(
                (str(r.get("rule") or "-"), str(r.get("hook")), str(r.get("verdict")), _int(r, "count"))
                for r in (rows if isinstance(rows, list) else [])
                if isinstance(r, dict)
            ),
        )

    def render_lines(self) -> list[str]:
        """Return the summary line and one line per (rule, hook, verdict)."""
        lines = [
            f"decisions not recorded (decision ring full): {self.total}, "
            f"audited as counts in {self.records} record(s) by this agent"
        ]
        lines += [f"  {rule:<28} {hook:<21} {verdict:<12} {n:>8}" for rule, hook, verdict, n in self.by_rule]
        if self.unattributed:
            lines.append(f"  {'(no rule: drop table full)':<28} {'':<21} {'':<12} {self.unattributed:>8}")
        return lines


@dataclass(frozen=True)
class AgentStatus:
    """The agent's status: mode, backend, rules by enforcement path, counters, predicates, recent decisions.

    ``document`` is the agent's JSON as received; ``--json`` prints it unchanged.
    """

    document: Mapping[str, object]
    pid: object
    backend: object
    mode: object
    rule_modes: tuple[tuple[str, str], ...]
    confirm_pending_s: object
    rules: tuple[tuple[str, str], ...]
    counters: tuple[HookCounters, ...] | None
    predicates: tuple[PredicateStats, ...]
    recent: tuple[RecentDecision, ...]
    #: ring-buffer records of the wrong size (the plane's ``ring_bad_size``), not decoded
    ring_bad_size: int = 0
    #: decisions the decision ring had no room for, audited as counts (``decisions_not_recorded``)
    not_recorded: NotRecorded | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AgentStatus:
        """Build the status from the agent's JSON (``Agent.status()``, a control-socket response)."""
        counters = data.get("counters") or {}
        recent = data.get("recent") or []
        not_recorded = data.get("decisions_not_recorded")
        return cls(
            document=data,
            pid=data.get("pid"),
            backend=data.get("backend"),
            mode=data.get("mode"),
            rule_modes=tuple((str(r), str(m)) for r, m in _dict(data.get("rule_modes")).items()),
            confirm_pending_s=data.get("confirm_pending_s"),
            rules=tuple(
                (str(path), ", ".join(ids) if isinstance(ids, list) else str(ids))
                for path, ids in _dict(data.get("rules")).items()
            ),
            counters=tuple(
                HookCounters.from_json(str(hook), c) for hook, c in counters.items() if isinstance(c, dict)
            )
            if isinstance(counters, dict)
            else None,
            predicates=tuple(
                PredicateStats.from_json(str(name), p)
                for name, p in _dict(data.get("predicates")).items()
                if isinstance(p, dict)
            ),
            recent=tuple(RecentDecision.from_json(r) for r in recent[-_RECENT_SHOWN:] if isinstance(r, dict))
            if isinstance(recent, list)
            else (),
            ring_bad_size=_int(_dict(data.get("plane")), "ring_bad_size"),
            not_recorded=NotRecorded.from_json(not_recorded) if isinstance(not_recorded, dict) else None,
        )

    def to_json(self) -> Mapping[str, object]:
        """Return the agent's JSON as received."""
        return self.document

    def render_text(self) -> str:
        """Return the status as text: a summary line, then each section the agent reported."""
        lines = [f"agent pid {self.pid}: backend {self.backend}, mode {self.mode}"]
        if self.rule_modes:
            lines.append("rule modes: " + ", ".join(f"{r}={m}" for r, m in self.rule_modes))
        if self.confirm_pending_s is not None:
            lines.append(
                f"pending confirmation: reverts in {self.confirm_pending_s} s unless `guardctl confirm`"
            )
        lines += [f"{path:<15} {ids}" for path, ids in self.rules]
        if self.counters is not None:
            lines.append(f"{'HOOK':<21} {'CALLS':>10} {'DENIES':>8} {'WOULD':>8} {'DROPS':>6}")
            lines += [c.render_text() for c in self.counters]
        if self.ring_bad_size:
            lines.append(f"ring buffer: {self.ring_bad_size} records of the wrong size, not decoded")
        if self.not_recorded is not None and self.not_recorded.total:
            lines += self.not_recorded.render_lines()
        if self.predicates:
            lines.append(
                f"{'PREDICATE':<10} {'RUNTIME':<8} {'EVENTS':>8} {'ESCAPED':>8} {'TRAPPED':>8}  RULES"
            )
            lines += [p.render_text() for p in self.predicates]
        if self.recent:
            lines.append("recent decisions:")
            lines += [r.render_text() for r in self.recent]
        return "\n".join(lines)


def render_status(data: Mapping[str, object]) -> str:
    """Return the agent's status JSON as text."""
    return AgentStatus.from_json(data).render_text()


def _cmd_status(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import status

    result = AgentStatus.from_json(status(cfg))
    emit(args, result.to_json, result.render_text)
    return 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl status``."""
    q = command(
        sub,
        "status",
        _cmd_status,
        "the running agent: mode, backend, rules by path, counters, recent denials",
    )
    q.add_argument("--json", action="store_true", help="print JSON")
