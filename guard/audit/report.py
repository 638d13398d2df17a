"""Summarise an audit trail: what was blocked, by which rule, binary and user, when, and whether it verifies.

:func:`build_report` turns records (as :func:`guard.audit.record.read_records` returns them) and an
optional :class:`~guard.audit.verify.VerifyResult` into JSON-ready data; :func:`render_text`,
:func:`render_json` and :func:`render_html` present it. The report's shape::

    generated_at   UTC ISO time the report was built
    period         first / last record time, the requested since / until window, hosts
    totals         records, decisions (deny + would_block + kill) and a count for every kind
    by_rule        {rule_id: {deny, would_block, kill, total}}, largest total first
    by_exe         the same per binary (process.exe)
    by_user        the same per uid (as a string)
    by_hour        {"YYYY-MM-DDTHH:00Z": {<kind>: count, ..., total}}, every hour from first to last
    top_blocked    [{rule, exe, deny, kill, count}]: the 10 (rule, binary) pairs blocked most
    mode_changes   [{ts, seq, from, to, uid, reason, rule}]
    bundles        [{ts, seq, event, version, sha256, reason}]
    verification   {status: "ok" | "failed" | "not verified", ok, problem, records, checkpoints, ...}

Only the decision kinds (deny, would_block, kill) feed the per-rule, per-binary, per-user and
top-blocked statistics; every other kind (agent_start/stop, arm/disarm, budget_exceeded, ...)
counts in the totals and the hourly buckets. Checkpoints are chain bookkeeping: the verification
section counts them, nothing else does.

In the HTML page every number the JSON holds sits in an element whose ``data-metric`` attribute
names its JSON path, dot-separated (``by_rule.block-tmp-exec.deny``, ``top_blocked.0.count``);
a key may itself contain dots, so resolve a path against the JSON by trying the keys that fit.
All record-derived text is escaped: rule ids, paths and reasons may be hostile.

Size: over 700 lines on purpose: one report built once and rendered three ways; the HTML page
(escaped, with ``data-metric`` paths) is most of it and shares every accessor with the text and JSON.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from guard.audit.query import clean_text, format_ts
from guard.audit.record import Kind
from guard.audit.verify import VerifyResult
from guard.errors import AuditError

__all__ = [
    "DECISION_KINDS",
    "MAX_HOURS",
    "TOP_BLOCKED",
    "build_report",
    "render_html",
    "render_json",
    "render_text",
]

#: Kinds that are enforcement decisions (the "blocked / would-block" statistics).
DECISION_KINDS: Final = (Kind.DENY.value, Kind.WOULD_BLOCK.value, Kind.KILL.value)
#: Kinds that actually stopped something.
BLOCKING_KINDS: Final = (Kind.DENY.value, Kind.KILL.value)
#: How many (rule, binary) pairs ``top_blocked`` lists.
TOP_BLOCKED: Final = 10
#: The most hourly buckets a report holds (400 days); narrow a longer trail with since / until.
MAX_HOURS: Final = 24 * 400

_HOUR_NS: Final = 3600 * 1_000_000_000
_NONE: Final = "(none)"
_UNKNOWN: Final = "(unknown)"
_RESERVED: Final = frozenset({"records", "decisions", "total"})  # report keys next to the kind counts

Record = Mapping[str, object]
Report = dict[str, Any]


# ---------------------------------------------------------------------------------------- build


def _ts(record: Record) -> int | None:
    ts = record.get("ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


def _event(record: Record) -> str:
    """Return the record's kind; a missing one, or one that would clash with a report key, is "(unknown)"."""
    event = record.get("event")
    return event if isinstance(event, str) and event and event not in _RESERVED else _UNKNOWN


def _process(record: Record) -> Mapping[str, object]:
    process = record.get("process")
    return process if isinstance(process, dict) else {}


def _detail(record: Record) -> Mapping[str, object]:
    detail = record.get("detail")
    return detail if isinstance(detail, dict) else {}


def _label(value: object, missing: str) -> str:
    if value is None or value == "" or isinstance(value, dict | list):
        return missing
    return value if isinstance(value, str) else str(value)


