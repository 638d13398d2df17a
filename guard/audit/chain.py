"""The audit writer: appends hash-chained records, signs checkpoints, rotates, survives a crash.

Each record is written with a single ``write(2)`` of one complete line to a file opened with
``O_APPEND``; a crash can tear at most the line being written. One process writes a trail: ``open()``
takes an exclusive ``flock`` on ``<trail>.lock`` (holding the writer's pid) for the writer's
lifetime, and a second writer fails with an :class:`AuditError` naming the holder. ``open()`` then
finds the last complete record (in the active file, else the newest rotated one), cuts a torn tail
off, records what it cut in a ``recovered`` record, and the chain continues from there.
Checkpoints (signed chain heads) are written every N records or T seconds, before a rotation and
on ``close()``. Rotation renames the active file to ``<stem>.<first seq, 12 digits>.jsonl``; the
chain runs on across files. A ``detail`` too large or too deep for readers is replaced by its size
and digest. The writer never goes through the logging system.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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
    MAX_DEPTH,
    MAX_LINE_BYTES,
    SCHEMA_VERSION,
    SYNC_KINDS,
    Decision,
    Kind,
    canonical_json,
    checkpoint_payload,
    compute_hash,
    iter_lines,
    nesting_depth,
    parse_line,
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
    """Read a log once, streamed: its last complete record, a torn tail, and what is still unsigned."""
    last: Record | None = None
    good_end, torn = 0, 0
    first_seq: int | None = None
    unsealed, checkpoint_seq = 0, 0
    for line in iter_lines([path]):
        if not line.complete:
            torn = line.size
            break
        good_end = line.offset + line.size + 1
        last = parse_line(line).record or {}
        seq = last.get("seq")
        if not isinstance(seq, int):
            continue
        first_seq = seq if first_seq is None else first_seq
        if last.get("event") == Kind.CHECKPOINT:
            unsealed, checkpoint_seq = 0, seq
        else:
            unsealed += 1
    if last is not None and not isinstance(last.get("seq"), int):
        raise AuditIntegrityError(
            f"{path}: the last complete line is not a record with a seq; "
            "run `guardctl audit verify` before writing"
        )
    return _Tail(last, good_end, torn, first_seq, unsealed, checkpoint_seq)


def _holder(lock_fd: int) -> str:
    """Return who holds a writer lock, as its lock file says (``pid N (comm)``), or "unknown"."""
    try:
        pid = int(os.pread(lock_fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return "unknown"
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return f"pid {pid}"
    return f"pid {pid} ({comm})"


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
        self.lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None
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
        """Take the writer lock, open for appending, and continue the chain from the last good record.

        A torn tail is cut off and recorded in a ``recovered`` record (``detail.discarded_bytes``).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._acquire()
        try:
            return self._open_locked()
        except BaseException:
            self._release()
            raise

    def _acquire(self) -> None:
        """Take the exclusive writer lock beside the trail, or fail naming its holder."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise AuditError(f"{self.lock_path}: cannot open the writer lock: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            raise AuditError(
                f"{self.path}: another writer holds the audit trail ({holder}, lock {self.lock_path}); "
                "one process appends to a trail: go through the running agent or stop that writer"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def _open_locked(self) -> Recovery:
        discarded, discarded_from, torn_bytes = 0, "", b""
        tail = _scan(self.path) if self.path.exists() else None
        if tail is not None and tail.torn:
            with self.path.open("r+b") as f:
                f.seek(tail.good_end)
                torn_bytes = f.read(tail.torn)
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
        recovery = Recovery(self._seq, self._hash, discarded, discarded_from, unsealed)
        if discarded:
            self.append(_recovered(recovery, torn_bytes))
        return recovery

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
            self._release()

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
        _bound(record)
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


#: How much of a torn tail the ``recovered`` record keeps as text (the rest is in its sha256).
RECOVERED_HEAD_BYTES: Final = 1024


def _recovered(recovery: Recovery, torn: bytes) -> Decision:
    """Return the record of a torn tail cut off at open: how many bytes, where, and what they were."""
    return Decision(
        Kind.RECOVERED,
        reason=f"torn tail cut off at open: {recovery.discarded_bytes} bytes after seq {recovery.last_seq}",
        detail={
            "discarded_bytes": recovery.discarded_bytes,
            "discarded_from": recovery.discarded_from,
            "after_seq": recovery.last_seq,
            "discarded_sha256": hashlib.sha256(torn).hexdigest(),
            "discarded_head": torn[:RECOVERED_HEAD_BYTES].decode("utf-8", errors="replace"),
        },
    )


def _bound(record: Record) -> None:
    """Keep a record within what readers parse: an oversize or too deep ``detail`` becomes its digest."""
    detail = canonical_json({"d": record["detail"]})
    if len(detail) <= MAX_LINE_BYTES // 2 and nesting_depth(detail) <= MAX_DEPTH - 2:
        return
    record["detail"] = {
        "detail_dropped": {
            "bytes": len(detail),
            "sha256": hashlib.sha256(detail).hexdigest(),
            "why": f"over {MAX_LINE_BYTES // 2} bytes or {MAX_DEPTH - 2} levels",
        }
    }
    if len(canonical_json(record)) > MAX_LINE_BYTES:
        raise AuditError(f"a {record['event']} record is over {MAX_LINE_BYTES} bytes even without its detail")
