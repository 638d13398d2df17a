"""The agent: a compiled policy enforced through a data plane, with every decision audited.

One :class:`Agent` owns a loaded :class:`~guard.lsm.backend.KernelBackend`, the streaming
:class:`~guard.policy.engine.Engine` (for the rules the kernel cannot decide alone), the audit
trail, a process cache and the mode state. :meth:`Agent.step` is one turn of the loop:

1. read the ring buffer (up to a batch), turn each record into an ECS document and enrich it;
2. a kernel decision (deny, would-block, kill) becomes an audit record and an alert at once; a
   ``kill`` rule's process is killed; the block-storm counter of its rule advances;
3. the engine runs over the batch: alerts are written (a ``kill`` rule's process killed under
   enforce), and a sequence rule whose every step but the last has matched is **armed**: a
   dynamic verdict denies the last step in the kernel for that entity and its descendants until
   maxspan (an ``until`` or a budget eviction disarms it);
4. timers: a ``--confirm-within`` deadline that passed reverts the modes, protected process names
   are re-resolved to pids, budget overflows are audited.

Modes live in the kernel (hook modes in the config map, per-rule overrides in the rule-mode map),
so a switch is one map write; the agent keeps the same state to report and to revert. Every change
is audited with who asked (peer uid) and why.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TextIO

import psutil

from guard.actions.decisions import kernel_decision
from guard.agent.processes import ProcessCache, same_process
from guard.audit.record import Decision, JsonValue, Kind, ProcessIdentity
from guard.errors import ConfigError, GuardError, KernelError
from guard.lsm import abi
from guard.lsm.abi import HookId, ModeId
from guard.lsm.backend import KernelBackend
from guard.lsm.events import boot_offset_ns, to_ecs
from guard.lsm.identity import file_identity
from guard.lsm.verdicts import Action, DynamicVerdict, VerdictTables, VerdictValue, build_tables
from guard.model import HOOKS, Mode
from guard.plan.compiler import INLINE, CompiledPolicy, RulePlan
from guard.policy.engine import ArmSignal, Budgets, Engine
from guard.policy.evaluator import Event, timestamp_ms
from guard.policy.predicates.abi import Budget

__all__ = ["SELF_RULE", "SELF_RULE_ID", "Agent", "AgentSettings", "AuditSink"]

#: The kernel rule number and id of the agent's own protection (ptrace of the agent is denied).
SELF_RULE: Final = 0xFFFF_FF00
SELF_RULE_ID: Final = "guard_self_protect"
_MODE_IDS: Final = {Mode.OFF: ModeId.OFF, Mode.DETECT: ModeId.DETECT, Mode.ENFORCE: ModeId.ENFORCE}
_RECENT: Final = 50


class AuditSink(Protocol):
    """The narrow interface the agent writes the audit trail through (an AuditWriter fits)."""

    def append(self, decision: Decision, /) -> object:
        """Record one decision."""


class MemoryAudit:
    """Keeps decisions in memory (tests, demo without a log)."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self._lock = threading.Lock()

    def append(self, decision: Decision, /) -> object:
        """Record one decision."""
        with self._lock:
            self.decisions.append(decision)
        return decision


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """How the agent runs (the CLI fills it from config and flags)."""

    #: the initial mode; None: the modes a previous agent left in the pinned maps (adopted), else enforce
    mode: Mode | None = Mode.ENFORCE
    scope_cgroups: tuple[int, ...] = ()
    scope_pids: tuple[int, ...] = ()
    all_tasks: bool = False  # govern every task but the agent (the scope lists are then unused)
    storm_threshold: int = 50  # denials by one rule within storm_window_s demote it to detect
    storm_window_s: float = 10.0
    target_refresh_s: float = 1.0
    batch: int = 512
    budgets: Budgets = dataclasses.field(default_factory=Budgets)
    #: what a wasm / lua predicate may spend per batch
    runtime_budget: Budget = dataclasses.field(default_factory=Budget)
    self_protect: bool = True

    def __post_init__(self) -> None:
        if self.storm_threshold < 1:
            raise ConfigError(f"storm threshold: must be at least 1, got {self.storm_threshold}")
        if self.storm_window_s <= 0:
            raise ConfigError(f"storm window: must be positive, got {self.storm_window_s}")


