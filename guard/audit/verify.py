"""Prove an audit trail: the hash chain, the sequence and the signed checkpoints.

The first problem found is reported with its seq (or file and line) and a reason:

- ``edited``: a record's content no longer matches its hash, or a record was re-hashed so that
  the next one no longer links to it;
- ``deleted``: the sequence jumps (records missing);
- ``inserted``: a record repeats a sequence number already seen;
- ``reordered``: a record comes after one with a higher sequence number that was not a duplicate;
- ``truncated``: the last line is a torn, partial record;
- ``forged``: a checkpoint's signature does not verify, or its key is not trusted;
- ``missing checkpoint``: more records than the writer's checkpoint interval went unsigned
  between two checkpoints, or a checkpoint does not name the previous one;
- ``noncanonical``: a line is not byte for byte the canonical JSON of the record it parses to (a
  duplicate key, another key order, whitespace, another spelling of a number or string): the writer
  never writes one, and readers could disagree on what it says;
- ``corrupt``: a line is not a JSON record of this schema (or is over the line or depth limit);
- ``empty``: the trail holds no record.

Records after the last checkpoint are reported as an unsealed tail: the chain links them, but no
signature covers them yet (a writer that is still running, or one that died). What verification
cannot prove is listed in ``not_checked``. Files are read streamed, one bounded line at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from guard.audit.record import (
    GENESIS,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    Kind,
    Line,
    checkpoint_payload,
    compute_hash,
    is_canonical,
    iter_lines,
    parse_line,
    sorted_log_files,
)
from guard.signing import Verifier

__all__ = ["Problem", "VerifyResult", "verify_logs"]


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong with a trail."""

    kind: str
    seq: int | None
    where: str
    message: str

    def __str__(self) -> str:
        at = f"seq {self.seq}" if self.seq is not None else self.where
        return f"{self.kind} at {at} ({self.where}): {self.message}"


@dataclass(slots=True)
class VerifyResult:
    """What verification proved."""

    files: list[str]
    records: int = 0
    checkpoints: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_checkpoint_seq: int | None = None
    unsealed: int = 0
    key_ids: set[str] = field(default_factory=set)
    #: ``decisions_not_recorded`` records, and the kernel decisions they count
    not_recorded_records: int = 0
    not_recorded: int = 0
    problem: Problem | None = None
    not_checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return self.problem is None

    def to_json(self) -> dict[str, object]:
        """Return the result as JSON-ready data."""
        return {
            "ok": self.ok,
            "files": self.files,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_checkpoint_seq": self.last_checkpoint_seq,
            "unsealed_records": self.unsealed,
            "key_ids": sorted(self.key_ids),
            "decisions_not_recorded": {"records": self.not_recorded_records, "decisions": self.not_recorded},
            "not_checked": self.not_checked,
            "problem": None
            if self.problem is None
            else {
                "kind": self.problem.kind,
                "seq": self.problem.seq,
                "where": self.problem.where,
                "message": self.problem.message,
            },
        }

    def render_text(self) -> str:
        """Return a human summary, one fact per line."""
        lines = [
            f"files: {len(self.files)}",
            f"records: {self.records} (seq {self.first_seq}..{self.last_seq})",
            f"checkpoints: {self.checkpoints}",
        ]
        if self.unsealed:
            lines.append(
                f"unsealed tail: {self.unsealed} record(s) after the last checkpoint "
                f"(seq {self.last_checkpoint_seq})"
            )
        if self.not_recorded_records:
            lines.append(
                f"decisions not recorded one by one: {self.not_recorded} "
                f"(counted in {self.not_recorded_records} decisions_not_recorded record(s))"
            )
        lines += [f"not checked: {what}" for what in self.not_checked]
        lines.append("OK: chain and checkpoints verified" if self.ok else f"FAILED: {self.problem}")
        return "\n".join(lines)


def verify_logs(paths: list[Path], keys: Mapping[str, Verifier]) -> VerifyResult:
    """Verify the audit files at ``paths`` (files, an active log with its rotations, or directories)."""
    files = sorted_log_files(paths)
    result = VerifyResult([str(f) for f in files])
    if not files:
        result.problem = Problem("corrupt", None, ", ".join(map(str, paths)), "no audit files found")
        return result
    result.problem = _walk(iter_lines(files), keys, result)
    if result.problem is None and result.records == 0:
        result.problem = Problem(
            "empty", None, ", ".join(result.files), "no records: an empty trail proves nothing"
        )
    result.not_checked = _not_checked(result)
    return result


def _not_checked(result: VerifyResult) -> list[str]:
    """Say what a verification, even a passing one, could not prove."""
    if result.problem is not None:
        return [] if result.problem.kind == "empty" else [f"everything after {result.problem.where}"]
    notes = []
    if result.unsealed:
        notes.append(
            f"{result.unsealed} record(s) after the last checkpoint (seq {result.last_checkpoint_seq}) "
            "carry no signature: they could be edited or removed without a trace"
        )
    notes.append(
        f"anything after seq {result.last_seq}: records or whole files removed from the end leave no "
        "trace in what remains"
    )
    notes.append(
        "kernel decisions with no record of their own are counted in decisions_not_recorded records "
        "(from the kernel's drop counters); allowed telemetry the event ring dropped is counted in "
        "`guardctl status` only"
    )
    return notes


