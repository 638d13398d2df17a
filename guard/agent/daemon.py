"""The agent: a compiled policy enforced through a data plane, with every decision audited.

One :class:`Agent` composes a loaded :class:`~guard.lsm.backend.KernelBackend`, the streaming
:class:`~guard.policy.engine.Engine` (for the rules the kernel cannot decide alone), the audit
trail, a process cache and the actions of :mod:`guard.actions` (modes, arming, protection, kill,
alert lines). :meth:`Agent.step` is one turn of the loop:

1. read the rings (decisions first, then telemetry), turn each record into an ECS document and
   enrich it;
2. a kernel decision (deny, would-block, kill) becomes an audit record and an alert at once; a
   ``kill`` rule's process is killed; the block-storm counter of its rule advances; at most once a
   second (``drops_interval_s``, and at stop) the decisions the decision ring had no room for are
   audited as counts (:mod:`guard.actions.drops`);
3. the engine runs over the batch: alerts are written (a ``kill`` rule's process killed under
   enforce), and a sequence rule whose every step but the last has matched is **armed**: a
   dynamic verdict denies the last step in the kernel for that entity and its descendants until
   maxspan (an ``until`` or a budget eviction disarms it);
4. timers: a ``--confirm-within`` deadline that passed reverts the modes, protected process names
   are re-resolved to pids, budget overflows are audited.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psutil

from guard.actions.alerts import AlertSink, AlertWriter, describe, engine_outcome
from guard.actions.arming import Arming
from guard.actions.decisions import budget_decision, kernel_decision, with_process
from guard.actions.drops import DropReporter
from guard.actions.kill import alert_kill_target, kill_process, kills_on_deny
from guard.actions.modes import Modes
from guard.actions.protection import SELF_RULE, SELF_RULE_ID, Protection
from guard.agent.host import host_fields
from guard.agent.processes import ProcessCache, same_process
from guard.audit.record import Decision, JsonValue, Kind
from guard.audit.sink import AuditSink
from guard.config import DEFAULT_ENV_VARS
from guard.errors import ConfigError, GuardError, KernelError
from guard.lsm import abi
from guard.lsm.backend import KernelBackend
from guard.lsm.catalog import DNS_CAPTURE, MODIFY_CAPTURE, SYSCALL_CAPTURE
from guard.lsm.events import boot_offset_ns, record_to_ecs
from guard.lsm.identity import file_identity
from guard.lsm.ring import in_order
from guard.model import HOOKS, EventKind, Hook, Mode, Telemetry
from guard.plan.compiler import CompiledPolicy, RulePlan, for_plane
from guard.plan.coverage import matchable_kinds, reads_field
from guard.policy.engine import Budgets, Engine
from guard.policy.predicates.abi import Budget
from guard.policy.semantics import Event

__all__ = ["Agent", "AgentSettings"]

_RECENT: Final = 50


def _unseen(backend: KernelBackend) -> frozenset[EventKind]:
    """Return the event kinds a plane never reports (the compat plane has no chmod event)."""
    return frozenset() if getattr(backend, "chmod_events", True) else frozenset({Telemetry.CHMOD})


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """How the agent runs (the CLI fills it from config and flags)."""

    #: the initial mode; None: the modes a previous agent left in the pinned maps (adopted), else enforce
    mode: Mode | None = Mode.ENFORCE
    scope_cgroups: tuple[int, ...] = ()
    scope_pids: tuple[int, ...] = ()
    all_tasks: bool = False  # govern every task but the agent (the scope lists are then unused)
    #: denials by one rule within storm_window_s demote it to detect (0: never; see Modes.storm_tick)
    storm_threshold: int = 0
    storm_window_s: float = 10.0
    storm_confirm_s: float = 300.0  # storms count only this long after a start, swap or switch to enforce
    target_refresh_s: float = 1.0
    batch: int = 512
    budgets: Budgets = dataclasses.field(default_factory=Budgets)
    #: what a wasm / lua predicate may spend per batch
    runtime_budget: Budget = dataclasses.field(default_factory=Budget)
    self_protect: bool = True
    #: where the decision drops already audited are kept (beside the trail); None: in memory only
    drops_state: Path | None = None
    #: the decision-drop table is read at most this often (and at stop)
    drops_interval_s: float = 1.0
    #: environment variables exec events carry (``process.env_vars``); empty: none is read
    env_vars: frozenset[str] = frozenset(DEFAULT_ENV_VARS)

    def __post_init__(self) -> None:
        if self.drops_interval_s < 0:
            raise ConfigError(f"drops interval: must be 0 or more, got {self.drops_interval_s}")
        if self.storm_threshold < 0:
            raise ConfigError(f"storm threshold: must be 0 (off) or more, got {self.storm_threshold}")
        if self.storm_window_s <= 0 or self.storm_confirm_s <= 0:
            raise ConfigError(
                f"storm window: must be positive, got {self.storm_window_s} and {self.storm_confirm_s}"
            )


def _alive(tgid: int, start_ns: int | None) -> bool:
    """Return whether ``tgid`` is live (given its start time: the same process, no pid reuse)."""
    if start_ns is None:
        return bool(psutil.pid_exists(tgid))
    return same_process(tgid, start_ns)


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
        alerts: AlertSink | None = None,
        processes: ProcessCache | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        alive: Callable[[int, int | None], bool] = _alive,
        exe_identity: Callable[[str], tuple[int, int] | None] = file_identity,
        list_processes: Callable[[], Iterable[tuple[int, str, str]]] = _list_processes,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.backend = backend
        self.compiled = compiled  # (start() fits it to the loaded plane: for_plane)
        self.audit = audit
        self.settings = settings or AgentSettings()
        self.alerts = AlertWriter(alerts)
        self.processes = processes or ProcessCache()
        self._monotonic = monotonic
        self.engine = self._engine(compiled)
        self.rule_ids: dict[int, str] = {**compiled.rule_ids, SELF_RULE: SELF_RULE_ID}
        self.plans: dict[str, RulePlan] = {p.rule.id: p for p in compiled.plans}
        self.offset_ns = boot_offset_ns()
        self.tgid = os.getpid()
        self.modes = Modes(
            backend, audit, compiled,
            mode=self.settings.mode or Mode.ENFORCE, agent_tgid=self.tgid, monotonic=monotonic,
            storm_threshold=self.settings.storm_threshold, storm_window_s=self.settings.storm_window_s,
            storm_confirm_s=self.settings.storm_confirm_s,
        )  # fmt: skip
        self.arming = Arming(backend, audit, offset_ns=self.offset_ns, alive=alive, exe_identity=exe_identity)
        self.protection = Protection(
            backend, compiled,
            agent_tgid=self.tgid, self_protect=self.settings.self_protect,
            refresh_s=self.settings.target_refresh_s, monotonic=monotonic,
            exe_identity=exe_identity, list_processes=list_processes,
        )  # fmt: skip
        self._wall_clock = wall_clock
        self.drops = DropReporter(
            backend, audit, state_path=self.settings.drops_state, interval_s=self.settings.drops_interval_s,
            clock=wall_clock, monotonic=monotonic,
        )  # fmt: skip
        self._lock = threading.RLock()
        self.recent: collections.deque[dict[str, JsonValue]] = collections.deque(maxlen=_RECENT)
        self.counts = collections.Counter[str]()
        self.started = False
        #: whether the kernel reports forks, execs and exits (see _process_events)
        self.process_events = False
        #: host.* of every event and alert
        self.host: dict[str, Any] = host_fields()
        self.turns = 0
        self.events_seen = 0
        self._turned = threading.Condition()

    @property
    def mode(self) -> Mode:
        """Return the agent's mode (every hook's)."""
        return self.modes.mode

    @property
    def rule_modes(self) -> dict[str, Mode]:
        """Return the per-rule mode overrides."""
        return self.modes.rules

    @property
    def arm_latencies_ns(self) -> list[int]:
        """Return, per arm, the time from the arming event entering the ring buffer to the map write."""
        return self.arming.latencies_ns

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the data plane, configure modes and scope, write the tables; audit the start."""
        loaded_ns = self._wall_clock()
        self.processes.seed()  # before the plane: a process that exits meanwhile is still known
        self.backend.load()
        fitted = for_plane(self.compiled, _unseen(self.backend))  # what it reports is known now
        if fitted is not self.compiled:  # nothing listed or armed that cannot arm on this plane
            self.compiled = fitted
            self.engine = self._engine(fitted)
        self.drops.start(loaded_ns=loaded_ns)
        adopted = ""
        if self.settings.mode is None and getattr(self.backend, "adopted", False):
            adopted = self.modes.adopt()
        try:
            self.backend.set_scope(
                cgroups=self.settings.scope_cgroups,
                pids=self.settings.scope_pids,
                all_tasks=self.settings.all_tasks,
            )
            self.protection.refresh(force=True)
            self.modes.write()
            self._process_events(compiled=self.compiled)
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
        with self._lock:
            self._report_drops()  # what the last turn left (not yet due): the trail ends complete
        self.started = False
        self._audit(Decision(Kind.AGENT_STOP, reason=f"agent {reason}", detail={"pid": self.tgid}))
        self.backend.close()

    def run(self, stop: threading.Event, *, timeout_ms: int = 100) -> None:
        """Loop :meth:`step` until ``stop`` is set."""
        while not stop.is_set():
            self.step(timeout_ms=timeout_ms)

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
        compiled = for_plane(compiled, _unseen(self.backend))
        with self._lock:
            engine = self._engine(compiled)  # first: a policy the engine refuses changes nothing
            modes = self.modes.begin_swap(compiled)
            old = self.compiled
            self.compiled = compiled
            self.protection.use(compiled)
            try:
                self.protection.refresh(force=True)
            except GuardError:
                self.compiled = old
                self.protection.use(old)
                self.modes.abort_swap(modes)
                raise
            self.modes.commit_swap(compiled, modes)
            self.plans = {p.rule.id: p for p in compiled.plans}
            self.rule_ids.update(compiled.rule_ids)  # events of old rules still in flight keep their names
            self.engine = engine
            self._process_events(compiled=compiled)
            self.arming.drop_rules_not_in(compiled.armed)
            return {"rules": len(compiled.plans), "ruleset": self.engine.ruleset_hash}

    def _process_events(self, *, compiled: CompiledPolicy) -> None:
        """Ask for the kernel's process records (fork, exec, exit) while some rule runs in the engine.

        Rules the kernel decides alone need no events; the engine's rules read ``process.*`` and
        ``process.parent.*`` on every event, which the process table fills from these records.
        The other captures (syscall-exit changes, modifications, DNS; the environment) only when
        some engine rule could match one of their kinds (reads ``process.env_vars``).
        """
        rules = compiled.engine_rules
        kinds = matchable_kinds(rules)
        self.process_events = bool(rules)
        self.backend.set_process_events(
            self.process_events,
            env_vars=bool(self.settings.env_vars) and reads_field(rules, "process.env_vars"),
            syscalls=bool(kinds & SYSCALL_CAPTURE),
            modify=bool(kinds & MODIFY_CAPTURE),
            dns=bool(kinds & DNS_CAPTURE),
        )

    # ------------------------------------------------------------------ one turn

    def step(self, *, timeout_ms: int = 100) -> int:
        """Read one batch of events and act on it; return how many events it held."""
        records = in_order(self.backend.poll_events(timeout_ms), self.backend.process_records())
        with self._lock:
            self.events_seen += len(records)
            docs: list[Event] = []
            for record in records:
                doc = record_to_ecs(record, boot_offset_ns=self.offset_ns, env_vars=self.settings.env_vars)
                self.processes.enrich(doc)
                doc["host"] = self.host
                if not isinstance(record, abi.Event):
                    docs.append(doc)  # a fork, exec or end: what the engine's process rules see
                    continue
                self._kernel_decision(record, doc)
                if not (self.process_events and record.hook == Hook.BPRM_CHECK_SECURITY.abi):
                    docs.append(doc)  # with process records, an exec reaches the engine once, with argv
            if self.drops.due():
                self._report_drops()
            if docs:
                for alert in self.engine.process(docs):
                    self._engine_alert(alert.rule.id, [e for e in alert.events if e is not None])
            for sig in self.engine.take_arm_signals():
                arm = self.plans[sig.rule.id].arm
                if arm is not None and self.arming.on_signal(sig, arm, self.compiled.number):
                    self.counts["arm"] += 1
            for budget in self.engine.budget_events():
                self._audit(budget_decision(budget))
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
        decision = with_process(decision, doc)
        self._audit(decision)
        self.counts[decision.kind.value] += 1
        self.recent.append(
            {
                "ts": decision.ts,
                "event": decision.kind.value,
                "rule": decision.rule_id,
                "hook": decision.hook,
                "pid": record.tgid,
                "what": describe(doc),
            }
        )
        if decision.kind is Kind.UNJUDGED:
            return  # recorded and counted; no rule decided it, so no alert
        rule = decision.rule_id or ""
        plan = self.plans.get(rule)
        self.alerts.write(rule, [doc], decision.outcome or "", plan=plan, ruleset=self.engine.ruleset_hash)
        if kills_on_deny(plan, decision.kind):
            self._audit(kill_process(record.tgid, rule, decision.hook, doc))
        if decision.kind in (Kind.DENY, Kind.KILL) and rule in self.plans:
            self.modes.storm_tick(rule)

    def _report_drops(self) -> None:
        """Audit what the decision-drop table gained (one record per key, then a signed checkpoint)."""
        written = self.drops.report(self.rule_ids, backend=str(self.backend.name))
        if written:
            self.counts[Kind.DECISIONS_NOT_RECORDED.value] += written

    def _engine_alert(self, rule_id: str, events: Sequence[Event]) -> None:
        plan = self.plans[rule_id]
        last = events[-1] if events else {}
        self.counts["alert"] += 1
        self.alerts.write(rule_id, events, engine_outcome(last), plan=plan, ruleset=self.engine.ruleset_hash)
        pid = alert_kill_target(plan, self.effective_mode(rule_id), last)
        if pid is not None:
            self._audit(kill_process(pid, rule_id, None, last))

    def _timers(self) -> None:
        now = self._monotonic()
        self.modes.expire(now)
        if self.protection.due(now):
            self.protection.refresh()

    # ------------------------------------------------------------------ modes

    def effective_mode(self, rule_id: str) -> Mode:
        """Return the mode a rule runs in: its override, else the agent's (off when the agent is off)."""
        return self.modes.effective(rule_id)

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
            self.modes.set(mode, rule=rule, uid=uid, reason=reason, confirm_within=confirm_within)
            return self.status()

    def confirm(self, *, uid: int | None = None, reason: str = "") -> dict[str, JsonValue]:
        """Keep the modes a ``--confirm-within`` switch set."""
        with self._lock:
            self.modes.confirm(uid=uid, reason=reason)
            return self.status()

    # ------------------------------------------------------------------ protected processes

    def refresh_targets(self) -> None:
        """Resolve protected process names to pids now."""
        with self._lock:
            self.protection.refresh()

    def protected_pids(self) -> dict[int, str]:
        """Return the processes ptrace protects now, with the rule protecting each."""
        return {tgid: self.rule_ids.get(n, f"#{n}") for tgid, (n, _) in self.protection.targets.items()}

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, JsonValue]:
        """Mode, backend, rules by enforcement path, counters, armed verdicts, recent decisions."""
        with self._lock:
            grouped: dict[str, list[JsonValue]] = {}
            for p in self.compiled.plans:
                grouped.setdefault(p.path, []).append(p.rule.id)
            by_path: dict[str, JsonValue] = dict(grouped)
            counters: dict[str, JsonValue] = {}
            for hook in HOOKS:
                try:
                    values = self.backend.counters(hook)
                except KernelError:
                    continue
                counters[hook.value] = {c.name.lower(): v for c, v in values.items()}
            try:
                plane: dict[str, JsonValue] = dict(self.backend.plane_counters())
            except KernelError:
                plane = {}
            return {
                "pid": self.tgid,
                "backend": str(self.backend.name),
                "mode": str(self.mode),
                "rule_modes": {r: str(m) for r, m in sorted(self.rule_modes.items())},
                "rules": by_path,
                "counters": counters,
                #: the plane's own counters: ``ring_bad_size`` (ring records of the wrong size)
                "plane": plane,
                "decisions": dict(self.counts),
                #: decisions the decision ring had no room for, audited as counts (this drop table)
                "decisions_not_recorded": self.drops.status(self.rule_ids),
                "armed": [
                    {"rule": a.rule, "entity": a.entity, "group": a.verdict.group, "inode": a.verdict.ino}
                    for a in self.arming.armed.values()
                ],
                "protected_pids": {str(k): v for k, v in self.protected_pids().items()},
                "confirm_pending_s": self.modes.pending_s(),
                "recent": list(self.recent),
                #: wasm / lua predicates: runtime, rules, batches, events, escapes, traps by kind
                "predicates": self.engine.predicate_stats(),  # type: ignore[dict-item]
            }

    def _audit(self, decision: Decision) -> None:
        self.audit.append(decision)