def _scalar(value: object) -> object:
    """Return a JSON scalar (or None) for a detail value; a structure becomes compact JSON text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _hour_key(ts: int) -> str:
    return format_ts(ts - ts % _HOUR_NS, ms=False)[:13] + ":00Z"


def _kind_order(present: Iterable[str]) -> list[str]:
    """Return every known kind but checkpoint in schema order, then unknown ones present, sorted."""
    known = [k.value for k in Kind if k is not Kind.CHECKPOINT]
    return known + sorted(set(present) - set(known) - {Kind.CHECKPOINT.value})


def _grouped(events: list[Record], key: Callable[[Record], str]) -> dict[str, dict[str, int]]:
    groups: dict[str, dict[str, int]] = {}
    for record in events:
        event = _event(record)
        if event not in DECISION_KINDS:
            continue
        entry = groups.setdefault(key(record), {**dict.fromkeys(DECISION_KINDS, 0), "total": 0})
        entry[event] += 1
        entry["total"] += 1
    return dict(sorted(groups.items(), key=lambda item: (-item[1]["total"], item[0])))


def _by_hour(events: list[Record], kinds: list[str]) -> dict[str, dict[str, int]]:
    stamps = [ts for ts in map(_ts, events) if ts is not None]
    if not stamps:
        return {}
    first, last = min(stamps), max(stamps)
    first -= first % _HOUR_NS
    hours = (last - first) // _HOUR_NS + 1
    if hours > MAX_HOURS:
        raise AuditError(
            f"the records span {hours} hours ({format_ts(first)} .. {format_ts(last)}), more than a report "
            f"holds ({MAX_HOURS}); narrow it with since / until"
        )
    buckets = {_hour_key(first + i * _HOUR_NS): {**dict.fromkeys(kinds, 0), "total": 0} for i in range(hours)}
    for record in events:
        ts = _ts(record)
        if ts is None:
            continue
        bucket = buckets[_hour_key(ts)]
        bucket[_event(record)] = bucket.get(_event(record), 0) + 1
        bucket["total"] += 1
    return buckets


def _top_blocked(events: list[Record]) -> list[dict[str, Any]]:
    pairs: Counter[tuple[str, str, str]] = Counter()
    for record in events:
        event = _event(record)
        if event in BLOCKING_KINDS:
            rule = _label(record.get("rule_id"), _NONE)
            exe = _label(_process(record).get("exe"), _UNKNOWN)
            pairs[(rule, exe, event)] += 1
    totals: Counter[tuple[str, str]] = Counter()
    for (rule, exe, _), count in pairs.items():
        totals[(rule, exe)] += count
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:TOP_BLOCKED]
    return [
        {
            "rule": rule,
            "exe": exe,
            "deny": pairs[(rule, exe, Kind.DENY.value)],
            "kill": pairs[(rule, exe, Kind.KILL.value)],
            "count": count,
        }
        for (rule, exe), count in ranked
    ]


def _mode_change(record: Record) -> dict[str, Any]:
    detail = _detail(record)
    uid = detail.get("uid", _process(record).get("uid"))
    return {
        "ts": format_ts(record.get("ts")),
        "seq": record.get("seq"),
        "from": _scalar(detail.get("from")),
        "to": _scalar(detail.get("to")),
        "uid": _scalar(uid),
        "reason": _scalar(detail.get("reason") or record.get("reason") or None),
        "rule": _scalar(record.get("rule_id") or None),
    }


def _bundle(record: Record) -> dict[str, Any]:
    detail = _detail(record)
    return {
        "ts": format_ts(record.get("ts")),
        "seq": record.get("seq"),
        "event": _event(record),
        "version": _scalar(detail.get("version")),
        "sha256": _scalar(detail.get("sha256")),
        "reason": _scalar(detail.get("reason") or record.get("reason") or None),
    }


def _verification(result: VerifyResult | None) -> dict[str, Any]:
    if result is None:
        return {"status": "not verified", "ok": None, "problem": None}
    return {
        "status": "ok" if result.ok else "failed",
        "ok": result.ok,
        "problem": None if result.problem is None else str(result.problem),
        "problem_kind": None if result.problem is None else result.problem.kind,
        "records": result.records,
        "checkpoints": result.checkpoints,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "last_checkpoint_seq": result.last_checkpoint_seq,
        "unsealed": result.unsealed,
        "key_ids": sorted(result.key_ids),
        "files": list(result.files),
    }


def build_report(
    records: Iterable[Record],
    verification: VerifyResult | None,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    generated_ns: int | None = None,
) -> Report:
    """Return the JSON-ready report of ``records`` (those in ``[since_ns, until_ns)`` when given).

    ``verification`` is the result of verifying the logs the records came from, or None when
    they were not verified. ``generated_ns`` fixes the "generated at" time (default: now).
    """
    events: list[Record] = []
    for record in records:
        if _event(record) == Kind.CHECKPOINT.value:
            continue
        if since_ns is not None or until_ns is not None:
            ts = _ts(record)
            if (
                ts is None
                or (since_ns is not None and ts < since_ns)
                or (until_ns is not None and ts >= until_ns)
            ):
                continue
        events.append(record)
    counts = Counter(_event(r) for r in events)
    kinds = _kind_order(counts)
    stamps = [ts for ts in map(_ts, events) if ts is not None]
    hour_kinds = [*DECISION_KINDS, *(k for k in kinds if counts[k] and k not in DECISION_KINDS)]
    hosts = sorted({str(r["host"]) for r in events if isinstance(r.get("host"), str)})
    return {
        "generated_at": format_ts(generated_ns if generated_ns is not None else time.time_ns(), ms=False),
        "period": {
            "first": format_ts(min(stamps)) if stamps else None,
            "last": format_ts(max(stamps)) if stamps else None,
            "since": format_ts(since_ns) if since_ns is not None else None,
            "until": format_ts(until_ns) if until_ns is not None else None,
            "hosts": hosts,
        },
        "totals": {
            "records": len(events),
            "decisions": sum(counts[k] for k in DECISION_KINDS),
            **{k: counts[k] for k in kinds},
        },
        "by_rule": _grouped(events, lambda r: _label(r.get("rule_id"), _NONE)),
        "by_exe": _grouped(events, lambda r: _label(_process(r).get("exe"), _UNKNOWN)),
        "by_user": _grouped(events, lambda r: _label(_process(r).get("uid"), _UNKNOWN)),
        "by_hour": _by_hour(events, hour_kinds),
        "top_blocked": _top_blocked(events),
        "mode_changes": [_mode_change(r) for r in events if _event(r) == Kind.MODE_CHANGE.value],
        "bundles": [
            _bundle(r)
            for r in events
            if _event(r) in (Kind.BUNDLE_DEPLOYED.value, Kind.BUNDLE_REJECTED.value)
        ],
        "verification": _verification(verification),
    }


# ------------------------------------------------------------------------------------ text / json


def render_json(report: Report) -> str:
    """Return the report as indented JSON."""
    return json.dumps(report, indent=2, ensure_ascii=False)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text_table(headers: list[str], rows: list[list[object]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    cells = [headers, *([clean_text(v) for v in row] for row in rows)]
    numeric = [all(_is_number(row[i]) or row[i] is None for row in rows) for i in range(len(headers))]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = []
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        out.append(("  " + "  ".join(parts)).rstrip())
    return out


def _verification_line(v: Mapping[str, Any]) -> str:
    if v.get("status") == "not verified":
        return "not verified"
    facts = (
        f"{v.get('records')} records, {v.get('checkpoints')} checkpoints, unsealed tail {v.get('unsealed')}"
    )
    if v.get("ok"):
        return f"OK ({facts})"
    return f"FAILED: {clean_text(v.get('problem'))} ({facts})"


def _group_rows(groups: Mapping[str, Mapping[str, int]]) -> list[list[object]]:
    return [[key, *(entry.get(k, 0) for k in (*DECISION_KINDS, "total"))] for key, entry in groups.items()]


def _hour_columns(report: Report) -> list[str]:
    buckets: Mapping[str, Mapping[str, int]] = report.get("by_hour", {})
    first = next(iter(buckets.values()), {})
    return [k for k in first if k != "total"]


def render_text(report: Report) -> str:
    """Return the report as plain text for a terminal."""
    period = report.get("period", {})
    totals: Mapping[str, int] = report.get("totals", {})
    window = ""
    if period.get("since") or period.get("until"):
        window = f"  (window {period.get('since') or '-'} .. {period.get('until') or '-'})"
    lines = [
        "Audit report",
        f"generated     {report.get('generated_at', '-')}",
        f"period        {period.get('first') or '-'} .. {period.get('last') or '-'}{window}",
        f"hosts         {clean_text(', '.join(period.get('hosts', [])))}",
        f"verification  {_verification_line(report.get('verification', {}))}",
        "",
        "Totals",
        *_text_table(
            ["KIND", "COUNT"], [[k, v] for k, v in totals.items() if v or k in ("records", "decisions")]
        ),
    ]
    decision_headers = ["DENY", "WOULD_BLOCK", "KILL", "TOTAL"]
    for title, key, column in (
        ("By rule", "by_rule", "RULE"),
        ("By binary", "by_exe", "EXE"),
        ("By user", "by_user", "UID"),
    ):
        lines += ["", title, *_text_table([column, *decision_headers], _group_rows(report.get(key, {})))]
    hour_kinds = _hour_columns(report)
    hour_rows = [
        [hour, *(b.get(k, 0) for k in hour_kinds), b.get("total", 0)]
        for hour, b in report.get("by_hour", {}).items()
    ]
    lines += [
        "",
        "By hour (UTC)",
        *_text_table(["HOUR", *(k.upper() for k in hour_kinds), "TOTAL"], hour_rows),
    ]
    top = [[t["rule"], t["exe"], t["deny"], t["kill"], t["count"]] for t in report.get("top_blocked", [])]
    lines += ["", "Top blocked (rule, binary)", *_text_table(["RULE", "EXE", "DENY", "KILL", "COUNT"], top)]
    modes = [
        [m["ts"], m["from"], m["to"], m["uid"], m["rule"], m["reason"]]
        for m in report.get("mode_changes", [])
    ]
    lines += ["", "Mode changes", *_text_table(["TIME", "FROM", "TO", "UID", "RULE", "REASON"], modes)]
    bundles = [
        [b["ts"], b["event"], b["version"], b["sha256"], b["reason"]] for b in report.get("bundles", [])
    ]
    lines += ["", "Bundle history", *_text_table(["TIME", "EVENT", "VERSION", "SHA256", "REASON"], bundles)]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ html

_COLORS: Final = {"deny": "#c62828", "would_block": "#f0a202", "kill": "#5d1049"}

_CSS: Final = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; --panel:#f6f8fa; --accent:#0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--panel); color: var(--fg);
  font: 14px/1.45 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 32px 48px; }
header { display: flex; align-items: flex-start; justify-content: space-between; gap: 24px;
  border-bottom: 3px solid var(--accent); padding-bottom: 16px; margin-bottom: 24px; }
h1 { margin: 0 0 6px; font-size: 26px; font-weight: 600; letter-spacing: -0.01em; }
h2 { margin: 0 0 12px; font-size: 17px; font-weight: 600; }
.meta { margin: 2px 0; color: var(--muted); }
.meta b { color: var(--fg); font-weight: 600; }
.badge { display: inline-block; padding: 8px 16px; border-radius: 6px; font-weight: 700;
  font-size: 15px; color: #fff; white-space: nowrap; }
.badge.ok { background: #1a7f37; }
.badge.failed { background: #cf222e; }
.badge.unverified { background: #6e7781; }
.problem { margin: 8px 0 0; max-width: 520px; color: #cf222e; font-weight: 600; word-break: break-word; }
section { background: var(--bg); border: 1px solid var(--line); border-radius: 8px;
  padding: 18px 20px; margin-bottom: 20px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; background: var(--panel); }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; }
.card .value { font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card.deny .value { color: #c62828; } .card.would_block .value { color: #b37400; }
.card.kill .value { color: #5d1049; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 20px; }
.grid2 > section { margin-bottom: 0; }
.grid2 + section, .grid2 { margin-bottom: 20px; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--panel); font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em;
  color: var(--muted); font-weight: 600; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th.num { width: 1%; white-space: nowrap; padding-left: 24px; }
table.kv th { width: 220px; background: var(--panel); }
table.kv td.num { text-align: left; }
td.code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px;
  word-break: break-all; }
td.zero { color: #b0b7be; }
td.time { white-space: nowrap; word-break: normal; }
td.hash { font-size: 12px; max-width: 300px; }
table.dense th.num { white-space: normal; width: auto; padding-left: 8px; }
table.dense th, table.dense td { padding: 5px 8px; }
.empty { color: var(--muted); font-style: italic; margin: 4px 0; }
.scroll { max-height: 520px; overflow-y: auto; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 11px -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; fill: #59636e; }
svg .axis { stroke: #8c959f; stroke-width: 1; }
svg .grid { stroke: #e6eaef; stroke-width: 1; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
@media print { body { background: #fff; } section { break-inside: avoid; } .scroll { max-height: none; } }
"""


