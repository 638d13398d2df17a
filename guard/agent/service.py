"""The agent as a service: ``guardctl agent run``, and the operator commands that talk to it.

``run_agent`` composes everything from the configuration: the backend the probe chooses (or the
one asked for), the policy (compiled), the audit trail (``[audit]``; a missing key pair is created
on first start), the alerts file, the control socket ``<run_dir>/control.sock`` and the state file
``<run_dir>/state.json`` (pid, backend, pinned layout, rule numbers). SIGTERM and SIGINT stop it
cleanly (everything detached, an ``agent_stop`` record).

``change_mode`` / ``confirm`` / ``status`` ask the running agent through the socket. When no agent
answers, a mode switch is still one write to the pinned maps the last agent left
(:class:`~guard.lsm.bcc_backend.PinnedControl`), audited by ``guardctl`` itself; confirm-within
needs a running agent (its timer), so it is refused then.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import structlog

from guard import __version__
from guard.agent.control import ControlServer, Peer, request
from guard.agent.daemon import Agent, AgentSettings
from guard.audit.chain import AuditWriter
from guard.audit.record import Decision, JsonValue, Kind
from guard.bundles.bundle import BundleStore, VerifiedBundle, load_trust_store, verify_bundle
from guard.config import GuardConfig
from guard.errors import BundleError, ConfigError, GuardError, PrivilegeError
from guard.lsm.abi import HookId, ModeId
from guard.lsm.backend import KernelBackend
from guard.model import Mode
from guard.plan.compiler import CompiledPolicy, compile_policy
from guard.policy.engine import Budgets
from guard.policy.loader import load_policy
from guard.policy.predicates.abi import Budget
from guard.signing import generate_keypair, load_signer

__all__ = [
    "change_mode",
    "confirm",
    "deploy_bundle",
    "make_backend",
    "rollback_bundle",
    "run_agent",
    "socket_path",
    "status",
]

log = structlog.get_logger(__name__)

_MODE_IDS: Final = {Mode.OFF: ModeId.OFF, Mode.DETECT: ModeId.DETECT, Mode.ENFORCE: ModeId.ENFORCE}


def socket_path(cfg: GuardConfig) -> Path:
    """Return the control socket's path."""
    return Path(cfg.agent.run_dir) / "control.sock"


def state_path(cfg: GuardConfig) -> Path:
    """Return the state file the running agent writes (and leaves for mode switches without it)."""
    return Path(cfg.agent.run_dir) / "state.json"


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
    if name == "lsm":
        return LsmBackend(Btf.from_file(), cache_dir, pin_dir=pin_dir, ringbuf_pages=pages)
    if name == "compat":
        return CompatBackend(Btf.from_file(), cache_dir, pin_dir=pin_dir, ringbuf_pages=pages)
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
            return _deploy(cfg, agent, agent.audit, Path(str(req.get("path"))), uid=peer.uid, reason=reason)
        if op == "rollback":
            to = req.get("to")
            return _rollback(
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
    audit = open_audit(cfg)
    try:
        compiled, digest = _initial_policy(cfg, audit, policy, bundle)
    except BaseException:
        audit.close()
        raise
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
        batch=cfg.limits.batch_size,
        budgets=Budgets(
            max_pending_per_rule=cfg.limits.max_pending_per_rule,
            max_pending_per_entity=cfg.limits.max_pending_per_entity,
        ),
        runtime_budget=runtime_budget(cfg),
    )
    alerts_file = open(alerts, "a", encoding="utf-8") if alerts else None  # noqa: SIM115 - closed below
    agent = Agent(compiled, make_backend(backend, cfg, cache_dir), audit, settings, alerts=alerts_file)
    stop = stop or threading.Event()
    server = ControlServer(socket_path(cfg), _handler(cfg, agent), control_group=cfg.agent.control_group)
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
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


def _ask(cfg: GuardConfig, req: dict[str, Any]) -> dict[str, Any] | None:
    """Return the agent's response, or None when no agent listens."""
    path = socket_path(cfg)
    if not path.exists():
        return None
    try:
        response = request(path, req)
    except ConfigError:
        return None
    if not response.get("ok"):
        error = str(response.get("error", "refused"))
        if response.get("refused"):
            raise PrivilegeError(error)
        if response.get("kind") == "ConfigError":
            raise ConfigError(error)
        raise GuardError(error)  # the agent's one-line reason (a rejected bundle: exit 1)
    return response


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
    from guard.lsm.bcc_backend import PinnedControl

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
        with control:
            before: dict[str, JsonValue]
            if rule is None:
                before = {h.name.lower(): m.name.lower() for h, m in control.modes().items()}
                control.set_modes({hook: _MODE_IDS[mode] for hook in HookId})
            else:
                numbers = state.get("rules") or {}
                if rule not in numbers:
                    raise ConfigError(
                        f"--rule {rule}: not a rule of the last agent's policy ({state_path(cfg)})"
                    )
                before = {rule: str(control.rule_modes().get(int(numbers[rule]), "follows its hook")).lower()}
                control.set_rule_mode(int(numbers[rule]), _MODE_IDS[mode])
        audit.append(
            Decision(
                Kind.MODE_CHANGE,
                rule_id=rule,
                verdict=str(mode),
                outcome="changed",
                reason=reason or f"mode -> {mode} (no agent running: written to the pinned maps)",
                detail={"from": before, "to": str(mode), "uid": os.getuid(), "agent": False},
            )
        )
    finally:
        audit.close()
    return {"ok": True, "mode": str(mode), "rule": rule, "agent": False}


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


def bundle_store(cfg: GuardConfig) -> BundleStore:
    """Return the store of kept bundles (``<[agent] state_dir>/bundles``)."""
    return BundleStore(Path(cfg.agent.state_dir) / "bundles", keep=cfg.agent.keep_bundles)


