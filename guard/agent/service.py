"""The agent as a service: ``guardctl agent run``, and the operator commands that talk to it.

``run_agent`` composes everything from the configuration: the backend the probe chooses (or the
one asked for), the policy (compiled), the audit trail (``[audit]``; a missing key pair is created
on first start), the alerts file, the control socket ``<run_dir>/control.sock`` and the state file
``<run_dir>/state.json`` (pid, backend, pinned layout, rule numbers). Before anything else it
writes ``<run_dir>/agent.pid`` (its pid and start time) and refuses to start while another live
agent holds it. SIGTERM and SIGINT stop it cleanly (everything detached, an ``agent_stop`` record,
the pid file removed).

``change_mode`` / ``confirm`` / ``status`` ask the running agent through the socket. Whether an
agent runs is decided by the pid file (that pid alive with that start time), never by whether the
socket answers: a running agent that does not answer in time is an :class:`AgentUnavailableError`
and ``guardctl`` changes nothing itself. Only when no agent runs (and nothing listens) is a mode
switch one write to the pinned maps the last agent left (:func:`~guard.actions.modes.switch_pinned`),
audited by ``guardctl`` itself; confirm-within needs a running agent (its timer), so it is refused
then. ``deploy_bundle`` / ``rollback_bundle`` ask the running agent too; with none,
:mod:`guard.bundles.deploy` updates the store for its next start.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import structlog

from guard.actions.alerts import AlertFile
from guard.actions.modes import switch_pinned
from guard.agent.control import ControlServer, Peer, request
from guard.agent.daemon import Agent, AgentSettings
from guard.agent.processes import proc_start_ticks
from guard.audit.chain import AuditWriter
from guard.bundles.deploy import deploy, initial_policy, rollback
from guard.config import GuardConfig
from guard.errors import AgentUnavailableError, ConfigError, GuardError, PrivilegeError
from guard.lsm.backend import KernelBackend
from guard.model import Mode
from guard.plan.compiler import CompiledPolicy
from guard.policy.engine import Budgets
from guard.policy.predicates.abi import Budget
from guard.signing import generate_keypair, load_signer

__all__ = [
    "change_mode",
    "confirm",
    "deploy_bundle",
    "drops_state_path",
    "make_backend",
    "pid_path",
    "rollback_bundle",
    "run_agent",
    "running_agent",
    "socket_path",
    "status",
]

log = structlog.get_logger(__name__)

#: how long ``guardctl`` waits for the agent's answer (a deploy verifies and swaps a bundle first)
ASK_TIMEOUT_S: Final = 10.0
DEPLOY_TIMEOUT_S: Final = 60.0


def socket_path(cfg: GuardConfig) -> Path:
    """Return the control socket's path."""
    return Path(cfg.agent.run_dir) / "control.sock"


def state_path(cfg: GuardConfig) -> Path:
    """Return the state file the running agent writes (and leaves for mode switches without it)."""
    return Path(cfg.agent.run_dir) / "state.json"


def drops_state_path(cfg: GuardConfig) -> Path:
    """Return the file beside the audit trail holding the decision drops already in it (per drop table)."""
    trail = Path(cfg.audit.path)
    return trail.with_name(f"{trail.stem}.decision-drops.json")


def pid_path(cfg: GuardConfig) -> Path:
    """Return the file naming the running agent (pid and start time), kept while it runs."""
    return Path(cfg.agent.run_dir) / "agent.pid"


def running_agent(cfg: GuardConfig) -> int | None:
    """Return the pid of the running agent: the pid file's pid, alive with the start time it names."""
    try:
        record = json.loads(pid_path(cfg).read_text())
        pid, start = int(record["pid"]), int(record["start_ticks"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return pid if pid > 0 and proc_start_ticks(pid) == start else None


def _claim_run_dir(cfg: GuardConfig) -> Path:
    """Write the pid file (refused while another live agent holds it); return its path."""
    other = running_agent(cfg)
    if other is not None and other != os.getpid():
        raise ConfigError(f"agent run: an agent already runs (pid {other}, {pid_path(cfg)})")
    path = pid_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "start_ticks": proc_start_ticks(os.getpid())}))
    tmp.chmod(0o644)  # every local user's guardctl must see that an agent runs
    os.replace(tmp, path)
    return path


def _release_run_dir(path: Path) -> None:
    """Remove the pid file if it still names this process."""
    try:
        if int(json.loads(path.read_text())["pid"]) == os.getpid():
            path.unlink()
    except (OSError, ValueError, TypeError, KeyError):
        pass