def _e(value: object) -> str:
    """Escape record-derived text for HTML (after making it one printable line)."""
    return html.escape(clean_text(value), quote=True)


def _attr(text: str) -> str:
    """Escape a JSON path for an attribute value, keeping control characters as character references."""
    escaped = html.escape(text, quote=True)
    return "".join(f"&#{ord(c)};" if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F else c for c in escaped)


def _num(path: str, value: object, tag: str = "td", cls: str = "num", *, dim_zero: bool = True) -> str:
    """Return a cell for a JSON value; a number carries its JSON path in ``data-metric``."""
    if _is_number(value):
        zero = " zero" if value == 0 and tag == "td" and dim_zero else ""
        return f'<{tag} class="{cls}{zero}" data-metric="{_attr(path)}">{value}</{tag}>'
    return f'<{tag} class="{cls}">{_e(value)}</{tag}>'


def _cell(value: object, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(value)}</td>' if cls else f"<td>{_e(value)}</td>"


def _table(headers: list[tuple[str, bool]], rows: list[str], empty: str, cls: str = "") -> str:
    if not rows:
        return f'<p class="empty">{html.escape(empty)}</p>'
    head = "".join(
        f'<th class="num">{html.escape(h)}</th>' if num else f"<th>{html.escape(h)}</th>"
        for h, num in headers
    )
    table = f'<table class="{cls}">' if cls else "<table>"
    return f"{table}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _group_section(title: str, key: str, column: str, report: Report, code: bool) -> str:
    groups: Mapping[str, Mapping[str, int]] = report.get(key, {})
    rows = [
        "<tr>"
        + _cell(name, "code" if code else "")
        + "".join(_num(f"{key}.{name}.{k}", entry.get(k)) for k in (*DECISION_KINDS, "total"))
        + "</tr>"
        for name, entry in groups.items()
    ]
    headers = [(column, False), *((k, True) for k in DECISION_KINDS), ("total", True)]
    body = _table(headers, rows, "No deny, would_block or kill decisions.")
    section_id = key.replace("_", "-")
    return (
        f'<section id="{section_id}"><h2>{html.escape(title)}</h2><div class="scroll">{body}</div></section>'
    )