def _verify(cfg: GuardConfig, path: Path, *, active: int | None, allow_older: bool = False) -> VerifiedBundle:
    return verify_bundle(
        path,
        load_trust_store(Path(cfg.agent.trust_dir)),
        active_version=active,
        now=datetime.now(UTC),
        agent_version=__version__,
        allow_older=allow_older,
    )


def _rejected(audit: Any, exc: GuardError, path: Path, uid: int | None, reason: str) -> None:
    audit.append(
        Decision(
            Kind.BUNDLE_REJECTED,
            verdict="reject",
            outcome="rejected",
            reason=str(exc),
            detail={
                "check": getattr(exc, "check", "apply"),
                "file": str(path),
                "uid": uid,
                "why": reason,
            },
        )
    )


def _deployed(
    audit: Any,
    verified: VerifiedBundle,
    previous: int | None,
    uid: int | None,
    reason: str,
    *,
    rollback: bool,
) -> dict[str, Any]:
    detail: dict[str, JsonValue] = {
        "version": verified.version,
        "previous": previous,
        "sha256": verified.digest,
        "signers": list(verified.signers),
        "rollback": rollback,
        "uid": uid,
    }
    what = "rolled back to" if rollback else "deployed"
    audit.append(
        Decision(
            Kind.BUNDLE_DEPLOYED,
            verdict="deploy",
            outcome="rolled_back" if rollback else "deployed",
            reason=reason or f"bundle version {verified.version} {what} (was {previous})",
            detail=detail,
        )
    )
    return {
        "version": verified.version,
        "previous": previous,
        "sha256": verified.digest,
        "rollback": rollback,
    }


def _deploy(
    cfg: GuardConfig, agent: Agent | None, audit: Any, path: Path, *, uid: int | None, reason: str
) -> dict[str, Any]:
    """Verify and compile, swap the agent's policy (when it runs), keep the bundle, make it active."""
    store = bundle_store(cfg)
    previous = store.active()
    try:
        verified = _verify(cfg, path, active=previous)
        compiled = verified.compile()
        store.add(verified)
        if agent is not None:
            agent.swap(compiled)
        store.activate(verified.version)
    except GuardError as exc:
        _rejected(audit, exc, path, uid, reason)
        raise
    return {**_deployed(audit, verified, previous, uid, reason, rollback=False), "agent": agent is not None}


def _rollback(
    cfg: GuardConfig, agent: Agent | None, audit: Any, to: int | None, *, uid: int | None, reason: str
) -> dict[str, Any]:
    """Re-verify a kept bundle (older versions allowed), swap it in and make it active."""
    store = bundle_store(cfg)
    previous = store.active()
    kept = store.versions()
    if to is None:
        older = [v for v in kept if previous is not None and v < previous]
        if not older:
            raise BundleError(
                "store", f"{store.root}: no kept bundle older than the active version {previous}"
            )
        to = older[-1]
    path = store.get(to)
    try:
        verified = _verify(cfg, path, active=previous, allow_older=True)
        compiled = verified.compile()
        if agent is not None:
            agent.swap(compiled)
        store.activate(verified.version)
    except GuardError as exc:
        _rejected(audit, exc, path, uid, reason)
        raise
    return {**_deployed(audit, verified, previous, uid, reason, rollback=True), "agent": agent is not None}


def _initial_policy(
    cfg: GuardConfig, audit: Any, policy: Path | None, bundle: Path | None
) -> tuple[CompiledPolicy, str]:
    """Return the starting policy: a directory, a bundle (verified, then kept), or the active kept bundle."""
    if policy is not None and bundle is not None:
        raise ConfigError("agent run: --policy and --bundle exclude each other")
    if policy is not None:
        loaded = load_policy(policy)
        return compile_policy(loaded), loaded.digest
    store = bundle_store(cfg)
    active = store.active()
    if bundle is None:
        if active is None:
            raise ConfigError(
                "agent run: no policy: give --policy DIR or --bundle FILE, or deploy a bundle "
                f"({store.root} holds none)"
            )
        verified = _verify(cfg, store.get(active), active=active, allow_older=True)
        return verified.compile(), verified.digest
    try:
        verified = _verify(cfg, bundle, active=active)
    except BundleError as exc:
        if exc.check != "downgrade" or active is None:
            _rejected(audit, exc, bundle, os.getuid(), "agent run --bundle")
            raise
        # restarting on the active bundle itself is no replay
        verified = _verify(cfg, bundle, active=active, allow_older=True)
        if verified.version != active or verified.archive != store.get(active).read_bytes():
            _rejected(audit, exc, bundle, os.getuid(), "agent run --bundle")
            raise
    compiled = verified.compile()
    if active != verified.version:
        store.add(verified)
        store.activate(verified.version)
        _deployed(audit, verified, active, os.getuid(), "agent run --bundle", rollback=False)
    return compiled, verified.digest


def _through_agent_or_store(cfg: GuardConfig, req: dict[str, Any], what: str, local: Any) -> dict[str, Any]:
    """Ask the running agent; with none, run ``local(audit)`` on the store (root: it writes the audit)."""
    response = _ask(cfg, req)
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
        lambda audit: _deploy(cfg, None, audit, path, uid=os.getuid(), reason=reason),
    )


def rollback_bundle(cfg: GuardConfig, to: int | None, *, reason: str) -> dict[str, Any]:
    """``guardctl rollback``: through the running agent, or (none) in the store for its next start."""
    req = {"op": "rollback", "to": to, "reason": reason}
    return _through_agent_or_store(
        cfg, req, "rollback", lambda audit: _rollback(cfg, None, audit, to, uid=os.getuid(), reason=reason)
    )