def make_backend(name: str, cfg: GuardConfig, cache_dir: Path, *, pin: bool = True) -> KernelBackend:
    """Return the backend ``name`` (``auto``: the probe's choice), not yet loaded."""
    from guard.lsm.bcc_backend import CompatBackend, LsmBackend
    from guard.lsm.btf import Btf
    from guard.lsm.fake import FakeBackend
    from guard.lsm.probe import probe_kernel

    if name == "auto":
        name = probe_kernel().backend.value
    if name == "fake":
        return FakeBackend()
    pin_dir = Path(cfg.agent.pin_dir) if pin else None
    pages = cfg.limits.ring_buffer_pages
    decisions, procs = cfg.limits.decision_ring_buffer_pages, cfg.limits.process_ring_buffer_pages
    planes: dict[str, type[LsmBackend] | type[CompatBackend]] = {"lsm": LsmBackend, "compat": CompatBackend}
    plane = planes.get(name)
    if plane is not None:
        return plane(
            Btf.from_file(), cache_dir, pin_dir=pin_dir,
            ringbuf_pages=pages, decision_ringbuf_pages=decisions, proc_ringbuf_pages=procs,
        )  # fmt: skip
    raise ConfigError(f"backend {name!r}: expected auto, lsm, compat or fake")


def open_audit(cfg: GuardConfig) -> AuditWriter:
    """Open the configured audit trail; a missing signing key pair is created (0600) on first use."""
    key = Path(cfg.audit.key_path)
    if not key.exists():
        generate_keypair(key.parent, key.stem)
        log.info("audit signing key created", key=str(key), public=str(key.with_suffix(".pub")))
    writer = AuditWriter(
        Path(cfg.audit.path),
        load_signer(key),
        checkpoint_every=cfg.audit.checkpoint_every,
        checkpoint_seconds=cfg.audit.checkpoint_seconds,
        rotate_bytes=cfg.audit.rotate_bytes,
        fsync=cfg.audit.fsync,
    )
    writer.open()
    return writer


def _handler(cfg: GuardConfig, agent: Agent) -> Any:
    def handle(req: Mapping[str, Any], peer: Peer) -> Mapping[str, Any]:
        op = req["op"]
        reason = str(req.get("reason") or "")
        if op == "ping":
            return {"pid": agent.tgid}
        if op == "status":
            return agent.status()
        if op == "mode":
            try:
                mode = Mode(str(req.get("mode")))
            except ValueError:
                raise ConfigError(f"mode {req.get('mode')!r}: expected off, detect or enforce") from None
            within = req.get("confirm_within")
            return agent.set_mode(
                mode,
                rule=req.get("rule"),
                uid=peer.uid,
                reason=reason,
                confirm_within=float(within) if within is not None else None,
            )
        if op == "confirm":
            return agent.confirm(uid=peer.uid, reason=reason)
        if op == "deploy":
            return deploy(cfg, agent, agent.audit, Path(str(req.get("path"))), uid=peer.uid, reason=reason)
        if op == "rollback":
            to = req.get("to")
            return rollback(
                cfg, agent, agent.audit, int(to) if to is not None else None, uid=peer.uid, reason=reason
            )
        raise ConfigError(f"unknown operation {op!r}")

    return handle


def runtime_budget(cfg: GuardConfig) -> Budget:
    """Return the wasm / lua predicate budget the configuration sets (``[limits] predicate_*``)."""
    return Budget(
        per_event=cfg.limits.predicate_fuel_per_event,
        memory_bytes=cfg.limits.predicate_memory_mb * 1024 * 1024,
    )