@dataclass(slots=True)
class _Confirm:
    deadline: float
    previous: tuple[Mode, dict[str, Mode]]
    uid: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ArmRecord:
    """An armed verdict the agent holds, and when its signal arrived."""

    rule: str
    entity: str
    verdict: DynamicVerdict
    latency_ns: int  # from the arming event entering the ring buffer to the map write


def _alive(tgid: int, start_ns: int | None) -> bool:
    """Return whether ``tgid`` is live (given its start time: the same process, no pid reuse)."""
    if start_ns is None:
        return bool(psutil.pid_exists(tgid))
    return same_process(tgid, start_ns)


def _identity_seen(events: Sequence[Event], path: str) -> tuple[int, int] | None:
    """Return the (dev, inode) the kernel reported for ``path`` in a match's events (latest first)."""
    for ev in reversed(events):
        file = ev.get("file") if isinstance(ev, Mapping) else None
        if isinstance(file, Mapping) and file.get("path") == path:
            dev, ino = file.get("device"), file.get("inode")
            if isinstance(dev, int) and isinstance(ino, int) and ino:
                return dev, ino
    return None


def _list_processes() -> Iterator[tuple[int, str, str]]:
    """Yield (pid, name, executable) of every process."""
    for p in psutil.process_iter(["pid", "name", "exe"]):
        yield p.info["pid"], p.info.get("name") or "", p.info.get("exe") or ""