def _walk(lines: Iterator[Line], keys: Mapping[str, Verifier], result: VerifyResult) -> Problem | None:
    """Check every line in chain order; return the first problem (``result`` counts what was proved)."""
    expected_seq = 1
    prev_hash = GENESIS
    checkpoint_seq = 0
    since_checkpoint = 0
    interval: int | None = None
    for line in lines:
        where = f"{line.path}:{line.number}"
        if not line.complete:
            return Problem(
                "truncated", None, where,
                f"the last line is a partial record ({line.size} bytes after seq {expected_seq - 1})",
            )  # fmt: skip
        parsed = parse_line(line)
        record = parsed.record
        if record is None:
            return Problem(parsed.kind, None, where, parsed.message)
        missing = [f for f in REQUIRED_FIELDS if f not in record]
        if missing or not isinstance(record.get("seq"), int):
            return Problem("corrupt", None, where, f"not an audit record (missing {missing or ['seq']})")
        seq = int(record["seq"])  # type: ignore[call-overload]
        if record.get("v") != SCHEMA_VERSION:
            return Problem(
                "corrupt", seq, where, f"schema version {record.get('v')!r}, expected {SCHEMA_VERSION}"
            )
        if compute_hash(record) != record["hash"]:
            return Problem("edited", seq, where, "the record's content does not match its hash")
        if seq != expected_seq:
            return _sequence_problem(seq, expected_seq, lines, where)
        if record["prev_hash"] != prev_hash:
            return Problem(
                "edited", seq - 1 if seq > 1 else seq, where,
                f"seq {seq} does not link to the record before it (prev_hash "
                f"{str(record['prev_hash'])[:12]}..., chain has {prev_hash[:12]}...): that record was "
                "changed and re-hashed, or this one forged",
            )  # fmt: skip
        if not is_canonical(record, line.raw):
            return Problem(
                "noncanonical", seq, where,
                "the line is not the canonical JSON of its record (key order, spacing or number form): "
                "the writer never writes it",
            )  # fmt: skip
        result.records += 1
        result.first_seq = result.first_seq or seq
        result.last_seq = seq
        if record["event"] == Kind.DECISIONS_NOT_RECORDED:
            count = record["detail"].get("count") if isinstance(record["detail"], dict) else None
            result.not_recorded_records += 1
            result.not_recorded += count if isinstance(count, int) and not isinstance(count, bool) else 0
        if record["event"] == Kind.CHECKPOINT:
            problem = _check_checkpoint(record, keys, checkpoint_seq, since_checkpoint, where)
            if problem is not None:
                return problem
            detail = record["detail"]
            every = detail.get("every", 0) if isinstance(detail, dict) else 0
            interval = every if isinstance(every, int) and every > 0 else None
            result.checkpoints += 1
            result.key_ids.add(str(record["key_id"]))
            checkpoint_seq, since_checkpoint = seq, 0
            result.last_checkpoint_seq = seq
        else:
            since_checkpoint += 1
            if interval is not None and since_checkpoint > interval:
                return Problem(
                    "missing checkpoint", seq, where,
                    f"{since_checkpoint} records since the checkpoint at seq {checkpoint_seq}; "
                    f"the writer signs every {interval}",
                )  # fmt: skip
        prev_hash = str(record["hash"])
        expected_seq = seq + 1
    result.unsealed = since_checkpoint
    return None


def _sequence_problem(seq: int, expected: int, rest: Iterator[Line], where: str) -> Problem:
    """Name what an unexpected sequence number means (seqs 1..expected-1 were seen, in order)."""
    if 1 <= seq < expected:
        return Problem("inserted", seq, where, f"seq {seq} was already seen: a record was inserted")
    marker = f'"seq":{expected},'.encode()
    comes_later = seq > expected and any(marker in ln.raw for ln in rest)
    if seq > expected and comes_later:
        return Problem("reordered", expected, where, f"seq {seq} comes before seq {expected}")
    if seq > expected:
        gap = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
        return Problem(
            "deleted", expected, where, f"{gap} missing: the sequence jumps from {expected - 1} to {seq}"
        )
    return Problem("reordered", seq, where, f"seq {seq} comes after seq {expected - 1}")


def _check_checkpoint(
    record: dict[str, object], keys: Mapping[str, Verifier], prev_checkpoint: int, since: int, where: str
) -> Problem | None:
    seq = int(record["seq"])  # type: ignore[call-overload]
    key_id, signature, detail = record.get("key_id"), record.get("signature"), record.get("detail")
    if not isinstance(key_id, str) or not isinstance(signature, str) or not isinstance(detail, dict):
        return Problem("forged", seq, where, "checkpoint without key_id, signature or detail")
    verifier = keys.get(key_id)
    if verifier is None:
        known = ", ".join(sorted(keys)) or "none given"
        return Problem(
            "forged",
            seq,
            where,
            f"checkpoint signed by key {key_id}, which is not trusted (trusted: {known})",
        )
    if not verifier.verify(checkpoint_payload(record), signature):
        return Problem("forged", seq, where, f"checkpoint signature does not verify with key {key_id}")
    if detail.get("prev_checkpoint_seq") != prev_checkpoint:
        return Problem(
            "missing checkpoint", seq, where,
            f"checkpoint names the previous one as seq {detail.get('prev_checkpoint_seq')}, "
            f"the chain has {prev_checkpoint}",
        )  # fmt: skip
    if detail.get("count") != since:
        return Problem(
            "edited", seq, where, f"checkpoint covers {detail.get('count')} records, the chain has {since}"
        )
    return None
