"""The audit writer: appends hash-chained records, signs checkpoints, rotates, survives a crash.

Each record is written with a single ``write(2)`` of one complete line to a file opened with
``O_APPEND``; a crash can tear at most the line being written. ``open()`` finds the last complete
record (in the active file, else the newest rotated one), cuts a torn tail off and reports it, and
the chain continues from there. Checkpoints (signed chain heads) are written every N records or T
seconds, before a rotation and on ``close()``. Rotation renames the active file to
``<stem>.<first seq, 12 digits>.jsonl``; the chain runs on across files. The writer never goes
through the logging system.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from guard.audit.record import (
    GENESIS,
    SCHEMA_VERSION,
    SYNC_KINDS,
    Decision,
    Kind,
    canonical_json,
    checkpoint_payload,
    compute_hash,
    sorted_log_files,
)
from guard.errors import AuditError, AuditIntegrityError
from guard.signing import Signer

__all__ = ["FSYNC_POLICIES", "AuditWriter", "Recovery"]

FSYNC_POLICIES: Final = ("deny_and_checkpoint", "every_record", "checkpoint_only")

Record = dict[str, object]


@dataclass(frozen=True, slots=True)
class Recovery:
    """What ``open()`` found: where the chain continues, and any torn tail it cut off."""

    last_seq: int
    last_hash: str
    discarded_bytes: int
    discarded_from: str  # "path:offset" of the cut, or ""
    unsealed: int  # records after the last checkpoint (not yet signed)


@dataclass(frozen=True, slots=True)
class _Tail:
    """What one read of a log file tells the writer about where to continue."""

    last: Record | None  # the last complete record
    good_end: int  # byte offset where a torn tail starts
    torn: int  # bytes of that torn tail
    first_seq: int | None  # the file's first seq
    unsealed: int  # records after the file's last checkpoint
    checkpoint_seq: int  # that checkpoint's seq (0 if none)


def _scan(path: Path) -> _Tail:
    """Read a log once: its last complete record, a torn tail, and what the last checkpoint left unsigned."""
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    records: list[Record] = []
    for raw in data[:good_end].splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        records.append(record if isinstance(record, dict) else {})
    last = records[-1] if records else None
    if last is not None and not isinstance(last.get("seq"), int):
        raise AuditIntegrityError(
            f"{path}: the last complete line is not a record with a seq; "
            "run `guardctl audit verify` before writing"
        )
    unsealed, checkpoint_seq = 0, 0
    for record in records:
        seq = record.get("seq")
        if record.get("event") == Kind.CHECKPOINT and isinstance(seq, int):
            unsealed, checkpoint_seq = 0, seq
        elif record:
            unsealed += 1
    first = records[0].get("seq") if records else None
    return _Tail(last, good_end, len(data) - good_end, first if isinstance(first, int) else None, unsealed,
                 checkpoint_seq)  # fmt: skip


class AuditWriter:
    """Append-only, hash-chained, checkpoint-signed audit log."""

    def __init__(
        self,
        path: Path,
        signer: Signer,
        *,
        host: str | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        rotate_bytes: int = 64 * 1024 * 1024,
        fsync: str = "deny_and_checkpoint",
        clock: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise AuditError(f"fsync policy {fsync!r} is not one of {', '.join(FSYNC_POLICIES)}")
        self.path = path
        self.signer = signer
        self.host = host or socket.gethostname()
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.rotate_bytes = rotate_bytes
        self.fsync = fsync
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._seq = 0
        self._hash = GENESIS
        self._pending = 0
        self._last_checkpoint_seq = 0
        self._last_checkpoint_time = 0.0
        self._file_first_seq = 1
        self._size = 0

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> Recovery:
        """Open for appending; continue the chain from the last good record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        discarded, discarded_from = 0, ""
        tail = _scan(self.path) if self.path.exists() else None
        if tail is not None and tail.torn:
            with self.path.open("r+b") as f:
                f.truncate(tail.good_end)
                os.fsync(f.fileno())
            discarded, discarded_from = tail.torn, f"{self.path}:{tail.good_end}"
        active_first = tail.first_seq if tail is not None else None
        if tail is None or tail.last is None:
            rotated = [f for f in sorted_log_files([self.path]) if f != self.path]
            tail = _scan(rotated[-1]) if rotated else tail
        unsealed, checkpoint_seq = 0, 0
        if tail is not None and tail.last is not None:
            self._seq = int(tail.last["seq"])  # type: ignore[call-overload]
            self._hash = str(tail.last["hash"])
            unsealed, checkpoint_seq = tail.unsealed, tail.checkpoint_seq
            self._file_first_seq = active_first or self._seq + 1
        self._pending = unsealed
        self._last_checkpoint_seq = checkpoint_seq
        self._last_checkpoint_time = self._monotonic()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size
        return Recovery(self._seq, self._hash, discarded, discarded_from, unsealed)

    def close(self) -> None:
        """Seal what is unsigned with a final checkpoint, fsync and close."""
        with self._lock:
            if self._fd is None:
                return
            if self._pending:
                self._write_checkpoint("close")
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AuditWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    @property
    def seq(self) -> int:
        """The last sequence number written."""
        return self._seq

    def append(self, decision: Decision) -> Record:
        """Write one decision as a record; checkpoint or rotate when due. Return the record."""
        with self._lock:
            record = self._write(self._build(decision))
            if self._pending >= self.checkpoint_every or self._time_due():
                self._write_checkpoint("count" if self._pending >= self.checkpoint_every else "time")
            if self._size >= self.rotate_bytes:
                self._rotate()
            return record

    def tick(self) -> None:
        """Write a time-based checkpoint if one is due (call this periodically when idle)."""
        with self._lock:
            if self._time_due():
                self._write_checkpoint("time")

    def checkpoint(self) -> Record:
        """Write a checkpoint now."""
        with self._lock:
            return self._write_checkpoint("requested")

    def _time_due(self) -> bool:
        return self._pending > 0 and self._monotonic() - self._last_checkpoint_time >= self.checkpoint_seconds

    def _build(self, d: Decision) -> Record:
        return {
            "v": SCHEMA_VERSION,
            "seq": self._seq + 1,
            "ts": d.ts if d.ts is not None else self._clock(),
            "host": self.host,
            "event": d.kind.value,
            "rule_id": d.rule_id,
            "hook": d.hook,
            "process": d.process.to_json() if d.process is not None else None,
            "verdict": d.verdict,
            "outcome": d.outcome,
            "reason": d.reason,
            "detail": dict(d.detail),
            "prev_hash": self._hash,
        }

    def _write(self, record: Record) -> Record:
        if self._fd is None:
            raise AuditError(f"{self.path}: the audit writer is not open")
        record["hash"] = compute_hash(record)
        line = canonical_json(record) + b"\n"
        written = os.write(self._fd, line)
        if written != len(line):
            raise AuditError(f"{self.path}: short write ({written} of {len(line)} bytes)")
        self._size += written
        self._seq = int(record["seq"])  # type: ignore[call-overload]
        self._hash = str(record["hash"])
        kind = record["event"]
        if kind != Kind.CHECKPOINT:
            self._pending += 1
        if self.fsync == "every_record" or (self.fsync == "deny_and_checkpoint" and kind in SYNC_KINDS):
            os.fsync(self._fd)
        return record

    def _write_checkpoint(self, reason: str) -> Record:
        record = self._build(Decision(Kind.CHECKPOINT, reason=reason))
        record["detail"] = {
            "count": self._pending,
            "prev_checkpoint_seq": self._last_checkpoint_seq,
            "every": self.checkpoint_every,
            "seconds": self.checkpoint_seconds,
        }
        record["key_id"] = self.signer.key_id
        record["signature"] = self.signer.sign(checkpoint_payload(record))
        self._write(record)
        if self._fd is not None:
            os.fsync(self._fd)
        self._pending = 0
        self._last_checkpoint_seq = int(record["seq"])  # type: ignore[call-overload]
        self._last_checkpoint_time = self._monotonic()
        return record

    def _rotate(self) -> None:
        if self._pending:
            self._write_checkpoint("rotate")
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
        target = self.path.with_name(f"{self.path.stem}.{self._file_first_seq:012d}{self.path.suffix}")
        os.rename(self.path, target)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = 0
        self._file_first_seq = self._seq + 1