class Agent:
    """The running agent; see the module docstring."""

    def __init__(
        self,
        compiled: CompiledPolicy,
        backend: KernelBackend,
        audit: AuditSink,
        settings: AgentSettings | None = None,
        *,
        alerts: TextIO | None = None,
        processes: ProcessCache | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        alive: Callable[[int, int | None], bool] = _alive,
        exe_identity: Callable[[str], tuple[int, int] | None] = file_identity,
        list_processes: Callable[[], Iterable[tuple[int, str, str]]] = _list_processes,
    ) -> None:
        self.compiled = compiled
        self.backend = backend
        self.audit = audit
        self.settings = settings or AgentSettings()
        self.alerts_out = alerts
        self.processes = processes or ProcessCache()
        self._monotonic = monotonic
        self._alive = alive
        self._exe_identity = exe_identity
        self._exempt: set[tuple[int, int, int]] = set()
        self._list_processes = list_processes
        self.engine = self._engine(compiled)
        self.rule_ids: dict[int, str] = {**compiled.rule_ids, SELF_RULE: SELF_RULE_ID}
        self.plans: dict[str, RulePlan] = {p.rule.id: p for p in compiled.plans}
        self.mode = self.settings.mode or Mode.ENFORCE
        self.rule_modes: dict[str, Mode] = {
            p.rule.id: Mode(p.rule.mode) for p in compiled.plans if p.rule.mode
        }
        #: rules whose override is the policy's own `mode` (an operator's or a storm's survives a swap)
        self._declared = set(self.rule_modes)
        self.offset_ns = boot_offset_ns()
        self.tgid = os.getpid()
        self._lock = threading.RLock()
        self._confirm: _Confirm | None = None
        self._storm: dict[str, collections.deque[float]] = {}
        self._groups: dict[str, int] = {}
        self._next_group = 1
        self._armed: dict[tuple[str, tuple[object, ...]], ArmRecord] = {}
        self.arm_latencies_ns: list[int] = []
        self._static: VerdictTables = build_tables(compiled.kernel)
        self._ptrace_targets: dict[int, tuple[int, Action]] = {}
        self._next_refresh = 0.0
        self.recent: collections.deque[dict[str, JsonValue]] = collections.deque(maxlen=_RECENT)
        self.counts = collections.Counter[str]()
        self.started = False
        self.turns = 0
        self.events_seen = 0
        self._turned = threading.Condition()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the data plane, configure modes and scope, write the tables; audit the start."""
        self.backend.load()
        adopted = ""
        if self.settings.mode is None and getattr(self.backend, "adopted", False):
            adopted = self._adopt_modes()
        try:
            self.backend.set_scope(
                cgroups=self.settings.scope_cgroups,
                pids=self.settings.scope_pids,
                all_tasks=self.settings.all_tasks,
            )
            self._refresh_targets(force=True)
            self._write_modes()
        except BaseException:
            self.backend.close()
            raise
        self.started = True
        self._audit(
            Decision(
                Kind.AGENT_START,
                reason=f"agent started: backend {self.backend.name}, mode {self.mode}{adopted}",
                detail={
                    "backend": str(self.backend.name),
                    "mode": str(self.mode),
                    "rules": {p.rule.id: p.path for p in self.compiled.plans},
                    "scope_cgroups": list(self.settings.scope_cgroups),
                    "scope_pids": list(self.settings.scope_pids),
                    "pid": self.tgid,
                },
            )
        )

    def stop(self, reason: str = "stopped") -> None:
        """Drain the ring buffer, audit the stop and detach everything (a clean stop leaves nothing)."""
        if not self.started:
            return
        with contextlib.suppress(GuardError):
            self.step(timeout_ms=0)
        self.started = False
        self._audit(Decision(Kind.AGENT_STOP, reason=f"agent {reason}", detail={"pid": self.tgid}))
        self.backend.close()

    def run(self, stop: threading.Event, *, timeout_ms: int = 100) -> None:
        """Loop :meth:`step` until ``stop`` is set."""
        while not stop.is_set():
            self.step(timeout_ms=timeout_ms)

    def _adopt_modes(self) -> str:
        """Take the modes a previous agent (or ``guardctl`` without one) left in the pinned maps."""
        modes = set(self.backend.modes().values())
        by_id = {mid: mode for mode, mid in _MODE_IDS.items()}
        if len(modes) == 1:
            self.mode = by_id[modes.pop()]
        numbers = {n: rule for rule, n in ((p.rule.id, p.number) for p in self.compiled.plans)}
        for number, mid in self.backend.rule_modes().items():
            if number in numbers:
                self.rule_modes[numbers[number]] = by_id[mid]
        return " (adopted from the pinned maps)"

    # ------------------------------------------------------------------ policy swap

    def _engine(self, compiled: CompiledPolicy) -> Engine:
        return Engine(
            compiled.engine_rules, budgets=self.settings.budgets, armed=compiled.armed,
            runtime_budget=self.settings.runtime_budget, modules=compiled.modules,
        )  # fmt: skip

    def swap(self, compiled: CompiledPolicy) -> dict[str, JsonValue]:
        """Replace the policy, with no instant where neither the old nor the new one applies.

        Under the agent's lock (no event is processed half by each policy): the rule modes of both
        policies are written first (the new one's win), then the kernel tables (every new entry and
        the new DFA bank before the one config write that switches to them, stale entries after:
        :meth:`~guard.lsm.bcc_backend._BccPlane.apply`), then the new rule modes alone; the engine
        is replaced, verdicts armed by rules that are gone are disarmed. Kernel rule numbers are
        stable (from the rule ids), so a rule kept across versions keeps its number and override.
        """
        with self._lock:
            engine = self._engine(compiled)  # first: a policy the engine refuses changes nothing
            new_ids = {p.rule.id for p in compiled.plans}
            declared = {p.rule.id: Mode(p.rule.mode) for p in compiled.plans if p.rule.mode}
            kept = {r: m for r, m in self.rule_modes.items() if r in new_ids and r not in self._declared}
            new_modes = {**declared, **kept}
            old_numbers = {self.compiled.number(r): _MODE_IDS[m] for r, m in self.rule_modes.items()}
            new_numbers = {compiled.number(r): _MODE_IDS[m] for r, m in new_modes.items()}
            self.backend.set_rule_modes({**old_numbers, **new_numbers})
            old = self.compiled
            self.compiled = compiled
            self._static = build_tables(compiled.kernel)
            try:
                self._refresh_targets(force=True)
            except GuardError:
                self.compiled, self._static = old, build_tables(old.kernel)
                self.backend.set_rule_modes(old_numbers)
                raise
            self.rule_modes, self._declared = new_modes, set(declared)
            self.backend.set_rule_modes(new_numbers)
            self.plans = {p.rule.id: p for p in compiled.plans}
            self.rule_ids.update(compiled.rule_ids)  # events of old rules still in flight keep their names
            self.engine = engine
            for slot, held in list(self._armed.items()):
                if held.rule not in compiled.armed:
                    v = held.verdict
                    self.backend.disarm(v.group, v.hook, dev=v.dev, ino=v.ino)
                    del self._armed[slot]
            return {"rules": len(compiled.plans), "ruleset": self.engine.ruleset_hash}

    # ------------------------------------------------------------------ one turn

    def step(self, *, timeout_ms: int = 100) -> int:
        """Read one batch of events and act on it; return how many events it held."""
        records = self.backend.poll_events(timeout_ms)
        with self._lock:
            self.events_seen += len(records)
            docs: list[Event] = []
            for record in records:
                doc = to_ecs(record, boot_offset_ns=self.offset_ns)
                self.processes.enrich(doc)
                self._kernel_decision(record, doc)
                docs.append(doc)
            if docs:
                for alert in self.engine.process(docs):
                    self._engine_alert(alert.rule.id, [e for e in alert.events if e is not None])
            for sig in self.engine.take_arm_signals():
                self._on_arm_signal(sig)
            for budget in self.engine.budget_events():
                if budget.kind.startswith("trap_"):
                    reason = (
                        f"user code of the rule's predicate stopped ({budget.kind.removeprefix('trap_')}): "
                        f"{budget.count} event(s) given the rule's fail mode"
                    )
                else:
                    reason = f"engine budget {budget.kind} exceeded {budget.count} time(s)"
                self._audit(
                    Decision(
                        Kind.BUDGET_EXCEEDED,
                        rule_id=budget.rule_id,
                        reason=reason,
                        detail={"kind": budget.kind, "count": budget.count},
                    )
                )
            self._timers()
        with self._turned:
            self.turns += 1
            self._turned.notify_all()
        return len(records)

    def wait_turns(self, count: int, *, timeout: float) -> bool:
        """Wait until ``count`` more turns of the loop have finished (False: timed out)."""
        with self._turned:
            goal = self.turns + count
            return self._turned.wait_for(lambda: self.turns >= goal, timeout=timeout)

    def _kernel_decision(self, record: abi.Event, doc: dict[str, Any]) -> None:
        if record.hook >= abi.HOOK_COUNT:
            return  # telemetry (chmod): never a decision
        decision = kernel_decision(
            record, backend=str(self.backend.name), boot_offset_ns=self.offset_ns, rule_ids=self.rule_ids
        )
        if decision is None:
            return
        process = doc.get("process", {})
        identity = decision.process
        if identity is not None:
            parent = process.get("parent") or {}
            identity = dataclasses.replace(
                identity,
                entity_id=str(process.get("entity_id", "")),
                exe=identity.exe or str(process.get("executable", "")),
                ppid=parent.get("pid"),
                parent_exe=str(parent.get("executable", "")),
            )
            decision = dataclasses.replace(decision, process=identity)
        self._audit(decision)
        self.counts[decision.kind.value] += 1
        self.recent.append(
            {
                "ts": decision.ts,
                "event": decision.kind.value,
                "rule": decision.rule_id,
                "hook": decision.hook,
                "pid": record.tgid,
                "what": _what(doc),
            }
        )
        rule = decision.rule_id or ""
        plan = self.plans.get(rule)
        self._write_alert(rule, [doc], decision.outcome or "")
        if plan is not None and plan.rule.action == "kill" and decision.kind is Kind.DENY:
            self._kill(record.tgid, rule, str(decision.hook), doc)
        if decision.kind in (Kind.DENY, Kind.KILL) and rule in self.plans:
            self._storm_tick(rule)

    def _engine_alert(self, rule_id: str, events: Sequence[Event]) -> None:
        plan = self.plans[rule_id]
        last = events[-1] if events else {}
        kestrel = last.get("kestrel") if isinstance(last, dict) else None
        outcome = "alert"
        if isinstance(kestrel, dict) and kestrel.get("decision") in ("denied", "killed"):
            outcome = "blocked"
        self.counts["alert"] += 1
        self._write_alert(rule_id, events, outcome)
        if (
            plan.rule.action == "kill"
            and plan.path != INLINE
            and self.effective_mode(rule_id) is Mode.ENFORCE
        ):
            process = last.get("process") if isinstance(last, dict) else None
            pid = process.get("pid") if isinstance(process, dict) else None
            if isinstance(pid, int):
                self._kill(pid, rule_id, "", last)

    def _write_alert(self, rule_id: str, events: Sequence[Event], outcome: str) -> None:
        if self.alerts_out is None:
            return
        plan = self.plans.get(rule_id)
        last: dict[str, Any] = dict(events[-1]) if events else {}
        event: dict[str, Any] = dict(last.get("event") or {})
        event.update(kind="alert", outcome=event.get("outcome", "success"))
        doc = {
            **last,
            "event": event,
            "rule": {
                "id": rule_id,
                "name": plan.rule.name if plan else rule_id,
                "ruleset": self.engine.ruleset_hash,
            },
            "kestrel": {**(last.get("kestrel") or {}), "verdict": outcome, "path": plan.path if plan else ""},
        }
        if len(events) > 1:
            doc["kestrel"]["sequence"] = [_what(e) for e in events]
        self.alerts_out.write(json.dumps(doc, default=str, separators=(",", ":")) + "\n")
        self.alerts_out.flush()

    def _kill(self, pid: int, rule_id: str, hook: str, doc: Mapping[str, Any]) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
            outcome, reason = "killed", f"action = kill: SIGKILL sent to {pid}"
        except ProcessLookupError:
            outcome, reason = "gone", f"action = kill: process {pid} had already exited"
        except PermissionError:
            outcome, reason = "failed", f"action = kill: not permitted to signal {pid}"
        self._audit(
            Decision(
                Kind.KILL,
                rule_id=rule_id,
                hook=hook or None,
                process=ProcessIdentity(pid=pid, exe=str((doc.get("process") or {}).get("executable", ""))),
                verdict="kill",
                outcome=outcome,
                reason=reason,
            )
        )

    # ------------------------------------------------------------------ arming

    def _entity(self, value: object) -> tuple[int, str] | None:
        """(tgid, entity key) of a join-key value naming a live process (None: gone or not a process)."""
        if isinstance(value, str) and "-" in value:
            tgid_text, _, start_text = value.partition("-")
            if not (tgid_text.isdigit() and start_text.isdigit()):
                return None
            tgid, start = int(tgid_text), int(start_text)
            return (tgid, value) if self._alive(tgid, start) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return (value, str(value)) if self._alive(value, None) else None
        return None

    def _arm_skipped(self, sig: ArmSignal, hook: str, reason: str) -> None:
        self._audit(
            Decision(
                Kind.ARM, rule_id=sig.rule.id, hook=hook, verdict="arm", outcome="skipped", reason=reason
            )
        )

    def _on_arm_signal(self, sig: ArmSignal) -> None:
        plan = self.plans[sig.rule.id]
        arm = plan.arm
        if arm is None:  # pragma: no cover - the engine reports only armed rules
            return
        slot = (sig.rule.id, tuple(sig.join_keys))
        if sig.kind == "disarm":
            held = self._armed.pop(slot, None)
            if held is not None:
                v = held.verdict
                self.backend.disarm(v.group, v.hook, dev=v.dev, ino=v.ino)
                self._audit(
                    Decision(
                        Kind.DISARM,
                        rule_id=sig.rule.id,
                        hook=HOOKS[v.hook].value,
                        verdict="disarm",
                        outcome="disarmed",
                        reason="the sequence can no longer complete (until, or a budget eviction)",
                        detail={"entity": held.entity, "group": v.group},
                    )
                )
            return
        entity = self._entity(sig.join_keys[arm.entity_key])
        hook_name = HOOKS[arm.hook].value
        if entity is None:
            value = sig.join_keys[arm.entity_key]
            self._arm_skipped(sig, hook_name, f"the entity {value!r} is no longer running: nothing to arm")
            return
        tgid, key = entity
        dev = ino = 0
        target = ""
        if arm.target_key is not None:
            target = str(sig.join_keys[arm.target_key])
            identity = _identity_seen(sig.events, target) or self._exe_identity(target)
            if identity is None:
                self._arm_skipped(
                    sig, hook_name, f"the target {target!r} cannot be resolved (it no longer exists)"
                )
                return
            dev, ino = identity
        group = self._groups.get(key)
        if group is None or self.backend.group_of(tgid) != group:
            group = self._next_group
            self._next_group += 1
            self._groups[key] = group
            self.backend.track(tgid, group)
        expires = 0
        if sig.maxspan_ms is not None:
            expires = int((sig.first_ms + sig.maxspan_ms) * 1_000_000) - self.offset_ns
        verdict = DynamicVerdict(
            group, arm.hook, self.compiled.number(sig.rule.id), Action.DENY, expires, dev, ino
        )
        self.backend.arm(verdict)
        now = time.monotonic_ns()
        last = sig.events[-1] if sig.events else {}
        latency = now - (_event_ns(last) - self.offset_ns) if last else 0
        self.arm_latencies_ns.append(latency)
        self._armed[slot] = ArmRecord(sig.rule.id, key, verdict, latency)
        self.counts["arm"] += 1
        self._audit(
            Decision(
                Kind.ARM,
                rule_id=sig.rule.id,
                hook=hook_name,
                process=ProcessIdentity(pid=tgid, entity_id=key),
                verdict="arm",
                outcome="armed",
                reason=f"every step but the last matched: {hook_name} of "
                f"{target or 'any target'} denied for entity {key} and its descendants",
                detail={
                    "group": group,
                    "target": target,
                    "device": dev,
                    "inode": ino,
                    "expires_monotonic_ns": expires,
                    "latency_ns": latency,
                },
            )
        )

    # ------------------------------------------------------------------ modes

    def effective_mode(self, rule_id: str) -> Mode:
        """Return the mode a rule runs in: its override, else the agent's (off when the agent is off)."""
        if self.mode is Mode.OFF:
            return Mode.OFF
        return self.rule_modes.get(rule_id, self.mode)

    def _write_modes(self) -> None:
        self.backend.configure({hook: _MODE_IDS[self.mode] for hook in HookId}, agent_tgid=self.tgid)
        numbers = {self.compiled.number(rule): _MODE_IDS[mode] for rule, mode in self.rule_modes.items()}
        self.backend.set_rule_modes(numbers)

    def set_mode(
        self,
        mode: Mode,
        *,
        rule: str | None = None,
        uid: int | None = None,
        reason: str = "",
        confirm_within: float | None = None,
    ) -> dict[str, JsonValue]:
        """Switch the agent's (or one rule's) mode; with ``confirm_within``, revert unless confirmed."""
        with self._lock:
            if rule is not None and rule not in self.plans:
                raise ConfigError(f"--rule {rule}: no such rule in the active policy")
            if confirm_within is not None and confirm_within <= 0:
                raise ConfigError(f"--confirm-within: must be positive, got {confirm_within}")
            previous = (self.mode, dict(self.rule_modes))
            before = self.mode if rule is None else self.effective_mode(rule)
            if rule is None:
                self.mode = mode
            else:
                self.rule_modes[rule] = mode
            try:
                self._write_modes()
            except KernelError:
                self.mode, self.rule_modes = previous[0], previous[1]
                raise
            if confirm_within is not None:
                self._confirm = _Confirm(self._monotonic() + confirm_within, previous, uid, reason)
            self._audit_mode(before, mode, rule, uid, reason, confirm_within=confirm_within)
            return self.status()

    def confirm(self, *, uid: int | None = None, reason: str = "") -> dict[str, JsonValue]:
        """Keep the modes a ``--confirm-within`` switch set."""
        with self._lock:
            if self._confirm is None:
                raise ConfigError("confirm: no mode change is waiting for confirmation")
            self._confirm = None
            self._audit(
                Decision(
                    Kind.MODE_CHANGE,
                    verdict=str(self.mode),
                    outcome="confirmed",
                    reason=reason or "the pending mode change was confirmed",
                    detail={"uid": uid, "mode": str(self.mode)},
                )
            )
            return self.status()

    def _audit_mode(
        self,
        before: Mode,
        after: Mode,
        rule: str | None,
        uid: int | None,
        reason: str,
        *,
        confirm_within: float | None = None,
        outcome: str = "changed",
    ) -> None:
        detail: dict[str, JsonValue] = {"from": str(before), "to": str(after), "uid": uid}
        if confirm_within is not None:
            detail["confirm_within_s"] = confirm_within
        self._audit(
            Decision(
                Kind.MODE_CHANGE,
                rule_id=rule,
                verdict=str(after),
                outcome=outcome,
                reason=reason or f"mode {before} -> {after}",
                detail=detail,
            )
        )

    def _storm_tick(self, rule: str) -> None:
        if self.effective_mode(rule) is not Mode.ENFORCE:
            return
        now = self._monotonic()
        window = self._storm.setdefault(rule, collections.deque())
        window.append(now)
        while window and window[0] < now - self.settings.storm_window_s:
            window.popleft()
        if len(window) > self.settings.storm_threshold:
            window.clear()
            self.rule_modes[rule] = Mode.DETECT
            self._write_modes()
            self._audit_mode(
                Mode.ENFORCE,
                Mode.DETECT,
                rule,
                None,
                f"block storm: more than {self.settings.storm_threshold} denials within "
                f"{self.settings.storm_window_s:g} s; the rule is demoted to detect",
                outcome="demoted",
            )

    def _timers(self) -> None:
        now = self._monotonic()
        pending = self._confirm
        if pending is not None and now >= pending.deadline:
            self._confirm = None
            before = self.mode
            self.mode, self.rule_modes = pending.previous[0], dict(pending.previous[1])
            self._write_modes()
            self._audit_mode(
                before,
                self.mode,
                None,
                pending.uid,
                "not confirmed in time: the previous modes are restored",
                outcome="reverted",
            )
        if now >= self._next_refresh:
            self._refresh_targets()

    # ------------------------------------------------------------------ protected processes

    def _refresh_targets(self, *, force: bool = False) -> None:
        """Resolve protected names to pids and exempt executables to inodes; rewrite what changed.

        Both drift: processes start and exit, a package upgrade replaces a binary (a new inode).
        """
        self._next_refresh = self._monotonic() + self.settings.target_refresh_s
        exempt = set()
        for number, path in self.compiled.exemptions:
            identity = self._exe_identity(path)
            if identity is not None:
                exempt.add((number, *identity))
        targets: dict[int, tuple[int, Action]] = {}
        if self.settings.self_protect:
            targets[self.tgid] = (SELF_RULE, Action.DENY)
        selectors = self.compiled.targets
        if selectors:
            for pid, name, exe in self._list_processes():
                for sel in selectors:
                    if sel.selects(name, exe) and pid not in targets:
                        targets[pid] = (sel.rule_number, sel.action)
        if not force and targets == self._ptrace_targets and exempt == self._exempt:
            return
        self._ptrace_targets = targets
        self._exempt = exempt
        tables = dataclasses.replace(self._static, ptrace=dict(self._static.ptrace), exemptions=exempt)
        for tgid, (number, action) in targets.items():
            tables.ptrace.setdefault(tgid, VerdictValue()).add(HookId.PTRACE, number, action)
        self.backend.apply(tables)

    def refresh_targets(self) -> None:
        """Resolve protected process names to pids now."""
        with self._lock:
            self._refresh_targets()

    def protected_pids(self) -> dict[int, str]:
        """Return the processes ptrace protects now, with the rule protecting each."""
        return {tgid: self.rule_ids.get(n, f"#{n}") for tgid, (n, _) in self._ptrace_targets.items()}

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, JsonValue]:
        """Mode, backend, rules by enforcement path, counters, armed verdicts, recent decisions."""
        with self._lock:
            grouped: dict[str, list[JsonValue]] = {}
            for p in self.compiled.plans:
                grouped.setdefault(p.path, []).append(p.rule.id)
            by_path: dict[str, JsonValue] = dict(grouped)
            counters: dict[str, JsonValue] = {}
            for hook in HookId:
                try:
                    values = self.backend.counters(hook)
                except KernelError:
                    continue
                counters[HOOKS[hook].value] = {c.name.lower(): v for c, v in values.items()}
            pending = self._confirm
            return {
                "pid": self.tgid,
                "backend": str(self.backend.name),
                "mode": str(self.mode),
                "rule_modes": {r: str(m) for r, m in sorted(self.rule_modes.items())},
                "rules": by_path,
                "counters": counters,
                "decisions": dict(self.counts),
                "armed": [
                    {"rule": a.rule, "entity": a.entity, "group": a.verdict.group, "inode": a.verdict.ino}
                    for a in self._armed.values()
                ],
                "protected_pids": {str(k): v for k, v in self.protected_pids().items()},
                "confirm_pending_s": round(pending.deadline - self._monotonic(), 3) if pending else None,
                "recent": list(self.recent),
                #: wasm / lua predicates: runtime, rules, batches, events, escapes, traps by kind
                "predicates": self.engine.predicate_stats(),  # type: ignore[dict-item]
            }

    def _audit(self, decision: Decision) -> None:
        self.audit.append(decision)


def _event_ns(doc: Mapping[str, Any]) -> int:
    """Return an ECS document's @timestamp as epoch nanoseconds (0 when absent)."""
    ts = doc.get("@timestamp")
    if ts is None:
        return 0
    return int(timestamp_ms(ts) * 1_000_000)


def _what(doc: Mapping[str, Any]) -> str:
    """One line naming an event's object: the file, the destination or the ptrace target."""
    file = doc.get("file") or {}
    if isinstance(file, dict) and file.get("path"):
        return str(file["path"])
    dest = doc.get("destination") or {}
    if isinstance(dest, dict) and dest.get("ip"):
        return f"{dest['ip']}:{dest.get('port', 0)}"
    target = doc.get("target") or {}
    if isinstance(target, dict):
        pid = (target.get("process") or {}).get("pid")
        if pid:
            return f"pid {pid}"
    return ""
