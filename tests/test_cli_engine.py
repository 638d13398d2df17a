"""guardctl replay, query and rules import-elastic end to end, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from guard.policy.recording import RecordingHeader, load_recording, write_recording
from guard.policy.schema import ECS
from tests.test_cli_smoke import one_line_error, run

POLICY = """
[[rule]]
id = "tmp-exec"
name = "Execution from /tmp"
severity = "high"
action = "block"
query = 'process where process.executable : "/tmp/*"'

[[rule]]
id = "shell-then-connect"
name = "Shell then connect"
severity = "critical"
action = "alert"
overflow = "drop_new"
query = '''
sequence by process.entity_id with maxspan=1m
  [process where process.name == "sh"]
  [network where destination.port == 4444]
'''
"""


def events() -> list[dict[str, object]]:
    t = 1_763_800_000_000
    rows: list[dict[str, object]] = []
    for i, (cat, name, exe, port) in enumerate(
        [("process", "sh", "/bin/sh", None), ("process", "x", "/tmp/x", None), ("network", "sh", "/bin/sh", 4444),
         ("network", "sh", "/bin/sh", 80), ("process", "y", "/tmp/y", None)]
    ):  # fmt: skip
        ev: dict[str, object] = {
            "@timestamp": t + i * 1000,
            "event": {"category": cat, "id": f"e{i}", "sequence": i},
            "process": {"name": name, "executable": exe, "pid": 10, "entity_id": "p10"},
        }
        if port is not None:
            ev["destination"] = {"ip": "203.0.113.9", "port": port}
        rows.append(ev)
    return rows


def test_replay_json_names_ruleset_schema_and_recording(tmp_path: Path) -> None:
    (tmp_path / "p.guard").write_text(POLICY)
    write_recording(tmp_path / "rec.jsonl", events(), RecordingHeader("ecs", ECS.version, "0" * 64))
    proc = run("replay", str(tmp_path / "rec.jsonl"), "--policy", str(tmp_path / "p.guard"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["schema"] == "ecs"
    assert out["schema_version"] == ECS.version
    assert len(out["ruleset_hash"]) == 64
    assert out["recording"]["ruleset_hash"] == "0" * 64
    assert out["notes"] == [f"recorded under rule set {'0' * 16}, replaying {out['ruleset_hash'][:16]}"]
    assert [(d["rule"], d["kind"], d["event_ids"]) for d in out["decisions"]] == [
        ("tmp-exec", "deny", ["e1"]),
        ("shell-then-connect", "alert", ["e0", "e2"]),
        ("tmp-exec", "deny", ["e4"]),
    ]
    assert out["budgets"]["shell-then-connect"]["matches"] == 1
    again = run("replay", str(tmp_path / "rec.jsonl"), "--policy", str(tmp_path / "p.guard"), "--json")
    assert again.stdout == proc.stdout  # byte-identical


def test_replay_text_and_a_plain_recording(tmp_path: Path) -> None:
    (tmp_path / "p.guard").write_text(POLICY)
    (tmp_path / "rec.jsonl").write_text("".join(json.dumps(e) + "\n" for e in reversed(events())))
    proc = run("replay", str(tmp_path / "rec.jsonl"), "--policy", str(tmp_path / "p.guard"))
    assert proc.returncode == 0, proc.stderr
    assert "note: the recording has no header" in proc.stdout
    assert "replayed 5 events against 2 rules" in proc.stdout


def test_a_bad_recording_header_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "p.guard").write_text(POLICY)
    (tmp_path / "rec.jsonl").write_text('{"kestrel_recording": {"schema": "ecs"}}\n')
    proc = run("replay", str(tmp_path / "rec.jsonl"), "--policy", str(tmp_path / "p.guard"))
    assert proc.returncode == 1
    assert "rec.jsonl:1: kestrel_recording.schema_version: expected a string" in one_line_error(proc)


def test_recording_round_trip(tmp_path: Path) -> None:
    header = RecordingHeader("ecs", ECS.version, "ab" * 32)
    assert write_recording(tmp_path / "r.jsonl", events(), header) == 5
    rec = load_recording(tmp_path / "r.jsonl")
    assert rec.header == header
    assert rec.events == events()


def test_query_events_sequences_and_pipes(tmp_path: Path) -> None:
    (tmp_path / "rec.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events()))
    proc = run("query", 'process where process.executable : "/tmp/*"', str(tmp_path / "rec.jsonl"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [m["events"][0]["event"]["id"] for m in out["matches"]] == ["e1", "e4"]
    seq = ('sequence by process.entity_id [process where process.name == "sh"] '
           '[network where destination.port > 1000]')  # fmt: skip
    proc = run("query", seq, str(tmp_path / "rec.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == 'sequence ["p10"]'
    assert "1 match(es) in 5 events" in proc.stderr
    proc = run("query", "any where true | tail 2", str(tmp_path / "rec.jsonl"), "--json")
    assert [m["events"][0]["event"]["id"] for m in json.loads(proc.stdout)["matches"]] == ["e3", "e4"]
    proc = run("query", "process where process.nope == 1", str(tmp_path / "rec.jsonl"))
    assert proc.returncode == 1
    assert "process.nope" in one_line_error(proc)


def test_import_elastic_reports_and_writes(tmp_path: Path) -> None:
    src = tmp_path / "rules"
    src.mkdir()
    (src / "a.toml").write_text(
        '[rule]\nlanguage = "eql"\nrule_id = "r-1"\nname = "Tmp exec"\nseverity = "high"\ntype = "eql"\n'
        "query = '''\nprocess where host.os.type == \"linux\" and process.executable : \"/tmp/*\"\n'''\n"
    )
    (src / "b.toml").write_text(
        '[rule]\nlanguage = "kuery"\nrule_id = "r-2"\nname = "K"\nseverity = "low"\nquery = "x"\n'
    )
    proc = run("rules", "import-elastic", str(src), "-o", str(tmp_path / "out"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["imported"], out["compiled"], out["skipped"], out["total"]) == (1, 1, 1, 2)
    assert [f["reason"] for f in out["files"] if f["status"] == "skipped"] == [
        'language is "kuery", not "eql"'
    ]
    assert len(out["written"]) == 1
    proc = run("replay", str(tmp_path / "none.jsonl"), "--policy", str(tmp_path / "out"))
    assert "none.jsonl: cannot read recording" in one_line_error(proc)


def test_policy_explain_says_per_rule_what_each_backend_achieves(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(
        '[[rule]]\nid = "no-tmp"\nname = "n"\nseverity = "high"\naction = "block"\n'
        "query = 'process where process.executable : \"/tmp/*\"'\n"
        '[[rule]]\nid = "no-net"\nname = "n"\nseverity = "high"\naction = "block"\n'
        "query = 'network where destination.port == 4444'\n"
    )
    compat = json.loads(run("policy", "explain", str(tmp_path), "--backend", "compat", "--json").stdout)
    assert [(r["rule"], r["hooks"]) for r in compat["rules"]] == [
        ("no-tmp", {"bprm_check_security": "kill reaction"}),
        ("no-net", {"socket_connect": "inline deny"}),
    ]
    lsm = json.loads(run("policy", "explain", str(tmp_path), "--backend", "lsm", "--json").stdout)
    assert {level for r in lsm["rules"] for level in r["hooks"].values()} == {"inline deny"}
    text = run("policy", "explain", str(tmp_path), "--backend", "compat").stdout
    assert "kill reaction" in text
    assert "inline deny" in text
    (tmp_path / "p.toml").write_text("[[rule]]\nid = 1\n")
    assert "p.toml" in one_line_error(run("policy", "explain", str(tmp_path), "--backend", "compat"))
