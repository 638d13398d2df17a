"""guard.audit.report: exact counts from a generated, verified log; text, JSON and HTML; tampering; escaping.

The log is written by the real AuditWriter from PLAN, whose expected statistics are worked out by
hand below (not recomputed with the code under test).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from guard.audit.chain import AuditWriter
from guard.audit.record import Decision, Kind, ProcessIdentity, canonical_json, compute_hash, read_records
from guard.audit.report import build_report, render_html, render_json, render_text
from guard.audit.verify import verify_logs
from guard.errors import AuditError
from guard.signing import generate_keypair, load_signer, load_verifier

S = 1_000_000_000
HOUR = 3600 * S
T08 = 1_795_334_400 * S  # 2026-11-22T08:00:00Z
GENERATED = T08 + 6 * HOUR  # 2026-11-22T14:00:00Z

# (hour after 08:00, kind, rule, exe, uid, how many)
PLAN: list[tuple[int, Kind, str | None, str | None, int | None, int]] = [
    (0, Kind.AGENT_START, None, None, None, 1),
    (0, Kind.BUNDLE_DEPLOYED, None, None, None, 1),
    (0, Kind.DENY, "block-tmp-exec", "/tmp/x", 1000, 20),
    (0, Kind.WOULD_BLOCK, "deny-curl-pipe", "/usr/bin/curl", 1001, 15),
    (0, Kind.MODE_CHANGE, None, None, None, 1),
    (1, Kind.DENY, "block-tmp-exec", "/tmp/x", 1000, 10),
    (1, Kind.DENY, "deny-curl-pipe", "/usr/bin/curl", 1001, 12),
    (1, Kind.KILL, "watch-ssh-keys", "/usr/bin/ssh", 0, 5),
    (1, Kind.BUDGET_EXCEEDED, "deny-curl-pipe", None, None, 2),
    (1, Kind.BUNDLE_REJECTED, None, None, None, 1),
    # nothing at 10:00
    (3, Kind.WOULD_BLOCK, "watch-ssh-keys", "/usr/bin/ssh", 1000, 8),
    (3, Kind.KILL, "block-tmp-exec", "/tmp/y", 1001, 3),
    (3, Kind.ARM, None, None, None, 1),
    (3, Kind.DISARM, None, None, None, 1),
    (3, Kind.MODE_CHANGE, "block-tmp-exec", None, None, 1),
    (3, Kind.AGENT_STOP, None, None, None, 1),
]
N_EVENTS = 83  # sum of the counts above
N_CHECKPOINTS = 4  # checkpoint_every=25: after 25, 50, 75, and on close (8 pending)

VERDICT = {
    Kind.DENY: ("deny", "blocked"),
    Kind.WOULD_BLOCK: ("would_block", "allowed"),
    Kind.KILL: ("kill", "killed"),
}
SHA1 = "a" * 64
SHA2 = "b" * 64


def _detail(kind: Kind, hour: int) -> dict[str, Any]:
    if kind is Kind.MODE_CHANGE:
        return (
            {"from": "detect", "to": "enforce", "uid": 0, "reason": "rollout"}
            if hour == 0
            else {"from": "enforce", "to": "detect", "uid": 1000, "reason": "false positives"}
        )
    if kind is Kind.BUNDLE_DEPLOYED:
        return {"version": 7, "sha256": SHA1, "reason": "signed by ops"}
    if kind is Kind.BUNDLE_REJECTED:
        return {"version": 8, "sha256": SHA2, "reason": "bad signature"}
    return {}


def plan_decisions() -> list[Decision]:
    """Turn PLAN into decisions with fixed timestamps, 20 s apart within each hour."""
    decisions: list[Decision] = []
    slot: dict[int, int] = {}
    pid = 1000
    for hour, kind, rule, exe, uid, count in PLAN:
        for _ in range(count):
            j = slot[hour] = slot.get(hour, 0) + 1
            pid += 1
            verdict, outcome = VERDICT.get(kind, (None, None))
            process = (
                ProcessIdentity(pid=pid, exe=exe, uid=uid, entity_id=f"{pid}-1", ppid=1) if exe else None
            )
            decisions.append(
                Decision(
                    kind,
                    rule,
                    "bprm_check_security" if verdict else None,
                    process,
                    verdict,
                    outcome,
                    reason=f"{kind.value} #{j}",
                    detail=_detail(kind, hour),
                    ts=T08 + hour * HOUR + j * 20 * S,
                )
            )
    return decisions


@dataclass
class Log:
    path: Path
    keys: dict[str, Any]


def write_log(directory: Path, decisions: list[Decision], *, checkpoint_every: int = 25) -> Log:
    """Write the decisions with the real AuditWriter; return the log and its trusted keys."""
    key_path, pub_path, _ = generate_keypair(directory / "keys", "audit")
    path = directory / "audit.jsonl"
    writer = AuditWriter(
        path, load_signer(key_path), host="node-1", checkpoint_every=checkpoint_every,
        clock=lambda: T08 + 5 * HOUR, monotonic=lambda: 0.0,
    )  # fmt: skip
    writer.open()
    for decision in decisions:
        writer.append(decision)
    writer.close()
    verifier = load_verifier(pub_path)
    return Log(path, {verifier.key_id: verifier})


def report_for(log: Log, **kwargs: Any) -> dict[str, Any]:
    verification = verify_logs([log.path], log.keys)
    return build_report(read_records([log.path]), verification, generated_ns=GENERATED, **kwargs)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return write_log(tmp_path_factory.mktemp("reportlog"), plan_decisions())


@pytest.fixture(scope="module")
def report(log: Log) -> dict[str, Any]:
    return report_for(log)


# ------------------------------------------------------------------------------------ counts


def test_the_log_is_what_the_plan_says(log: Log) -> None:
    records = read_records([log.path])
    assert len(records) == N_EVENTS + N_CHECKPOINTS
    assert sum(r["event"] == "checkpoint" for r in records) == N_CHECKPOINTS


def test_period_and_hosts(report: dict[str, Any]) -> None:
    assert report["generated_at"] == "2026-11-22T14:00:00Z"
    assert report["period"] == {
        "first": "2026-11-22T08:00:20.000Z",
        "last": "2026-11-22T11:05:00.000Z",  # agent_stop, the 15th event of 11:00 (15 x 20 s)
        "since": None,
        "until": None,
        "hosts": ["node-1"],
    }


def test_totals(report: dict[str, Any]) -> None:
    assert report["totals"] == {
        "records": 83,
        "decisions": 73,
        "deny": 42,
        "would_block": 23,
        "kill": 8,
        "decisions_not_recorded": 0,
        "unjudged": 0,
        "arm": 1,
        "disarm": 1,
        "mode_change": 2,
        "bundle_deployed": 1,
        "bundle_rejected": 1,
        "budget_exceeded": 2,
        "agent_start": 1,
        "agent_stop": 1,
        "recovered": 0,  # every kind is counted, recovered torn tails too
    }
    assert "checkpoint" not in report["totals"]


def test_by_rule_sorted_by_total(report: dict[str, Any]) -> None:
    assert list(report["by_rule"].items()) == [
        ("block-tmp-exec", {"deny": 30, "would_block": 0, "kill": 3, "total": 33}),
        ("deny-curl-pipe", {"deny": 12, "would_block": 15, "kill": 0, "total": 27}),
        ("watch-ssh-keys", {"deny": 0, "would_block": 8, "kill": 5, "total": 13}),
    ]


def test_by_exe(report: dict[str, Any]) -> None:
    assert list(report["by_exe"].items()) == [
        ("/tmp/x", {"deny": 30, "would_block": 0, "kill": 0, "total": 30}),
        ("/usr/bin/curl", {"deny": 12, "would_block": 15, "kill": 0, "total": 27}),
        ("/usr/bin/ssh", {"deny": 0, "would_block": 8, "kill": 5, "total": 13}),
        ("/tmp/y", {"deny": 0, "would_block": 0, "kill": 3, "total": 3}),
    ]


def test_by_user(report: dict[str, Any]) -> None:
    assert list(report["by_user"].items()) == [
        ("1000", {"deny": 30, "would_block": 8, "kill": 0, "total": 38}),
        ("1001", {"deny": 12, "would_block": 15, "kill": 3, "total": 30}),
        ("0", {"deny": 0, "would_block": 0, "kill": 5, "total": 5}),
    ]


def test_by_hour_is_continuous_and_exact(report: dict[str, Any]) -> None:
    by_hour = report["by_hour"]
    assert list(by_hour) == [
        "2026-11-22T08:00Z",
        "2026-11-22T09:00Z",
        "2026-11-22T10:00Z",
        "2026-11-22T11:00Z",
    ]
    kinds = ["deny", "would_block", "kill", "arm", "disarm", "mode_change", "bundle_deployed", "bundle_rejected",
             "budget_exceeded", "agent_start", "agent_stop", "total"]  # fmt: skip
    assert all(list(bucket) == kinds for bucket in by_hour.values())

    def nonzero(hour: str) -> dict[str, int]:
        return {k: v for k, v in by_hour[hour].items() if v}

    assert nonzero("2026-11-22T08:00Z") == {
        "deny": 20, "would_block": 15, "agent_start": 1, "bundle_deployed": 1, "mode_change": 1, "total": 38,
    }  # fmt: skip
    assert nonzero("2026-11-22T09:00Z") == {
        "deny": 22, "kill": 5, "budget_exceeded": 2, "bundle_rejected": 1, "total": 30,
    }  # fmt: skip
    assert nonzero("2026-11-22T10:00Z") == {}
    assert nonzero("2026-11-22T11:00Z") == {
        "would_block": 8, "kill": 3, "arm": 1, "disarm": 1, "mode_change": 1, "agent_stop": 1, "total": 15,
    }  # fmt: skip
    assert sum(b["total"] for b in by_hour.values()) == 83


def test_top_blocked(report: dict[str, Any]) -> None:
    assert report["top_blocked"] == [
        {"rule": "block-tmp-exec", "exe": "/tmp/x", "deny": 30, "kill": 0, "count": 30},
        {"rule": "deny-curl-pipe", "exe": "/usr/bin/curl", "deny": 12, "kill": 0, "count": 12},
        {"rule": "watch-ssh-keys", "exe": "/usr/bin/ssh", "deny": 0, "kill": 5, "count": 5},
        {"rule": "block-tmp-exec", "exe": "/tmp/y", "deny": 0, "kill": 3, "count": 3},
    ]


def test_top_blocked_keeps_ten(tmp_path: Path) -> None:
    decisions = [
        Decision(Kind.DENY, f"rule-{i:02d}", "file_open", ProcessIdentity(pid=i, exe=f"/bin/p{i}", uid=0),
                 "deny", "blocked", ts=T08 + (i * 100 + j) * S)
        for i in range(12)
        for j in range(i + 1)
    ]  # fmt: skip
    rows = report_for(write_log(tmp_path, decisions))["top_blocked"]
    assert [(r["rule"], r["count"]) for r in rows] == [(f"rule-{i:02d}", i + 1) for i in range(11, 1, -1)]


def test_mode_changes(report: dict[str, Any]) -> None:
    # 08:00 has 37 events before the mode change (38 x 20 s = 12:40), and a checkpoint after 25: seq 39;
    # 11:00's is its 14th event (4:40), the 82nd overall, after 3 checkpoints: seq 85
    assert report["mode_changes"] == [
        {"ts": "2026-11-22T08:12:40.000Z", "seq": 39, "from": "detect", "to": "enforce", "uid": 0,
         "reason": "rollout", "rule": None},
        {"ts": "2026-11-22T11:04:40.000Z", "seq": 85, "from": "enforce", "to": "detect", "uid": 1000,
         "reason": "false positives", "rule": "block-tmp-exec"},
    ]  # fmt: skip


def test_bundle_history(report: dict[str, Any]) -> None:
    # the rejection is 09:00's 30th event (10:00), the 68th overall, after 2 checkpoints: seq 70
    assert report["bundles"] == [
        {"ts": "2026-11-22T08:00:40.000Z", "seq": 2, "event": "bundle_deployed", "version": 7, "sha256": SHA1,
         "reason": "signed by ops"},
        {"ts": "2026-11-22T09:10:00.000Z", "seq": 70, "event": "bundle_rejected", "version": 8, "sha256": SHA2,
         "reason": "bad signature"},
    ]  # fmt: skip


def test_verification_ok(report: dict[str, Any], log: Log) -> None:
    v = report["verification"]
    assert (v["status"], v["ok"], v["problem"]) == ("ok", True, None)
    assert (v["records"], v["checkpoints"], v["unsealed"]) == (N_EVENTS + N_CHECKPOINTS, N_CHECKPOINTS, 0)
    assert (v["first_seq"], v["last_seq"], v["last_checkpoint_seq"]) == (1, 87, 87)
    assert v["key_ids"] == sorted(log.keys)
    assert v["files"] == [str(log.path)]


def test_not_verified(log: Log) -> None:
    report = build_report(read_records([log.path]), None)
    assert report["verification"] == {"status": "not verified", "ok": None, "problem": None}
    assert "verification  not verified" in render_text(report)
    assert "NOT VERIFIED" in render_html(report)


def test_unsealed_tail_is_reported(tmp_path: Path) -> None:
    log = write_log(tmp_path, plan_decisions()[:10], checkpoint_every=4)
    lines = log.path.read_text().splitlines(keepends=True)
    log.path.write_text("".join(lines[:-1]))  # drop the closing checkpoint: 2 records stay unsigned
    v = report_for(log)["verification"]
    assert (v["status"], v["unsealed"], v["checkpoints"]) == ("ok", 2, 2)


def test_window_since_until(log: Log) -> None:
    report = report_for(log, since_ns=T08 + HOUR, until_ns=T08 + 2 * HOUR)
    assert report["period"]["since"] == "2026-11-22T09:00:00.000Z"
    assert report["period"]["until"] == "2026-11-22T10:00:00.000Z"
    assert report["totals"]["records"] == 30
    assert list(report["by_hour"]) == ["2026-11-22T09:00Z"]
    assert report["mode_changes"] == []
    assert [b["event"] for b in report["bundles"]] == ["bundle_rejected"]


def test_empty_report_renders() -> None:
    report = build_report([], None, generated_ns=GENERATED)
    assert report["totals"]["records"] == 0
    assert report["by_rule"] == {}
    assert report["by_hour"] == {}
    assert report["top_blocked"] == []
    assert report["period"]["first"] is None
    assert "(none)" in render_text(report)
    page = render_html(report)
    assert "no deny, would_block or kill decisions in this period" in page


def test_odd_kinds_cannot_clash_with_report_keys() -> None:
    records: list[dict[str, object]] = [
        {"seq": 1, "ts": T08, "event": "records"},
        {"seq": 2, "ts": T08, "event": "total"},
        {"seq": 3, "ts": T08, "event": None},
        {"seq": 4, "ts": T08, "event": "future_kind"},
        {"seq": 5, "ts": T08, "event": "deny", "rule_id": "r", "process": None},
    ]
    report = build_report(records, None)
    assert report["totals"]["records"] == 5
    assert report["totals"]["(unknown)"] == 3
    assert report["totals"]["future_kind"] == 1
    assert report["by_hour"]["2026-11-22T08:00Z"]["total"] == 5
    assert report["by_rule"] == {"r": {"deny": 1, "would_block": 0, "kill": 0, "total": 1}}
    assert report["by_exe"] == {"(unknown)": {"deny": 1, "would_block": 0, "kill": 0, "total": 1}}


def test_too_long_a_span_asks_for_a_window() -> None:
    records = [{"seq": 1, "ts": 0, "event": "deny"}, {"seq": 2, "ts": T08, "event": "deny"}]
    with pytest.raises(AuditError, match="narrow it with since / until"):
        build_report(records, None)


# ------------------------------------------------------------------------------------ tampering


def test_tampered_log_shows_failed(tmp_path: Path) -> None:
    log = write_log(tmp_path, plan_decisions())
    lines = log.path.read_text().splitlines(keepends=True)
    record = json.loads(lines[9])
    assert record["seq"] == 10
    record["reason"] = "nothing to see here"
    lines[9] = json.dumps(record) + "\n"
    log.path.write_text("".join(lines))

    report = report_for(log)
    v = report["verification"]
    assert (v["status"], v["ok"], v["problem_kind"]) == ("failed", False, "edited")
    assert v["problem"].startswith("edited at seq 10 ")
    assert "does not match its hash" in v["problem"]

    text = render_text(report)
    assert re.search(r"^verification  FAILED: edited at seq 10 .*does not match its hash", text, re.M)
    page = render_html(report)
    assert "Verification FAILED" in page
    assert 'class="badge failed"' in page
    assert "edited at seq 10" in page


def test_rehashed_edit_is_caught_too(tmp_path: Path) -> None:
    log = write_log(tmp_path, plan_decisions())
    lines = log.path.read_text().splitlines(keepends=True)
    record = json.loads(lines[19])
    record["rule_id"] = "innocent"
    record["hash"] = compute_hash(record)
    lines[19] = canonical_json(record).decode() + "\n"  # the form the writer writes
    log.path.write_text("".join(lines))
    v = report_for(log)["verification"]
    assert v["status"] == "failed"
    assert v["problem"].startswith("edited at seq 20 ")


# ------------------------------------------------------------------------------------ rendering


def test_render_json_round_trips(report: dict[str, Any]) -> None:
    out = render_json(report)
    assert json.loads(out) == report
    assert out.startswith('{\n  "generated_at"')


def test_render_text(report: dict[str, Any]) -> None:
    text = render_text(report)
    lines = text.splitlines()
    assert lines[0] == "Audit report"
    assert "period        2026-11-22T08:00:20.000Z .. 2026-11-22T11:05:00.000Z" in lines
    assert "verification  OK (87 records, 4 checkpoints, unsealed tail 0)" in lines
    for title in ("Totals", "By rule", "By binary", "By user", "By hour (UTC)", "Top blocked (rule, binary)",
                  "Mode changes", "Bundle history"):  # fmt: skip
        assert title in lines

    def row(first: str) -> list[str]:
        return next(line.split() for line in lines if line.split()[:1] == [first])

    assert row("deny") == ["deny", "42"]
    assert row("block-tmp-exec") == ["block-tmp-exec", "30", "0", "3", "33"]
    assert row("/usr/bin/curl") == ["/usr/bin/curl", "12", "15", "0", "27"]
    assert row("1001") == ["1001", "12", "15", "3", "30"]
    assert row("2026-11-22T09:00Z") == ["2026-11-22T09:00Z", "22", "0", "5", "0", "0", "0", "0", "1", "2", "0",
                                        "0", "30"]  # fmt: skip
    assert row("2026-11-22T10:00Z")[-1] == "0"
    assert row("2026-11-22T08:12:40.000Z") == [
        "2026-11-22T08:12:40.000Z",
        "detect",
        "enforce",
        "0",
        "-",
        "rollout",
    ]
    assert row("2026-11-22T09:10:00.000Z") == ["2026-11-22T09:10:00.000Z", "bundle_rejected", "8", SHA2, "bad",
                                               "signature"]  # fmt: skip
    # numbers are right-aligned under their headers
    header = next(line for line in lines if line.split()[:1] == ["RULE"] and "WOULD_BLOCK" in line)
    total_end = header.index("TOTAL") + len("TOTAL")
    assert all(
        line[:total_end].endswith(line.split()[-1])
        for line in lines[lines.index(header) + 1 : lines.index(header) + 4]
    )


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.metrics: dict[str, list[str]] = {}
        self._open: list[tuple[str, str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        metric = dict(attrs).get("data-metric")
        if metric is not None:
            self._open.append((tag, metric, []))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, metric, text = self._open.pop()
            self.metrics.setdefault(metric, []).append("".join(text))

    def handle_data(self, data: str) -> None:
        for _, _, text in self._open:
            text.append(data)


HOSTILE_RULE = 'evil.<script>alert("rule")</script>'
HOSTILE_EXE = "/tmp/<img src=x onerror=alert(1)>&\"'.sh"
HOSTILE_REASON = "</td></tr></table><script>alert('reason')</script>"


def hostile_decisions() -> list[Decision]:
    process = ProcessIdentity(pid=66, exe=HOSTILE_EXE, uid=1000, comm="<b>")
    return [
        Decision(Kind.DENY, HOSTILE_RULE, "file_open", process, "deny", "blocked", HOSTILE_REASON, ts=T08 + 3 * HOUR + 1803 * S),
        Decision(Kind.KILL, HOSTILE_RULE, "file_open", process, "kill", "killed", HOSTILE_REASON, ts=T08 + 3 * HOUR + 1804 * S),
        Decision(Kind.MODE_CHANGE, HOSTILE_RULE, detail={"from": "<i>", "to": "enforce", "uid": 0,
                                                         "reason": HOSTILE_REASON}, ts=T08 + 3 * HOUR + 1805 * S),
        Decision(Kind.BUNDLE_REJECTED, detail={"version": 9, "sha256": "<svg onload=alert(1)>",
                                               "reason": HOSTILE_REASON}, ts=T08 + 3 * HOUR + 1806 * S),
    ]  # fmt: skip


def test_html_escapes_hostile_strings(tmp_path: Path) -> None:
    log = write_log(tmp_path, [*plan_decisions(), *hostile_decisions()])
    report = report_for(log)
    assert HOSTILE_RULE in report["by_rule"]
    page = render_html(report)
    assert "<script" not in page.lower()
    assert "<img" not in page
    assert "<svg onload" not in page
    assert "<i>" not in page
    assert "&lt;script&gt;alert(&quot;rule&quot;)&lt;/script&gt;" in page
    parser = _Collector()
    parser.feed(page)
    parser.close()
    assert "script" not in parser.tags
    assert "img" not in parser.tags
    # the hostile rule id survives as data: its counts are addressable by their JSON path
    assert parser.metrics[f"by_rule.{HOSTILE_RULE}.deny"] == ["1"]
    assert parser.metrics[f"by_rule.{HOSTILE_RULE}.kill"] == ["1"]
    assert parser.metrics[f"by_exe.{HOSTILE_EXE}.total"] == ["2"]


def test_text_neutralises_control_characters(tmp_path: Path) -> None:
    decision = Decision(Kind.DENY, "r\x1b[31m", "file_open", ProcessIdentity(pid=1, exe="/tmp/a\nb", uid=0),
                        "deny", "blocked", ts=T08)  # fmt: skip
    text = render_text(report_for(write_log(tmp_path, [decision])))
    assert "\x1b" not in text
    assert "/tmp/a\\nb" in text
    assert "r\\x1b[31m" in text


def resolve(data: Any, path: str) -> list[Any]:
    """Every scalar that ``path`` (dot-joined keys, which may contain dots themselves) names in ``data``."""
    if isinstance(data, list):
        head, _, rest = path.partition(".")
        if not head.isdigit() or int(head) >= len(data):
            return []
        return resolve(data[int(head)], rest) if rest else [data[int(head)]]
    if not isinstance(data, dict):
        return []
    found: list[Any] = []
    for key, value in data.items():
        if path == key and not isinstance(value, dict | list):
            found.append(value)
        elif path.startswith(key + "."):
            found += resolve(value, path[len(key) + 1 :])
    return found


def numeric_paths(data: Any, prefix: str = "") -> dict[str, Any]:
    """Every number in the JSON, by its dot-joined path."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    out: dict[str, Any] = {}
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, dict | list):
            out.update(numeric_paths(value, path + "."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[path] = value
    return out


def check_metrics(metrics: dict[str, list[str]], report: dict[str, Any]) -> None:
    """Every data-metric element shows its JSON value, and every JSON number has such an element."""
    for path, texts in metrics.items():
        values = resolve(report, path)
        assert len(values) == 1, f"{path!r} names {len(values)} values in the JSON"
        assert all(text.strip() == str(values[0]) for text in texts), (path, texts, values[0])
    missing = set(numeric_paths(report)) - set(metrics)
    assert not missing, f"numbers without a data-metric element: {sorted(missing)[:10]}"


def test_html_metrics_match_json(report: dict[str, Any]) -> None:
    parser = _Collector()
    parser.feed(render_html(report))
    parser.close()
    check_metrics(parser.metrics, json.loads(render_json(report)))
    for path in ("totals.deny", "totals.records", "by_rule.block-tmp-exec.deny", "by_hour.2026-11-22T10:00Z.deny",
                 "by_exe./usr/bin/curl.would_block", "by_user.0.kill", "top_blocked.0.count",
                 "verification.records", "verification.checkpoints", "verification.unsealed",
                 "mode_changes.1.uid", "bundles.0.version"):  # fmt: skip
        assert path in parser.metrics, path
    assert parser.metrics["totals.deny"] == ["42", "42"]  # the summary card and the totals table


def test_html_is_self_contained(report: dict[str, Any]) -> None:
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?:|//[a-z]|<script|<link|@import|url\(", page, re.I)
    assert "<svg" in page
    assert "<style>" in page
    assert "Generated at <b>2026-11-22T14:00:00Z</b>" in page
    assert 'class="badge ok"' in page