def run_agent(
    cfg: GuardConfig,
    *,
    policy: Path | None,
    bundle: Path | None = None,
    backend: str,
    mode: Mode | None,
    cgroups: list[Path],
    pids: list[int],
    cache_dir: Path,
    all_tasks: bool = False,
    alerts: Path | None,
    stop: threading.Event | None = None,
) -> int:
    """Run the agent until SIGTERM/SIGINT (or ``stop``); return the exit status."""
    if os.geteuid() != 0:
        raise PrivilegeError("agent run: needs root (it loads BPF programs)")
    if not cgroups and not pids and not all_tasks:
        raise ConfigError(
            "agent run: give the scope to govern: --all, or --cgroup PATH / --pid N (repeatable)"
        )
    scope = []
    for cg in cgroups:
        try:
            scope.append(os.stat(cg).st_ino)
        except OSError as exc:
            raise ConfigError(f"--cgroup {cg}: {exc.strerror}") from None
    settings = AgentSettings(
        mode=mode,
        scope_cgroups=tuple(scope),
        scope_pids=tuple(pids),
        all_tasks=all_tasks,
        storm_threshold=cfg.agent.storm_threshold,
        storm_window_s=cfg.agent.storm_window_s,
        storm_confirm_s=cfg.agent.storm_confirm_s,
        batch=cfg.limits.batch_size,
        budgets=Budgets(
            max_pending_per_rule=cfg.limits.max_pending_per_rule,
            max_pending_per_entity=cfg.limits.max_pending_per_entity,
        ),
        runtime_budget=runtime_budget(cfg),
        drops_state=drops_state_path(cfg),
        env_vars=frozenset(cfg.events.env_vars),
    )
    claimed = _claim_run_dir(cfg)  # from here on guardctl knows an agent runs, answering or not
    try:
        return _run_claimed(
            cfg, settings, policy=policy, bundle=bundle, backend=backend, cache_dir=cache_dir,
            alerts=alerts, stop=stop or threading.Event(),
        )  # fmt: skip
    finally:
        _release_run_dir(claimed)


def _run_claimed(
    cfg: GuardConfig,
    settings: AgentSettings,
    *,
    policy: Path | None,
    bundle: Path | None,
    backend: str,
    cache_dir: Path,
    alerts: Path | None,
    stop: threading.Event,
) -> int:
    """Open the trail, load the policy and serve until ``stop`` (the pid file is already written)."""
    audit = open_audit(cfg)
    try:
        compiled, digest = initial_policy(cfg, audit, policy, bundle)
    except BaseException:
        audit.close()
        raise
    a = cfg.agent
    try:
        alerts_file = (
            AlertFile(alerts, rotate_bytes=a.alerts_rotate_bytes, keep=a.alerts_keep, group=a.control_group)
            if alerts
            else None
        )
    except OSError as exc:
        audit.close()
        raise ConfigError(f"{alerts}: cannot open the alerts file: {exc.strerror}") from exc
    agent = Agent(compiled, make_backend(backend, cfg, cache_dir), audit, settings, alerts=alerts_file)
    server = ControlServer(socket_path(cfg), _handler(cfg, agent), control_group=cfg.agent.control_group)
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    if alerts_file is not None:  # SIGHUP: reopen the alerts file (after an outside rotation)
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: alerts_file.request_reopen())
    try:
        agent.start()
        _write_state(cfg, agent, compiled, digest)
        server.start()
        log.info(
            "agent running", backend=str(agent.backend.name), mode=str(agent.mode), rules=len(compiled.plans)
        )
        agent.run(stop)
    finally:
        server.stop()
        agent.stop("stopped (signal)" if stop.is_set() else "stopped")
        audit.close()
        if alerts_file is not None:
            alerts_file.close()
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def _write_state(cfg: GuardConfig, agent: Agent, compiled: CompiledPolicy, digest: str) -> None:
    layout = getattr(agent.backend, "pinned", None)  # the plane's pinned layout directory
    state = {
        "pid": agent.tgid,
        "backend": str(agent.backend.name),
        "layout_dir": str(layout) if layout else None,
        "rules": {p.rule.id: p.number for p in compiled.plans},
        "policy_digest": digest,
    }
    path = state_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- operator commands


def _ask(cfg: GuardConfig, req: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any] | None:
    """Return the agent's response, or None when no agent runs and nothing listens.

    A running agent (:func:`running_agent`) that does not answer in time, or turns the
    connection away as busy, is an :class:`AgentUnavailableError`: the caller must not act
    in its place.
    """
    path = socket_path(cfg)
    running = running_agent(cfg)
    try:
        response = request(path, req, timeout=timeout or ASK_TIMEOUT_S)
    except AgentUnavailableError as exc:
        raise AgentUnavailableError(f"{exc}{_unanswered(running, sent=True)}") from None
    except ConfigError:  # nothing listens
        if running is None:
            return None
        raise AgentUnavailableError(
            f"{path}: the agent runs but does not listen (starting, or its control server is down)"
            f"{_unanswered(running, sent=False)}"
        ) from None
    if not response.get("ok"):
        error = str(response.get("error", "refused"))
        if response.get("refused"):
            raise PrivilegeError(error)
        if response.get("busy"):
            raise AgentUnavailableError(f"{path}: {error}{_unanswered(running, sent=False)}")
        if response.get("kind") == "ConfigError":
            raise ConfigError(error)
        raise GuardError(error)  # the agent's one-line reason (a rejected bundle: exit 1)
    return response