def _nice_step(peak: int) -> int:
    """Return a 1/2/5 x 10^n tick step giving about five ticks up to ``peak``."""
    raw = max(peak, 1) / 5
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return max(1, int(factor * power))
    return max(1, int(10 * power))


def _timeline(report: Report) -> str:
    buckets: Mapping[str, Mapping[str, int]] = report.get("by_hour", {})
    width, height = 1160, 320
    left, right, top, bottom = 56, 16, 40, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    hours = list(buckets)
    peak = max((sum(b.get(k, 0) for k in DECISION_KINDS) for b in buckets.values()), default=0)
    step = _nice_step(peak)
    y_max = max(step, math.ceil(peak / step) * step)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Decisions per hour: deny, would_block and kill, stacked">'
    ]
    # legend
    x = left
    for kind in DECISION_KINDS:
        parts.append(f'<rect x="{x}" y="12" width="12" height="12" rx="2" fill="{_COLORS[kind]}"/>')
        parts.append(f'<text x="{x + 18}" y="22">{kind}</text>')
        x += 110
    parts.append(f'<text x="{width - right}" y="22" text-anchor="end">decisions per hour (UTC)</text>')
    # y axis, grid and labels
    for tick in range(0, y_max + 1, step):
        y = top + plot_h - tick * plot_h / y_max
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/>')
    parts.append(
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"/>'
    )
    parts.append(
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">decisions</text>'
    )
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">hour (UTC)</text>')
    if not hours or peak == 0:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle">'
            "no deny, would_block or kill decisions in this period</text>"
        )
    slot = plot_w / max(len(hours), 1)
    bar = max(1.0, slot * 0.78)
    label_every = max(1, math.ceil(len(hours) / 12))
    for i, hour in enumerate(hours):
        bucket = buckets[hour]
        x0 = left + i * slot + (slot - bar) / 2
        base = float(top + plot_h)
        for kind in DECISION_KINDS:
            count = bucket.get(kind, 0)
            if not count:
                continue
            h = count * plot_h / y_max
            base -= h
            parts.append(
                f'<rect x="{x0:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{_COLORS[kind]}">'
                f"<title>{html.escape(hour)} {kind}: {count}</title></rect>"
            )
        if i % label_every == 0:
            cx = left + i * slot + slot / 2
            parts.append(
                f'<line class="axis" x1="{cx:.1f}" y1="{top + plot_h}" x2="{cx:.1f}" '
                f'y2="{top + plot_h + 4}"/>'
            )
            label = hour[5:10] + " " + hour[11:16]
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{html.escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _verification_html(v: Mapping[str, Any]) -> tuple[str, str]:
    """Return the header badge and the verification section."""
    status = v.get("status")
    if status == "not verified":
        badge = '<div class="badge unverified">NOT VERIFIED</div>'
        return badge, (
            '<section id="verification"><h2>Verification</h2>'
            '<p class="empty">The logs were not verified for this report.</p></section>'
        )
    if v.get("ok"):
        badge = '<div class="badge ok">&#10003; Chain verified OK</div>'
    else:
        badge = (
            '<div><div class="badge failed">&#10007; Verification FAILED</div>'
            f'<p class="problem">{_e(v.get("problem"))}</p></div>'
        )
    rows = [
        f"<tr><th>status</th><td>{_e(str(status).upper())}</td></tr>",
        f"<tr><th>problem</th><td>{_e(v.get('problem'))}</td></tr>",
    ]
    for key in ("records", "checkpoints", "unsealed", "first_seq", "last_seq", "last_checkpoint_seq"):
        rows.append(
            f"<tr><th>{html.escape(key.replace('_', ' '))}</th>{_num(f'verification.{key}', v.get(key))}</tr>"
        )
    rows.append(f'<tr><th>key ids</th><td class="code">{_e(", ".join(v.get("key_ids", [])))}</td></tr>')
    rows.append(f'<tr><th>files</th><td class="code">{_e(", ".join(v.get("files", [])))}</td></tr>')
    table = f'<table class="kv"><tbody>{"".join(rows)}</tbody></table>'
    section = f'<section id="verification"><h2>Verification</h2>{table}</section>'
    return badge, section


def render_html(report: Report) -> str:
    """Return the report as one self-contained HTML page (inline CSS and SVG, no scripts, no links)."""
    period = report.get("period", {})
    totals: Mapping[str, int] = report.get("totals", {})
    badge, verification = _verification_html(report.get("verification", {}))
    window = ""
    if period.get("since") or period.get("until"):
        window = f" &middot; window <b>{_e(period.get('since'))}</b> to <b>{_e(period.get('until'))}</b>"
    hosts = ", ".join(period.get("hosts", [])) or "-"

    cards = "".join(
        f'<div class="card {html.escape(k)}"><div class="label">{html.escape(k.replace("_", " "))}</div>'
        f"{_num(f'totals.{k}', totals.get(k), 'div', 'value')}</div>"
        for k in ("records", "decisions", *DECISION_KINDS)
        if k in totals
    )
    total_rows = [f"<tr><td>{_e(k)}</td>{_num(f'totals.{k}', v)}</tr>" for k, v in totals.items()]

    hour_kinds = _hour_columns(report)
    hour_rows = [
        f'<tr><td class="code time">{_e(hour)}</td>'
        + "".join(_num(f"by_hour.{hour}.{k}", b.get(k)) for k in (*hour_kinds, "total"))
        + "</tr>"
        for hour, b in report.get("by_hour", {}).items()
    ]
    top_rows = [
        f'<tr><td class="num">{i + 1}</td>'
        f"{_cell(t['rule'], 'code')}{_cell(t['exe'], 'code')}"
        f"{_num(f'top_blocked.{i}.deny', t['deny'])}{_num(f'top_blocked.{i}.kill', t['kill'])}"
        f"{_num(f'top_blocked.{i}.count', t['count'])}</tr>"
        for i, t in enumerate(report.get("top_blocked", []))
    ]
    mode_rows = [
        f"<tr>{_cell(m['ts'], 'code time')}{_num(f'mode_changes.{i}.seq', m['seq'])}"
        f"{_cell(m['from'])}{_cell(m['to'])}"
        f"{_num(f'mode_changes.{i}.uid', m['uid'], dim_zero=False)}"
        f"{_cell(m['rule'], 'code')}{_cell(m['reason'])}</tr>"
        for i, m in enumerate(report.get("mode_changes", []))
    ]
    bundle_rows = [
        f"<tr>{_cell(b['ts'], 'code time')}{_num(f'bundles.{i}.seq', b['seq'])}{_cell(b['event'])}"
        f"{_num(f'bundles.{i}.version', b['version'])}{_cell(b['sha256'], 'code hash')}"
        f"{_cell(b['reason'])}</tr>"
        for i, b in enumerate(report.get("bundles", []))
    ]

    title = f"Audit report {period.get('first') or ''} to {period.get('last') or ''}".strip()
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        "<header><div>",
        "<h1>Kestrel Guard &mdash; audit report</h1>",
        f'<p class="meta">Generated at <b>{_e(report.get("generated_at"))}</b></p>',
        f'<p class="meta">Period <b>{_e(period.get("first"))}</b> to '
        f"<b>{_e(period.get('last'))}</b>{window}</p>",
        f'<p class="meta">Hosts <b>{_e(hosts)}</b></p>',
        f"</div>{badge}</header>",
        f'<section id="summary"><h2>Summary</h2><div class="cards">{cards}</div></section>',
        f'<section id="timeline"><h2>Timeline</h2>{_timeline(report)}</section>',
        verification,
        '<div class="grid2">',
        '<section id="totals"><h2>Totals by kind</h2>'
        + _table([("kind", False), ("count", True)], total_rows, "No records.")
        + "</section>",
        '<section id="top-blocked"><h2>Top blocked (rule, binary)</h2>'
        + _table(
            [
                ("#", True),
                ("rule", False),
                ("binary", False),
                ("deny", True),
                ("kill", True),
                ("count", True),
            ],
            top_rows,
            "Nothing was blocked.",
        )
        + "</section>",
        "</div>",
        _group_section("By rule", "by_rule", "rule", report, code=True),
        _group_section("By binary", "by_exe", "binary", report, code=True),
        _group_section("By user", "by_user", "uid", report, code=False),
        '<section id="by-hour"><h2>By hour (UTC)</h2><div class="scroll">'
        + _table(
            [("hour", False), *((k.replace("_", " "), True) for k in hour_kinds), ("total", True)],
            hour_rows,
            "No records.",
            cls="dense",
        )
        + "</div></section>",
        '<section id="mode-changes"><h2>Mode changes</h2>'
        + _table(
            [
                ("time", False),
                ("seq", True),
                ("from", False),
                ("to", False),
                ("uid", True),
                ("rule", False),
                ("reason", False),
            ],
            mode_rows,
            "No mode changes.",
        )
        + "</section>",
        '<section id="bundles"><h2>Bundle history</h2>'
        + _table(
            [
                ("time", False),
                ("seq", True),
                ("event", False),
                ("version", True),
                ("sha256", False),
                ("reason", False),
            ],
            bundle_rows,
            "No bundle deployments or rejections.",
        )
        + "</section>",
        "<footer>kestrel-guard audit report &middot; times are UTC</footer>",
        "</main></body></html>",
    ]
    return "\n".join(body)
