"""Bundle deploy and rollback: verify, compile, swap into the running policy, keep, activate, audit.

:func:`deploy` and :func:`rollback` take the configured trust store and store of kept bundles
(``[agent] trust_dir``, ``<[agent] state_dir>/bundles``) and a :class:`PolicyTarget` (the running
agent, or None: the store alone, for the next start). A rejected bundle changes nothing and is
audited as ``bundle_rejected`` naming the failed check; a deployed one as ``bundle_deployed``.
:func:`initial_policy` is the policy an agent starts with.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from guard import __version__
from guard.audit.record import Decision, JsonValue, Kind
from guard.audit.sink import AuditSink
from guard.bundles.store import BundleStore
from guard.bundles.verify import VerifiedBundle, load_trust_store, verify_bundle
from guard.config import GuardConfig
from guard.errors import BundleError, ConfigError, GuardError
from guard.plan.compiler import CompiledPolicy, compile_policy
from guard.policy.loader import load_policy

__all__ = ["PolicyTarget", "bundle_store", "deploy", "initial_policy", "rollback", "verify_configured"]


class PolicyTarget(Protocol):
    """What a deploy swaps the policy of: the running agent."""

    def swap(self, compiled: CompiledPolicy, /) -> object:
        """Replace the policy with no instant where neither the old nor the new one applies."""


def bundle_store(cfg: GuardConfig) -> BundleStore:
    """Return the store of kept bundles (``<[agent] state_dir>/bundles``)."""
    return BundleStore(Path(cfg.agent.state_dir) / "bundles", keep=cfg.agent.keep_bundles)


def verify_configured(
    cfg: GuardConfig, path: Path, *, active: int | None, allow_older: bool = False
) -> VerifiedBundle:
    """Verify a bundle against ``[agent] trust_dir``, now, for this agent's version."""
    return verify_bundle(
        path,
        load_trust_store(Path(cfg.agent.trust_dir)),
        active_version=active,
        now=datetime.now(UTC),
        agent_version=__version__,
        allow_older=allow_older,
    )


def _rejected(
    audit: AuditSink,
    exc: GuardError,
    path: Path | None,
    uid: int | None,
    reason: str,
    extra: Mapping[str, JsonValue] | None = None,
) -> None:
    detail: dict[str, JsonValue] = {
        "check": getattr(exc, "check", "apply"),
        "file": str(path) if path is not None else None,
        "uid": uid,
        "why": reason,
        **(extra or {}),
    }
    audit.append(
        Decision(Kind.BUNDLE_REJECTED, verdict="reject", outcome="rejected", reason=str(exc), detail=detail)
    )


@contextmanager
def _audited(
    audit: AuditSink, path: Path | None, uid: int | None, reason: str, **extra: JsonValue
) -> Iterator[None]:
    """Audit any refusal inside as ``bundle_rejected``; an OS error no check converted is one (``io``)."""
    try:
        yield
    except GuardError as exc:
        _rejected(audit, exc, path, uid, reason, extra)
        raise
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else path
        error = BundleError("io", f"{where}: {exc.strerror or exc}")
        _rejected(audit, error, path, uid, reason, extra)
        raise error from exc


def _deployed(
    audit: AuditSink,
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


def deploy(
    cfg: GuardConfig,
    target: PolicyTarget | None,
    audit: AuditSink,
    path: Path,
    *,
    uid: int | None,
    reason: str,
) -> dict[str, Any]:
    """Verify and compile, swap the target's policy (when it runs), keep the bundle, make it active."""
    store = bundle_store(cfg)
    with _audited(audit, path, uid, reason):
        active = store.active()
    return _swap_in(cfg, store, target, audit, path, active, uid=uid, reason=reason, rollback=False)


def rollback(
    cfg: GuardConfig,
    target: PolicyTarget | None,
    audit: AuditSink,
    to: int | None,
    *,
    uid: int | None,
    reason: str,
) -> dict[str, Any]:
    """Re-verify a kept bundle (older versions allowed), swap it in and make it active.

    A refused rollback (no such kept version, none older than the active one) is audited too.
    """
    store = bundle_store(cfg)
    with _audited(audit, None, uid, reason, rollback=True, to=to):
        previous = store.active()
        if to is None:
            older = [v for v in store.versions() if previous is not None and v < previous]
            if not older:
                raise BundleError(
                    "store", f"{store.root}: no kept bundle older than the active version {previous}"
                )
            to = older[-1]
        path = store.get(to)
    return _swap_in(cfg, store, target, audit, path, previous, uid=uid, reason=reason, rollback=True)


def _swap_in(
    cfg: GuardConfig,
    store: BundleStore,
    target: PolicyTarget | None,
    audit: AuditSink,
    path: Path,
    previous: int | None,
    *,
    uid: int | None,
    reason: str,
    rollback: bool,
) -> dict[str, Any]:
    """Verify (a rollback: older versions allowed), compile, keep a new bundle, swap, activate; audit."""
    with _audited(audit, path, uid, reason, rollback=rollback):
        verified = verify_configured(cfg, path, active=previous, allow_older=rollback)
        compiled = verified.compile()
        if not rollback:
            store.add(verified)
        if target is not None:
            target.swap(compiled)
        store.activate(verified.version)
    return {
        **_deployed(audit, verified, previous, uid, reason, rollback=rollback),
        "agent": target is not None,
    }


def initial_policy(
    cfg: GuardConfig, audit: AuditSink, policy: Path | None, bundle: Path | None
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
        verified = verify_configured(cfg, store.get(active), active=active, allow_older=True)
        return verified.compile(), verified.digest
    try:
        verified = verify_configured(cfg, bundle, active=active)
    except BundleError as exc:
        if exc.check != "downgrade" or active is None:
            _rejected(audit, exc, bundle, os.getuid(), "agent run --bundle")
            raise
        # restarting on the active bundle itself is no replay
        verified = verify_configured(cfg, bundle, active=active, allow_older=True)
        if verified.version != active or verified.archive != store.read(active):
            _rejected(audit, exc, bundle, os.getuid(), "agent run --bundle")
            raise
    compiled = verified.compile()
    if active != verified.version:
        store.add(verified)
        store.activate(verified.version)
        _deployed(audit, verified, active, os.getuid(), "agent run --bundle", rollback=False)
    return compiled, verified.digest
