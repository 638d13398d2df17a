"""The audit record: a fixed schema, canonical JSON, the hash chain and signed checkpoints.

One record is one JSON line (schema in docs/audit.md)::

    {"v":1,"seq":7,"ts":1700000000123456789,"host":"node-1","event":"deny","rule_id":"block-tmp-exec",
     "hook":"bprm_check_security","process":{"pid":412,"entity_id":"412-1700000000","exe":"/tmp/x",
     "uid":1000,"ppid":300,"parent_exe":"/bin/bash"},"verdict":"deny","outcome":"blocked",
     "reason":"...","detail":{},"prev_hash":"<hash of seq 6>","hash":"<sha256>"}

``hash`` is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of the record without
``hash``; ``prev_hash`` links it to the previous record (64 zeros before the first). A checkpoint is
a record of kind ``checkpoint`` that also carries ``key_id`` and ``signature``: Ed25519 over the
canonical JSON of the record without ``hash`` and ``signature``, so it signs the chain head.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from guard.errors import AuditError

__all__ = [
    "GENESIS",
    "REQUIRED_FIELDS",
    "SCHEMA_VERSION",
    "SYNC_KINDS",
    "Decision",
    "JsonValue",
    "Kind",
    "Line",
    "ProcessIdentity",
    "canonical_json",
    "checkpoint_payload",
    "compute_hash",
    "iter_lines",
    "read_records",
    "sorted_log_files",
]

SCHEMA_VERSION: Final = 1
GENESIS: Final = "0" * 64

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


class Kind(enum.StrEnum):
    """What a record is about."""

    DENY = "deny"
    WOULD_BLOCK = "would_block"
    KILL = "kill"
    ARM = "arm"
    DISARM = "disarm"
    MODE_CHANGE = "mode_change"
    BUNDLE_DEPLOYED = "bundle_deployed"
    BUNDLE_REJECTED = "bundle_rejected"
    BUDGET_EXCEEDED = "budget_exceeded"
    AGENT_START = "agent_start"
    AGENT_STOP = "agent_stop"
    CHECKPOINT = "checkpoint"


#: Kinds fsync'd at once under the default policy (a deny is evidence).
SYNC_KINDS: Final = frozenset({Kind.DENY, Kind.KILL, Kind.BUNDLE_REJECTED, Kind.CHECKPOINT})

REQUIRED_FIELDS: Final = (
    "v", "seq", "ts", "host", "event", "rule_id", "hook", "process", "verdict", "outcome", "reason", "detail",
    "prev_hash", "hash",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """Who did it: the process a decision is about."""

    pid: int
    exe: str = ""
    uid: int | None = None
    entity_id: str = ""
    ppid: int | None = None
    parent_exe: str = ""
    comm: str = ""

    def to_json(self) -> dict[str, JsonValue]:
        """Return the record's ``process`` object."""
        return {
            "pid": self.pid,
            "entity_id": self.entity_id,
            "exe": self.exe,
            "uid": self.uid,
            "ppid": self.ppid,
            "parent_exe": self.parent_exe,
            "comm": self.comm,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """What a component asks the audit trail to record (the writer adds seq, ts, host and hashes)."""

    kind: Kind
    rule_id: str | None = None
    hook: str | None = None
    process: ProcessIdentity | None = None
    verdict: str | None = None
    outcome: str | None = None
    reason: str = ""
    detail: Mapping[str, JsonValue] = field(default_factory=dict)
    ts: int | None = None  # event time in ns; the writer's clock when None


def canonical_json(obj: Mapping[str, object]) -> bytes:
    """Return the canonical JSON bytes that hashes and signatures cover."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def compute_hash(record: Mapping[str, object]) -> str:
    """Return the SHA-256 hex of the record without its ``hash`` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def checkpoint_payload(record: Mapping[str, object]) -> bytes:
    """Return the bytes a checkpoint's signature covers (the record without hash and signature)."""
    return canonical_json({k: v for k, v in record.items() if k not in ("hash", "signature")})


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a log file: its text, where it is, and whether it ended with a newline."""

    path: Path
    number: int
    offset: int
    text: str
    complete: bool


def sorted_log_files(paths: list[Path]) -> list[Path]:
    """Expand directories and an active log into its rotated siblings, in chain order."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(p.glob("*.jsonl"))
        else:
            files += [*sorted(p.parent.glob(f"{p.stem}.*{p.suffix}")), p] if p.suffix == ".jsonl" else [p]
    unique = list(dict.fromkeys(files))
    rotated = [f for f in unique if _rotation_seq(f) is not None]
    active = [f for f in unique if _rotation_seq(f) is None]
    return sorted(rotated, key=lambda f: _rotation_seq(f) or 0) + active


def _rotation_seq(path: Path) -> int | None:
    parts = path.name.split(".")
    if len(parts) >= 3 and parts[-1] == "jsonl" and parts[-2].isdigit():
        return int(parts[-2])
    return None


def iter_lines(files: list[Path]) -> Iterator[Line]:
    """Yield every line of the files in order (the last one may lack its newline: a torn write)."""
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AuditError(f"{path}: cannot read: {exc.strerror}") from exc
        offset = 0
        number = 0
        while offset < len(data):
            end = data.find(b"\n", offset)
            complete = end >= 0
            chunk = data[offset : end if complete else len(data)]
            number += 1
            yield Line(path, number, offset, chunk.decode("utf-8", errors="replace"), complete)
            offset = (end + 1) if complete else len(data)


def read_records(paths: list[Path]) -> list[dict[str, object]]:
    """Return every complete, parseable record of the logs in chain order (verify says what was skipped)."""
    records: list[dict[str, object]] = []
    for line in iter_lines(sorted_log_files(paths)):
        if not line.complete:
            continue
        try:
            record = json.loads(line.text)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("seq"), int):
            records.append(record)
    return records
