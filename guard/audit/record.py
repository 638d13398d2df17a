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

Reading is streamed and bounded: a line longer than :data:`MAX_LINE_BYTES` or nested deeper than
:data:`MAX_DEPTH` is never parsed, a duplicate key is refused, and :func:`parse_line` says why.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import BinaryIO, Final

from guard.errors import AuditError

__all__ = [
    "GENESIS",
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "REQUIRED_FIELDS",
    "SCHEMA_VERSION",
    "SYNC_KINDS",
    "Decision",
    "JsonValue",
    "Kind",
    "Line",
    "Parsed",
    "ProcessIdentity",
    "canonical_json",
    "checkpoint_payload",
    "compute_hash",
    "is_canonical",
    "iter_lines",
    "iter_records",
    "nesting_depth",
    "parse_line",
    "read_records",
    "sorted_log_files",
]

SCHEMA_VERSION: Final = 1
GENESIS: Final = "0" * 64
#: The longest line a reader parses (and the writer writes), newline excluded.
MAX_LINE_BYTES: Final = 1024 * 1024
#: The deepest JSON nesting a reader parses (and the writer writes); a record has 3 levels.
MAX_DEPTH: Final = 32

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


class Kind(enum.StrEnum):
    """What a record is about."""

    DENY = "deny"
    WOULD_BLOCK = "would_block"
    KILL = "kill"
    #: kernel decisions the decision ring had no room for: counted per (rule, hook, verdict, window)
    DECISIONS_NOT_RECORDED = "decisions_not_recorded"
    #: a governed call the kernel let through without judging its path (over-long, unresolvable)
    UNJUDGED = "unjudged"
    ARM = "arm"
    DISARM = "disarm"
    MODE_CHANGE = "mode_change"
    BUNDLE_DEPLOYED = "bundle_deployed"
    BUNDLE_REJECTED = "bundle_rejected"
    BUDGET_EXCEEDED = "budget_exceeded"
    AGENT_START = "agent_start"
    AGENT_STOP = "agent_stop"
    RECOVERED = "recovered"
    CHECKPOINT = "checkpoint"


#: Kinds fsync'd at once under the default policy (a deny is evidence).
SYNC_KINDS: Final = frozenset(
    {Kind.DENY, Kind.KILL, Kind.DECISIONS_NOT_RECORDED, Kind.BUNDLE_REJECTED, Kind.RECOVERED, Kind.CHECKPOINT}
)

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
    """One line of a log file: its bytes (newline excluded), where it is, and whether it ended with one.

    A line over :data:`MAX_LINE_BYTES` is not kept: ``raw`` is empty and ``too_long`` is set;
    ``size`` is always its length on disk (newline excluded).
    """

    path: Path
    number: int
    offset: int
    raw: bytes
    complete: bool
    size: int
    too_long: bool = False

    @property
    def text(self) -> str:
        """The line as text (undecodable bytes replaced)."""
        return self.raw.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one line holds: a record, or why it is not one (``kind``: ``corrupt`` or ``noncanonical``)."""

    record: dict[str, object] | None
    kind: str = ""
    message: str = ""


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


def iter_lines(files: list[Path], *, max_line: int = MAX_LINE_BYTES) -> Iterator[Line]:
    """Yield every line of the files in order, streamed (the last may lack its newline: a torn write)."""
    for path in files:
        try:
            with path.open("rb") as f:
                yield from _file_lines(path, f, max_line)
        except OSError as exc:
            raise AuditError(f"{path}: cannot read: {exc.strerror}") from exc


def _file_lines(path: Path, f: BinaryIO, max_line: int) -> Iterator[Line]:
    offset = 0
    number = 0
    while chunk := f.readline(max_line + 1):
        number += 1
        size, tail = len(chunk), chunk
        while not tail.endswith(b"\n") and size > max_line:  # over the limit: skip to its end
            tail = f.readline(64 * 1024)
            if not tail:
                break
            size += len(tail)
        complete = tail.endswith(b"\n")
        length = size - complete
        too_long = length > max_line
        yield Line(path, number, offset, b"" if too_long else chunk[:length], complete, length, too_long)
        offset += size


_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS: Final = re.compile(rb"[\[\]{}]")


def nesting_depth(raw: bytes) -> int:
    """Return how deep JSON text nests arrays and objects (strings do not count), without parsing it."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return raw.count(b"{") + raw.count(b"[")  # an upper bound, enough below the limit
    brackets = _BRACKETS.findall(_STRING.sub(b"", raw))
    return max(accumulate(1 if b in (b"{", b"[") else -1 for b in brackets), default=0)


def _constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_line(line: Line) -> Parsed:
    """Parse a line into a record, refusing one too long, too deep, not UTF-8 or with a duplicate key."""
    if line.too_long:
        return Parsed(None, "corrupt", f"a line of {line.size} bytes, over the limit of {MAX_LINE_BYTES}")
    try:
        text = line.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Parsed(None, "corrupt", f"not UTF-8 at byte {exc.start}")
    if nesting_depth(line.raw) > MAX_DEPTH:
        return Parsed(None, "corrupt", f"JSON nested deeper than {MAX_DEPTH} levels")
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        obj: dict[str, object] = {}
        for key, value in items:
            if key in obj:
                duplicates.append(key)
                raise ValueError(f"duplicate key {key!r}")
            obj[key] = value
        return obj

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=_constant)
    except ValueError as exc:
        if duplicates:
            return Parsed(
                None, "noncanonical", f"duplicate key {duplicates[0]!r}: readers disagree on its value"
            )
        return Parsed(None, "corrupt", f"not JSON: {exc}")
    if not isinstance(value, dict):
        return Parsed(None, "corrupt", f"not a JSON object but {type(value).__name__}")
    return Parsed(value)


def is_canonical(record: Mapping[str, object], raw: bytes) -> bool:
    """Tell whether ``raw`` is byte for byte the canonical JSON of ``record`` (all the writer writes)."""
    try:
        return canonical_json(record) == raw
    except (ValueError, UnicodeEncodeError):  # inf from a huge number, a lone surrogate
        return False


def iter_records(paths: list[Path]) -> Iterator[dict[str, object]]:
    """Yield every complete, parseable record of the logs in chain order, streamed (verify names the rest)."""
    for line in iter_lines(sorted_log_files(paths)):
        if not line.complete:
            continue
        record = parse_line(line).record
        if record is not None and isinstance(record.get("seq"), int):
            yield record


def read_records(paths: list[Path]) -> list[dict[str, object]]:
    """Return :func:`iter_records` as a list."""
    return list(iter_records(paths))