def _unanswered(pid: int | None, *, sent: bool) -> str:
    who = f" (pid {pid})" if pid is not None else ""
    late = " (the request was sent: the agent may still apply it; guardctl status and the trail tell)"
    return f"; guardctl changed nothing itself: the agent{who} holds the policy and the trail" + (
        late if sent else ""
    )


def change_mode(
    cfg: GuardConfig, mode: Mode, *, rule: str | None, reason: str, confirm_within: float | None
) -> dict[str, Any]:
    """Switch the mode through the agent, or (no agent) by one write to the pinned maps."""
    req = {"op": "mode", "mode": str(mode), "rule": rule, "reason": reason, "confirm_within": confirm_within}
    response = _ask(cfg, req)
    if response is not None:
        return response
    if confirm_within is not None:
        raise ConfigError("--confirm-within needs the running agent (its timer reverts the change)")
    if os.geteuid() != 0:
        raise PrivilegeError("changing the mode without the agent writes the pinned maps: needs root")
    return _pinned_switch(cfg, mode, rule, reason)


def _pinned_switch(cfg: GuardConfig, mode: Mode, rule: str | None, reason: str) -> dict[str, Any]:
    from guard.lsm.pinned import PinnedControl

    try:
        state = json.loads(state_path(cfg).read_text())
    except (OSError, ValueError):
        state = {}
    layout = state.get("layout_dir")
    try:
        audit = open_audit(cfg)
    except (GuardError, OSError) as exc:
        raise ConfigError(
            f"no agent runs and the audit trail cannot be written ({exc}): nothing changed"
        ) from exc
    try:
        control = (
            PinnedControl(Path(layout)) if layout else PinnedControl.from_pin_dir(Path(cfg.agent.pin_dir))
        )
        return switch_pinned(
            control,
            audit,
            mode,
            rule=rule,
            numbers=state.get("rules") or {},
            state_file=state_path(cfg),
            reason=reason,
        )
    finally:
        audit.close()


def confirm(cfg: GuardConfig, *, reason: str) -> dict[str, Any]:
    """Confirm a pending ``--confirm-within`` switch."""
    response = _ask(cfg, {"op": "confirm", "reason": reason})
    if response is None:
        raise ConfigError(f"{socket_path(cfg)}: no agent is running (nothing to confirm)")
    return response


def status(cfg: GuardConfig) -> dict[str, Any]:
    """Return the running agent's status."""
    response = _ask(cfg, {"op": "status"})
    if response is None:
        raise ConfigError(f"{socket_path(cfg)}: no agent is running")
    return response


# --------------------------------------------------------------------------- bundles


def _through_agent_or_store(cfg: GuardConfig, req: dict[str, Any], what: str, local: Any) -> dict[str, Any]:
    """Ask the running agent; with none, run ``local(audit)`` on the store (root: it writes the audit)."""
    response = _ask(cfg, req, timeout=DEPLOY_TIMEOUT_S)
    if response is not None:
        return response
    if os.geteuid() != 0:
        raise PrivilegeError(
            f"{what} without a running agent writes the store and the audit trail: needs root"
        )
    audit = open_audit(cfg)
    try:
        result: dict[str, Any] = local(audit)
        return result
    finally:
        audit.close()


def deploy_bundle(cfg: GuardConfig, path: Path, *, reason: str) -> dict[str, Any]:
    """``guardctl bundle deploy``: through the running agent, or (none) into the store for its next start."""
    req = {"op": "deploy", "path": str(path.resolve()), "reason": reason}
    return _through_agent_or_store(
        cfg,
        req,
        "bundle deploy",
        lambda audit: deploy(cfg, None, audit, path, uid=os.getuid(), reason=reason),
    )


def rollback_bundle(cfg: GuardConfig, to: int | None, *, reason: str) -> dict[str, Any]:
    """``guardctl rollback``: through the running agent, or (none) in the store for its next start."""
    req = {"op": "rollback", "to": to, "reason": reason}
    return _through_agent_or_store(
        cfg, req, "rollback", lambda audit: rollback(cfg, None, audit, to, uid=os.getuid(), reason=reason)
    )
