"""Select audit records by time, rule, kind, verdict, binary, user and pid, and render them.

Records are the dicts :func:`guard.audit.record.read_records` returns, in chain order. A
:class:`Filter` keeps a record when every criterion that is set matches (criteria given as tuples
match when the record's value is any of them). The time window is half-open: ``since_ns <= ts <
until_ns``, so ``--since 2026-11-22 --until 2026-11-23`` is exactly one day. Checkpoints are chain
bookkeeping, not events: they are left out unless asked for (``include_checkpoints``, or
``checkpoint`` among the kinds).

The table and JSON renderers return text without a trailing newline; NDJSON ends every line with one.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from guard.audit.record import Kind, canonical_json
from guard.errors import AuditError

__all__ = [
    "TABLE_COLUMNS",
    "Filter",
    "clean_text",
    "format_ts",
    "parse_time",
    "render_json",
    "render_ndjson",
    "render_table",
    "select",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S: Final = 1_000_000_000
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RELATIVE: Final = re.compile(r"(\d{1,12})([smhd])")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: The columns of :func:`render_table`, in order.
TABLE_COLUMNS: Final = ("TIME", "SEQ", "EVENT", "RULE", "HOOK", "PID", "EXE", "VERDICT", "OUTCOME")

Record = dict[str, object]


@dataclass(frozen=True, slots=True)
class Filter:
    """Which records to keep; an unset criterion (None or empty) keeps everything."""

    since_ns: int | None = None  # inclusive
    until_ns: int | None = None  # exclusive
    rules: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    exe: str | None = None  # fnmatch glob over process.exe, case-sensitive
    users: tuple[str, ...] = ()  # process.uid as a decimal string
    pids: tuple[int, ...] = ()
    include_checkpoints: bool = False


# ---------------------------------------------------------------------------------------- time


def parse_time(text: str, *, now_ns: int) -> int:
    """Return the UTC epoch nanoseconds that ``text`` names.

    Accepted: ISO-8601 (``2026-11-22T10:00:00Z``, ``2026-11-22T12:00:00+02:00``, a date alone
    ``2026-11-22`` meaning its midnight; no zone means UTC), ``now``, or an age ``90s``, ``15m``,
    ``2h``, ``7d`` meaning that long before ``now_ns``. Anything else raises :class:`AuditError`
    with a one-line message that names the text.
    """
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if value == "now":
        result = now_ns
    elif relative is not None:
        result = now_ns - int(relative.group(1)) * _UNITS[relative.group(2)] * _NS_PER_S
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise AuditError(
                f"bad time {text!r}: expected ISO-8601 (2026-11-22T10:00:00Z or 2026-11-22) "
                "or an age such as 90s, 15m, 2h, 7d"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        delta = parsed - _EPOCH
        result = (delta.days * 86400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000
    if result < 0:
        raise AuditError(f"bad time {text!r}: it lies before 1970-01-01T00:00:00Z")
    return result


def format_ts(ts_ns: object, *, ms: bool = True) -> str:
    """Return a UTC ISO-8601 time (``2026-11-22T10:00:00.123Z``) for epoch ns, or "-" if not one."""
    if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
        return "-"
    try:
        moment = _EPOCH + timedelta(microseconds=ts_ns // 1000)
    except OverflowError:
        return "-"
    if ms:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(ts_ns // 1_000_000) % 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------ select


def _process(record: Mapping[str, object]) -> Mapping[str, object]:
    process = record.get("process")
    return process if isinstance(process, dict) else {}


def _matches(record: Mapping[str, object], flt: Filter, want_checkpoints: bool) -> bool:
    event = record.get("event")
    if event == Kind.CHECKPOINT and not want_checkpoints:
        return False
    ts = record.get("ts")
    if flt.since_ns is not None or flt.until_ns is not None:
        if not isinstance(ts, int):
            return False
        if flt.since_ns is not None and ts < flt.since_ns:
            return False
        if flt.until_ns is not None and ts >= flt.until_ns:
            return False
    if flt.kinds and event not in flt.kinds:
        return False
    if flt.rules and record.get("rule_id") not in flt.rules:
        return False
    if flt.verdicts and record.get("verdict") not in flt.verdicts:
        return False
    process = _process(record)
    if flt.exe is not None:
        exe = process.get("exe")
        if not isinstance(exe, str) or not fnmatch.fnmatchcase(exe, flt.exe):
            return False
    if flt.users:
        uid = process.get("uid")
        if uid is None or isinstance(uid, bool) or str(uid) not in flt.users:
            return False
    if flt.pids:
        pid = process.get("pid")
        if not isinstance(pid, int) or pid not in flt.pids:
            return False
    return True


def select(records: Iterable[Record], flt: Filter) -> list[Record]:
    """Return the records that match ``flt``, in their original (chain) order."""
    want_checkpoints = flt.include_checkpoints or Kind.CHECKPOINT.value in flt.kinds
    return [r for r in records if _matches(r, flt, want_checkpoints)]


# ------------------------------------------------------------------------------------ render


def clean_text(value: object) -> str:
    """Return ``value`` as one printable line ("-" when missing): control characters become escapes.

    Record fields are attacker-influenced (an exe path can hold a newline or a terminal escape).
    """
    if value is None or value == "":
        return "-"
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _outcome(record: Mapping[str, object]) -> str:
    """Return the OUTCOME cell: the outcome, and for a ``decisions_not_recorded`` record its count."""
    outcome = clean_text(record.get("outcome"))
    detail = record.get("detail")
    count = detail.get("count") if isinstance(detail, dict) else None
    if record.get("event") == Kind.DECISIONS_NOT_RECORDED and isinstance(count, int):
        return f"{outcome}: {count}"
    return outcome


def _row(record: Mapping[str, object]) -> tuple[str, ...]:
    process = _process(record)
    return (
        format_ts(record.get("ts")),
        clean_text(record.get("seq")),
        clean_text(record.get("event")),
        clean_text(record.get("rule_id")),
        clean_text(record.get("hook")),
        clean_text(process.get("pid")),
        clean_text(process.get("exe")),
        clean_text(record.get("verdict")),
        _outcome(record),
    )


def render_table(records: list[Record]) -> str:
    """Return an aligned text table of the records and a final ``N records`` line."""
    rows = [TABLE_COLUMNS, *(_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    count = len(records)
    lines.append(f"{count} record{'' if count == 1 else 's'}")
    return "\n".join(lines)


def render_json(records: Iterable[Mapping[str, object]]) -> str:
    """Return the records as one JSON array, indented by 2."""
    return json.dumps(list(records), indent=2, ensure_ascii=False)


def render_ndjson(records: Iterable[Mapping[str, object]]) -> str:
    """Return one canonical JSON line per record, each ending in a newline (the form they have in the log)."""
    return "".join(canonical_json(r).decode() + "\n" for r in records)
