"""``guardctl replay``: run a policy over an event recording, to see what it would have decided."""

from __future__ import annotations

import argparse
from pathlib import Path

from guard.audit.chain import AuditWriter
from guard.cli.command import Subparsers, command
from guard.cli.output import emit
from guard.config import GuardConfig
from guard.offline.replay import replay, summarize
from guard.policy.engine import Engine
from guard.policy.loader import load_policy
from guard.policy.recording import RecordingHeader, open_recording
from guard.policy.schema import ECS
from guard.signing import load_signer

__all__ = ["recording_notes", "register"]


def recording_notes(header: RecordingHeader | None, ruleset_hash: str) -> list[str]:
    """Say what differs between the recording's producer and this replay."""
    if header is None:
        return ["the recording has no header: producer rule set and schema version unknown"]
    notes = []
    if header.ruleset_hash != ruleset_hash:
        notes.append(f"recorded under rule set {header.ruleset_hash[:16]}, replaying {ruleset_hash[:16]}")
    if (header.schema, header.schema_version) != (ECS.name, ECS.version):
        recorded = f"{header.schema} {header.schema_version}"
        notes.append(f"recorded with schema {recorded}, replaying with {ECS.name} {ECS.version}")
    return notes


def _cmd_replay(args: argparse.Namespace, cfg: GuardConfig) -> int:
    policy = load_policy(Path(args.policy))
    from guard.agent.service import runtime_budget

    # rules whose mode is off are not loaded
    engine = Engine(policy.rules, runtime_budget=runtime_budget(cfg), modules=policy.modules)
    with open_recording(Path(args.log)) as recording:  # streamed: memory bounded by a batch, not the file
        decisions = replay(policy, recording.events(), engine=engine)
        count = recording.count
    written = 0
    if args.audit:
        signer = load_signer(Path(args.key or cfg.audit.key_path))
        audit = cfg.audit
        with AuditWriter(
            Path(args.audit), signer, checkpoint_every=audit.checkpoint_every,
            checkpoint_seconds=audit.checkpoint_seconds, rotate_bytes=audit.rotate_bytes, fsync=audit.fsync,
        ) as writer:  # fmt: skip
            for d in decisions:
                if d.kind != "alert":
                    writer.append(d.to_audit(args.log))
                    written += 1
    rows = summarize(decisions, policy)
    header = recording.header
    notes = recording_notes(header, engine.ruleset_hash)

    def text() -> str:
        lines = [
            f"replayed {count} events against {len(policy.rules)} rules ({policy.source})",
            f"rule set {engine.ruleset_hash[:16]}, schema {ECS.name} {ECS.version}",
            *(f"note: {note}" for note in notes),
            f"{'RULE':<32} {'ACTION':<7} {'MODE':<8} {'DENY':>6} {'WOULD':>6} {'KILL':>6} {'ALERT':>6}",
        ]
        lines += [
            f"{r['rule']!s:<32} {r['action']!s:<7} {r['mode']!s:<8} {r['deny']!s:>6} {r['would_block']!s:>6} "
            f"{r['kill']!s:>6} {r['alert']!s:>6}"
            for r in rows
        ]
        lines += [f"budget: rule {ev.rule_id}: {ev.kind} x{ev.count}" for ev in engine.budget_events()]
        if args.audit:
            lines.append(f"wrote {written} audit records to {args.audit}")
        return "\n".join(lines)

    emit(
        args,
        lambda: {
            "policy": policy.source,
            "policy_digest": policy.digest,
            "ruleset_hash": engine.ruleset_hash,
            "schema": ECS.name,
            "schema_version": ECS.version,
            "recording": header.to_json() if header is not None else None,
            "notes": notes,
            "events": count,
            "late_events": engine.late_events,
            "rules": rows,
            "budgets": {rule_id: st.to_json() for rule_id, st in engine.stats.items()},
            "audit_records": written,
            "decisions": [
                {"rule": d.rule.id, "kind": d.kind, "ts_ns": d.ts_ns, "event_ids": list(d.event_ids)}
                for d in decisions
            ],
        },
        text,
    )
    return 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl replay``."""
    q = command(
        sub, "replay", _cmd_replay, "run a policy over an event recording: what would it have decided?"
    )
    q.add_argument("log", metavar="LOG", help="JSON Lines of ECS events")
    q.add_argument("--policy", required=True, metavar="DIR", help="policy file or directory")
    q.add_argument("--audit", metavar="PATH", help="also write the decisions as an audit trail")
    q.add_argument("--key", metavar="KEY", help="signing key for --audit (default: [audit] key_path)")
    q.add_argument("--json", action="store_true", help="print JSON")
