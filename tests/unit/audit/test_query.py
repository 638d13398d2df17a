"""guard.audit.query: time parsing, every filter, and the table / JSON / NDJSON renderers, on a real log."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import cast

import pytest

from guard.audit.chain import AuditWriter
from guard.audit.query import (
    TABLE_COLUMNS,
    Filter,
    parse_time,
    render_json,
    render_ndjson,
    render_table,
    select,
)
from guard.audit.record import Decision, Kind, ProcessIdentity, read_records
from guard.errors import AuditError
from guard.signing import generate_keypair, load_signer
from tests.fields import dig

S = 1_000_000_000
T08 = 1_795_334_400 * S  # 2026-11-22T08:00:00Z
T10 = 1_795_341_600 * S  # 2026-11-22T10:00:00Z
DAY = 1_795_305_600 * S  # 2026-11-22T00:00:00Z
NOW = T10 + 123_456_789


# ------------------------------------------------------------------------------------ parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00Z", T10),
        ("2026-11-22T10:00:00", T10),  # no zone: UTC
        ("2026-11-22T10:00:00+00:00", T10),
        ("2026-11-22T12:00:00+02:00", T10),
        ("2026-11-22T10:00:00.250Z", T10 + 250_000_000),
        ("2026-11-22 10:00", T10),
        ("2026-11-22", DAY),
        ("  2026-11-22  ", DAY),
        ("1970-01-01", 0),
    ],
)
def test_parse_time_iso(text: str, expected: int) -> None:
    assert parse_time(text, now_ns=NOW) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 7 * 86400), ("now", 0)],
)
def test_parse_time_relative(text: str, seconds: int) -> None:
    assert parse_time(text, now_ns=NOW) == NOW - seconds * S


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2026-13-01", "2026-11-31", "15x", "-5m", "5 m", "1.5h", "2h ago", "T10:00", "99999999999999d",
     "1969-12-31T23:59:59Z", "bad\ninput"],
)  # fmt: skip
def test_parse_time_rejects_bad_input_naming_it(text: str) -> None:
    with pytest.raises(AuditError) as info:
        parse_time(text, now_ns=NOW)
    message = str(info.value)
    assert repr(text) in message
    assert "\n" not in message


def test_parse_time_message_says_what_is_accepted() -> None:
    with pytest.raises(AuditError, match=r"bad time 'last week': expected ISO-8601 .* 90s, 15m, 2h, 7d"):
        parse_time("last week", now_ns=NOW)


# ------------------------------------------------------------------------------------ a real log


def _proc(pid: int, exe: str, uid: int) -> ProcessIdentity:
    return ProcessIdentity(pid=pid, exe=exe, uid=uid, entity_id=f"{pid}-1", ppid=1, parent_exe="/bin/bash")


DECISIONS = [
    Decision(Kind.AGENT_START, reason="started", ts=T08),
    Decision(Kind.DENY, "block-tmp-exec", "bprm_check_security", _proc(100, "/tmp/x", 1000), "deny", "blocked",
             "exec from /tmp", ts=T08 + 1 * S),
    Decision(Kind.WOULD_BLOCK, "deny-curl-pipe", "bprm_check_security", _proc(101, "/usr/bin/curl", 1001),
             "would_block", "allowed", "detect mode", ts=T08 + 60 * S),
    Decision(Kind.DENY, "deny-curl-pipe", "file_open", _proc(102, "/usr/bin/curl", 0), "deny", "blocked",
             ts=T08 + 3600 * S),
    Decision(Kind.KILL, "watch-ssh-keys", "file_open", _proc(103, "/usr/bin/ssh", 1000), "kill", "killed",
             ts=T08 + 7200 * S - 1),
    Decision(Kind.DENY, "block-tmp-exec", "bprm_check_security", _proc(104, "/tmp/y", 1001), "deny", "blocked",
             ts=T10),
    Decision(Kind.MODE_CHANGE, detail={"from": "detect", "to": "enforce", "uid": 0, "reason": "go"}, ts=T10 + S),
    Decision(Kind.AGENT_STOP, reason="stopped", ts=T10 + 2 * S),
]  # fmt: skip


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("querylog")
    key_path, _, _ = generate_keypair(base / "keys", "audit")
    path = base / "audit.jsonl"
    writer = AuditWriter(
        path, load_signer(key_path), host="node-1", checkpoint_every=3, clock=lambda: T10 + 10 * S,
        monotonic=lambda: 0.0,
    )  # fmt: skip
    writer.open()
    for decision in DECISIONS:
        writer.append(decision)
    writer.close()
    return path


@pytest.fixture
def records(log: Path) -> list[dict[str, object]]:
    return read_records([log])


def _events(selected: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(r["event"], r["rule_id"]) for r in selected]


def _seqs(selected: list[dict[str, object]]) -> list[int]:
    return [cast(int, r["seq"]) for r in selected]


def _pids(selected: list[dict[str, object]]) -> list[object]:
    return [dig(r, "process", "pid") for r in selected]


def test_log_has_checkpoints(records: list[dict[str, object]]) -> None:
    # 8 decisions, a checkpoint after every 3 and one on close: 3 + 1 + 3 + 1 + 2 + 1
    assert [r["event"] for r in records].count("checkpoint") == 3
    assert len(records) == 11


def test_no_filter_keeps_all_but_checkpoints(records: list[dict[str, object]]) -> None:
    selected = select(records, Filter())
    assert [r["event"] for r in selected] == [d.kind.value for d in DECISIONS]
    assert _seqs(selected) == sorted(_seqs(selected))


def test_include_checkpoints(records: list[dict[str, object]]) -> None:
    assert select(records, Filter(include_checkpoints=True)) == records


def test_kind_checkpoint_selects_them(records: list[dict[str, object]]) -> None:
    selected = select(records, Filter(kinds=("checkpoint",)))
    assert [r["event"] for r in selected] == ["checkpoint"] * 3


def test_since_is_inclusive_until_exclusive(records: list[dict[str, object]]) -> None:
    selected = select(records, Filter(since_ns=T08 + 3600 * S, until_ns=T10))
    assert [r["ts"] for r in selected] == [T08 + 3600 * S, T08 + 7200 * S - 1]
    assert select(records, Filter(since_ns=T10 + 2 * S))[0]["event"] == "agent_stop"
    assert len(select(records, Filter(until_ns=T08 + 1))) == 1


def test_since_until_from_parse_time(records: list[dict[str, object]]) -> None:
    flt = Filter(
        since_ns=parse_time("2026-11-22T09:00:00Z", now_ns=NOW), until_ns=parse_time("30m", now_ns=T10)
    )
    assert _events(select(records, flt)) == [("deny", "deny-curl-pipe")]


def test_filter_rules(records: list[dict[str, object]]) -> None:
    assert _events(select(records, Filter(rules=("block-tmp-exec",)))) == [("deny", "block-tmp-exec")] * 2
    assert len(select(records, Filter(rules=("block-tmp-exec", "watch-ssh-keys")))) == 3
    assert select(records, Filter(rules=("nope",))) == []


def test_filter_kinds(records: list[dict[str, object]]) -> None:
    assert len(select(records, Filter(kinds=("deny",)))) == 3
    assert [r["event"] for r in select(records, Filter(kinds=("kill", "mode_change")))] == [
        "kill",
        "mode_change",
    ]


def test_filter_verdicts(records: list[dict[str, object]]) -> None:
    assert len(select(records, Filter(verdicts=("deny",)))) == 3
    assert _events(select(records, Filter(verdicts=("would_block", "kill")))) == [
        ("would_block", "deny-curl-pipe"),
        ("kill", "watch-ssh-keys"),
    ]


def test_filter_exe_glob(records: list[dict[str, object]]) -> None:
    assert _pids(select(records, Filter(exe="/tmp/*"))) == [100, 104]
    assert len(select(records, Filter(exe="*/curl"))) == 2
    assert len(select(records, Filter(exe="/tmp/?"))) == 2
    assert select(records, Filter(exe="/TMP/*")) == []  # case-sensitive
    assert select(records, Filter(exe="/tmp")) == []  # anchored


def test_filter_users(records: list[dict[str, object]]) -> None:
    assert _pids(select(records, Filter(users=("1000",)))) == [100, 103]
    assert len(select(records, Filter(users=("0", "1001")))) == 3


def test_filter_pids(records: list[dict[str, object]]) -> None:
    assert _events(select(records, Filter(pids=(103,)))) == [("kill", "watch-ssh-keys")]
    assert len(select(records, Filter(pids=(100, 104, 999)))) == 2


def test_process_filters_skip_records_without_process(records: list[dict[str, object]]) -> None:
    for flt in (Filter(exe="*"), Filter(users=("0",)), Filter(pids=(0,))):
        assert all(r["process"] is not None for r in select(records, flt))
    assert len(select(records, Filter(exe="*"))) == 5


def test_filters_combine_with_and(records: list[dict[str, object]]) -> None:
    flt = Filter(kinds=("deny",), exe="/tmp/*", users=("1001",), since_ns=T08 + 2 * S)
    assert _pids(select(records, flt)) == [104]
    assert select(records, Filter(kinds=("deny",), rules=("watch-ssh-keys",))) == []


def test_select_accepts_an_iterator(records: list[dict[str, object]]) -> None:
    assert len(select(iter(records), Filter(kinds=("deny",)))) == 3


# ------------------------------------------------------------------------------------ rendering


def test_render_table(records: list[dict[str, object]]) -> None:
    selected = select(records, Filter())
    lines = render_table(selected).splitlines()
    assert lines[0].split() == list(TABLE_COLUMNS)
    assert lines[-1] == "8 records"
    assert len(lines) == 10
    starts = [lines[0].index(col) for col in TABLE_COLUMNS]
    for line in lines[1:-1]:  # aligned: every cell starts under its header
        for start in starts[1:]:
            assert line[start - 2 : start] == "  "
            assert line[start] != " "
    first = lines[1].split()
    assert first == ["2026-11-22T08:00:00.000Z", "1", "agent_start", "-", "-", "-", "-", "-", "-"]
    deny = lines[2].split()
    assert deny == [
        "2026-11-22T08:00:01.000Z", "2", "deny", "block-tmp-exec", "bprm_check_security", "100", "/tmp/x",
        "deny", "blocked",
    ]  # fmt: skip
    kill = next(line.split() for line in lines if " kill " in line)
    assert kill[0] == "2026-11-22T09:59:59.999Z"


def test_render_table_counts_and_empty() -> None:
    assert render_table([]).splitlines() == ["  ".join(TABLE_COLUMNS), "0 records"]


def test_render_table_neutralises_control_characters(records: list[dict[str, object]]) -> None:
    hostile = dict(records[1], rule_id="evil\x1b[2J\nrule", process={"pid": 1, "exe": "/tmp/a\rb"})
    out = render_table([hostile])
    assert "\x1b" not in out
    assert "\r" not in out
    assert len(out.splitlines()) == 3
    assert "evil\\x1b[2J\\nrule" in out
    assert "/tmp/a\\rb" in out


def test_render_json(records: list[dict[str, object]]) -> None:
    selected = select(records, Filter(kinds=("deny",)))
    out = render_json(selected)
    assert json.loads(out) == selected
    assert out.startswith("[\n  {\n    ")
    assert json.loads(render_json([])) == []


def test_render_ndjson_is_the_log_itself(log: Path, records: list[dict[str, object]]) -> None:
    assert render_ndjson(records) == log.read_text()
    assert render_ndjson([]) == ""


def test_render_ndjson_one_canonical_line_per_record(records: list[dict[str, object]]) -> None:
    selected = select(records, Filter(kinds=("deny", "kill")))
    out = render_ndjson(selected)
    assert out.endswith("}\n")
    lines = out.splitlines()
    assert len(lines) == 4
    for line, record in zip(lines, selected, strict=True):
        assert json.loads(line) == record
        assert not re.search(r'": |, "', line)  # no spaces after separators
