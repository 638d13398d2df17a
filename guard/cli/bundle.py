"""``guardctl bundle build|sign|verify|list|deploy`` and ``guardctl rollback``: signed policy bundles."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guard import __version__
from guard.bundles.build import build_bundle, sign_bundle
from guard.bundles.deploy import bundle_store
from guard.bundles.manifest import parse_expires
from guard.bundles.verify import DEFAULT_TRUST_DIR, load_trust_store, verify_bundle
from guard.cli.command import Subparsers, command, group, leaf
from guard.cli.output import emit, print_json
from guard.config import GuardConfig
from guard.errors import BundleError, GuardError, exit_code_for
from guard.signing import load_signer

__all__ = ["register"]


def _cmd_bundle_build(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    bundle = build_bundle(
        Path(args.dir),
        Path(args.output),
        version=args.version,
        now=datetime.now(UTC),
        expires=parse_expires(args.expires) if args.expires else None,
        min_agent_version=args.min_agent_version or __version__,
    )
    emit(
        args,
        lambda: {"file": args.output, "sha256": bundle.digest, "manifest": bundle.manifest.to_json()},
        lambda: (
            f"{args.output}: version {bundle.manifest.version}, {len(bundle.files)} policy file(s), "
            f"sha256 {bundle.digest}; unsigned: sign it with guardctl bundle sign"
        ),
    )
    return 0


def _cmd_bundle_sign(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    signers = [load_signer(Path(k)) for k in args.key]
    bundle = sign_bundle(Path(args.file), signers)
    ids = ", ".join(s.key_id for s in signers)
    emit(
        args,
        lambda: {
            "file": args.file,
            "signed_by": [s.key_id for s in signers],
            "signatures": sorted(bundle.signatures),
        },
        lambda: f"{args.file}: signed by {ids}; signatures now: {', '.join(sorted(bundle.signatures))}",
    )
    return 0


def _cmd_bundle_verify(args: argparse.Namespace, cfg: GuardConfig) -> int:
    try:
        trust = load_trust_store(Path(args.trust))
        active = args.active_version if args.active_version is not None else bundle_store(cfg).active()
        verified = verify_bundle(
            Path(args.file),
            trust,
            active_version=active,
            now=datetime.now(UTC),
            agent_version=__version__,
            allow_older=args.allow_older,
        )
        verified.compile()
    except BundleError as exc:
        if not args.json:
            raise
        # under --json a rejected bundle is a document naming the failed check, not an error line
        print_json(
            {
                "ok": False,
                "check": exc.check,
                "error": str(exc),
                "file": args.file,
                "version": None,
                "signers": [],
            }
        )
        return 1

    def text() -> str:
        expires = verified.to_json()["expires"] or "never"
        unknown = f"; untrusted signatures not counted: {', '.join(verified.unknown_signers)}"
        return (
            f"{args.file}: ok: version {verified.version}, signed by {', '.join(verified.signers)} "
            f"(threshold {verified.threshold}), expires {expires}, {len(verified.files)} policy file(s)"
            + (unknown if verified.unknown_signers else "")
        )

    emit(args, lambda: {"ok": True, "check": None, "error": None, **verified.to_json()}, text)
    return 0


def _emit_swap(args: argparse.Namespace, result: dict[str, Any], done: str, no_agent: str) -> None:
    """Print a deploy's or rollback's result: what was done, the version before, and who swapped it in."""
    where = "swapped in by the running agent" if result.get("agent") else no_agent
    emit(args, lambda: result, lambda: f"{done} (was {result['previous']}): {where}")


def _refused_json(args: argparse.Namespace, exc: GuardError, **fields: object) -> int:
    """Under ``--json`` a refused deploy or rollback is a document naming the failed check; else raise."""
    if not args.json:
        raise exc
    check = exc.check if isinstance(exc, BundleError) else None
    print_json({"ok": False, "check": check, "error": str(exc), **fields})
    return exit_code_for(exc)


def _cmd_bundle_deploy(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import deploy_bundle

    try:
        result = deploy_bundle(cfg, Path(args.file), reason=args.reason or "")
    except GuardError as exc:
        return _refused_json(args, exc, file=args.file, version=None)
    done = f"{args.file}: version {result['version']} deployed"
    _emit_swap(args, {"ok": True, **result}, done, "kept; the next agent start runs it")
    return 0


def _cmd_rollback(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import rollback_bundle

    try:
        result = rollback_bundle(cfg, args.to, reason=args.reason or "")
    except GuardError as exc:
        return _refused_json(args, exc, to=args.to, version=None)
    _emit_swap(
        args,
        {"ok": True, **result},
        f"rolled back to version {result['version']}",
        "active for the agent's next start",
    )
    return 0


def _cmd_bundle_list(args: argparse.Namespace, cfg: GuardConfig) -> int:
    store = bundle_store(cfg)
    entries = store.list()

    def text() -> str:
        if not entries:
            return f"no bundles kept in {store.root}"
        lines = [f"{'VERSION':>8}  {'ACTIVE':6}  {'CREATED':20}  {'EXPIRES':20}  SIGNERS  PATH"]
        for e in entries:
            data = e.to_json()
            lines.append(
                f"{e.version:>8}  {'*' if e.active else '':6}  {data['created']!s:20}  "
                f"{data['expires'] or 'never'!s:20}  {','.join(e.signers) or '-'}  {e.path}"
            )
        return "\n".join(lines)

    emit(args, lambda: [e.to_json() for e in entries], text)
    return 0


def _register_build_sign(bundle_sub: Subparsers) -> None:
    q = leaf(
        bundle_sub, "build", _cmd_bundle_build,
        "compile a policy directory and write an unsigned bundle (manifest with every file's SHA-256)",
        epilog="examples:\n"
        "  guardctl bundle build policies/ -o policy-7.bundle --version 7 --expires 2026-12-31",
    )  # fmt: skip
    q.add_argument("dir", metavar="DIR", help="policy directory (*.guard, *.toml)")
    q.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle to write")
    q.add_argument(
        "--version", required=True, type=int, metavar="N", help="bundle version (above the active one)"
    )
    q.add_argument("--expires", metavar="DATE", help="a UTC date (its midnight) or ISO-8601 time")
    q.add_argument("--min-agent-version", metavar="V", help=f"default: this agent's ({__version__})")
    q = leaf(
        bundle_sub, "sign", _cmd_bundle_sign,
        "sign a bundle's manifest (replaces an earlier signature by the same key)",
        epilog="examples:\n  guardctl bundle sign policy-7.bundle --key alice.key --key bob.key",
    )  # fmt: skip
    q.add_argument("file", metavar="FILE", help="the bundle")
    q.add_argument(
        "--key", required=True, action="append", metavar="KEY", help="Ed25519 private key (repeatable)"
    )


def _register_verify(bundle_sub: Subparsers) -> None:
    q = leaf(
        bundle_sub, "verify", _cmd_bundle_verify,
        "verify a bundle as the agent would (exit 1 naming the failed check)",
        "Check the archive (limits, entries), the manifest, the trusted signatures against the\n"
        "threshold, expiry, the version against the active one, the minimum agent version, every\n"
        "file's SHA-256, and that the policy compiles.",
        'print {"ok", "check", "error", "version", "signers", ...}',
        epilog="examples:\n  guardctl bundle verify policy-7.bundle --trust /etc/guard/trust\n"
        "  guardctl bundle verify policy-7.bundle --json | jq .check",
    )  # fmt: skip
    q.add_argument("file", metavar="FILE", help="the bundle")
    q.add_argument(
        "--trust",
        default=DEFAULT_TRUST_DIR,
        metavar="DIR",
        help="*.pub keys and trust.toml (default: %(default)s)",
    )
    q.add_argument(
        "--active-version", type=int, metavar="N",
        help="refuse versions <= N (default: the active version in [agent] state_dir/bundles, if any)",
    )  # fmt: skip
    q.add_argument("--allow-older", action="store_true", help="skip the version check (a rollback)")


def _register_deploy(bundle_sub: Subparsers) -> None:
    leaf(bundle_sub, "list", _cmd_bundle_list, "the bundles kept in [agent] state_dir/bundles")
    q = leaf(
        bundle_sub, "deploy", _cmd_bundle_deploy,
        "verify, compile and swap in a bundle atomically (through the agent; else kept for its next start)",
        "Verify the bundle against [agent] trust_dir (signatures, threshold, expiry, a version above the\n"
        "active one, hashes), compile it, and swap the kernel maps and the engine with no instant where\n"
        "neither policy applies; keep it among the last [agent] keep_bundles. A rejected bundle changes\n"
        "nothing and is audited as bundle_rejected with the failed check.",
    )  # fmt: skip
    q.add_argument("file", metavar="FILE", help="the bundle")
    q.add_argument("--reason", metavar="TEXT", help="recorded in the audit trail")


def register(sub: Subparsers) -> None:
    """Add ``guardctl bundle build|sign|verify|list|deploy`` and ``guardctl rollback``."""
    bundle_sub = group(sub, "bundle", "signed policy bundles: build, sign, verify, list the kept ones")
    _register_build_sign(bundle_sub)
    _register_verify(bundle_sub)
    _register_deploy(bundle_sub)
    q = command(
        sub, "rollback", _cmd_rollback,
        "swap back to a kept bundle (re-verified; default: the newest one below the active version)",
    )  # fmt: skip
    q.add_argument("--to", type=int, metavar="VERSION", help="the kept version to return to")
    q.add_argument("--reason", metavar="TEXT", help="recorded in the audit trail")
    q.add_argument("--json", action="store_true", help="print JSON")
