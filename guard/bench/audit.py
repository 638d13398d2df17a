"""Audit throughput: records/s of the hash-chained, checkpoint-signed writer against plain JSON lines.

One run writes the same decisions (10% denies, the rest would-blocks) three ways into a fresh
directory: plain JSON lines (json.dumps + one write per line, no hashing, no fsync) as the baseline;
our writer with its default fsync policy (fsync at every deny and every checkpoint); and our writer
fsyncing only at checkpoints (the cost of hashing and signing alone). Reported as records/s and as
ratios to the baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from guard.audit.chain import AuditWriter
from guard.audit.record import Decision, Kind, ProcessIdentity
from guard.model import Hook
from guard.signing import generate_keypair, load_signer

__all__ = ["render_audit_benchmark", "run_benchmark"]


def _decisions(n: int) -> list[Decision]:
    out = []
    for i in range(n):
        kind = Kind.DENY if i % 10 == 0 else Kind.WOULD_BLOCK
        out.append(
            Decision(
                kind,
                rule_id=f"rule-{i % 37}",
                hook=Hook.FILE_OPEN.value,
                process=ProcessIdentity(pid=1000 + i % 500, exe=f"/usr/bin/tool{i % 50}", uid=1000 + i % 7),
                verdict="deny",
                outcome="blocked" if kind is Kind.DENY else "allowed",
                reason="bench",
                detail={"path": f"/home/user/.ssh/id_{i % 13}"},
            )
        )
    return out


def _writer_rate(directory: Path, key: Path, decisions: list[Decision], fsync: str) -> float:
    writer = AuditWriter(directory / f"audit-{fsync}.jsonl", load_signer(key), host="bench", fsync=fsync)
    writer.open()
    start = time.perf_counter()
    for d in decisions:
        writer.append(d)
    writer.close()
    return len(decisions) / (time.perf_counter() - start)


def _plain_rate(directory: Path, decisions: list[Decision]) -> float:
    fd = os.open(directory / "plain.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    start = time.perf_counter()
    for seq, d in enumerate(decisions, 1):
        line = {
            "seq": seq, "ts": time.time_ns(), "event": d.kind.value, "rule_id": d.rule_id, "hook": d.hook,
            "process": d.process.to_json() if d.process else None, "verdict": d.verdict, "outcome": d.outcome,
            "reason": d.reason, "detail": dict(d.detail),
        }  # fmt: skip
        os.write(fd, json.dumps(line).encode() + b"\n")
    os.close(fd)
    return len(decisions) / (time.perf_counter() - start)


def run_benchmark(records: int = 20_000, directory: Path | None = None) -> dict[str, object]:
    """Measure and return the figures (records/s and ratios)."""
    base = Path(tempfile.mkdtemp(prefix="guard-audit-bench-", dir=directory))
    try:
        key, _, _ = generate_keypair(base / "keys", "bench")
        decisions = _decisions(records)
        plain = _plain_rate(base, decisions)
        default = _writer_rate(base, key, decisions, "deny_and_checkpoint")
        checkpoint_only = _writer_rate(base, key, decisions, "checkpoint_only")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {
        "records": records,
        "deny_share": 0.1,
        "plain_jsonl_per_s": round(plain),
        "chained_default_fsync_per_s": round(default),
        "chained_checkpoint_fsync_per_s": round(checkpoint_only),
        "ratio_default_to_plain": round(default / plain, 3),
        "ratio_checkpoint_only_to_plain": round(checkpoint_only / plain, 3),
    }


def render_audit_benchmark(result: Mapping[str, object]) -> str:
    """Render :func:`run_benchmark`'s result as the text ``guardctl bench audit`` prints."""
    return (
        f"{result['records']} records, 10% denies\n"
        f"  plain JSON lines:                {result['plain_jsonl_per_s']:>9} records/s (baseline)\n"
        f"  chained, default fsync policy:   {result['chained_default_fsync_per_s']:>9} records/s "
        f"({result['ratio_default_to_plain']}x)\n"
        f"  chained, fsync at checkpoints:   {result['chained_checkpoint_fsync_per_s']:>9} records/s "
        f"({result['ratio_checkpoint_only_to_plain']}x)"
    )
