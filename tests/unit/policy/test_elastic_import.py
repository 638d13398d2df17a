"""Elastic rule import: detection-rules EQL and Defend behaviour rules that compile are imported,
every other file says why not."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from guard.errors import PolicyError
from guard.policy.elastic import (
    DEFEND,
    DEFEND_SEVERITY,
    DETECTION,
    ImportReport,
    elastic_origin,
    import_elastic,
    write_policy,
)
from guard.policy.loader import load_policy

RULES = Path(__file__).parents[2] / "data" / "elastic-rules"
DETECTION_DIR = RULES / "detection-rules" / "rules" / "linux"
DEFEND_DIR = RULES / "protections-artifacts" / "behavior" / "rules" / "linux"

EQL_RULE = """
[metadata]
creation_date = "2020/08/14"
maturity = "production"

[rule]
author = ["Elastic"]
description = "Identifies execution from /tmp."
language = "eql"
name = "Suspicious Execution from /tmp"
risk_score = 47
rule_id = "0a1b2c3d-0000-4000-8000-000000000001"
severity = "medium"
type = "eql"
query = '''
process where event.type == "start" and process.executable : "/tmp/*"
'''

[[rule.threat]]
framework = "MITRE ATT&CK"
"""


def rule_toml(
    *,
    rule_id: str = "id-1",
    name: str = "A rule",
    severity: str = "high",
    language: str | None = "eql",
    type_: str | None = "eql",
    query: str = 'process where process.name == "curl"',
    description: str | None = None,
    basic_query: bool = False,
) -> str:
    lines = ["[metadata]", 'maturity = "production"', "[rule]"]
    for key, value in (
        ("rule_id", rule_id),
        ("name", name),
        ("severity", severity),
        ("language", language),
        ("type", type_),
        ("description", description),
    ):
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    lines.append(f"query = {json.dumps(query)}" if basic_query else f"query = '''\n{query}\n'''")
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def only(report: ImportReport) -> tuple[str, str | None]:
    assert report.total == 1
    entry = report.entries[0]
    return entry.status, entry.reason


def test_eql_rule_is_imported(tmp_path: Path) -> None:
    f = write(tmp_path / "exec.toml", EQL_RULE)
    report = import_elastic([f])
    assert (report.imported, report.compiled, report.skipped, report.total) == (1, 1, 0, 1)
    entry = report.entries[0]
    assert (entry.path, entry.status, entry.reason) == (str(f), "imported", None)
    assert (entry.rule_id, entry.name) == (
        "0a1b2c3d-0000-4000-8000-000000000001",
        "Suspicious Execution from /tmp",
    )
    rule = entry.rule
    assert rule is not None
    assert report.rules == (rule,)
    assert (rule.id, rule.name, rule.severity, rule.action, rule.mode) == (
        "0a1b2c3d-0000-4000-8000-000000000001",
        "Suspicious Execution from /tmp",
        "medium",
        "alert",
        None,
    )
    assert rule.query == 'process where event.type == "start" and process.executable : "/tmp/*"'
    assert rule.path == str(f)
    assert rule.description == "Identifies execution from /tmp."
    assert rule.ir.fields == {"event.type", "process.executable"}


def test_kuery_rule_is_skipped_with_the_language(tmp_path: Path) -> None:
    f = write(tmp_path / "k.toml", rule_toml(language="kuery", type_="query", query="process.name : curl"))
    report = import_elastic([f])
    assert only(report) == ("skipped", 'language is "kuery", not "eql"')
    assert (report.entries[0].rule_id, report.entries[0].name, report.entries[0].rule) == (
        "id-1",
        "A rule",
        None,
    )
    assert (report.imported, report.skipped, report.rules) == (0, 1, ())


def test_type_eql_without_language_is_imported(tmp_path: Path) -> None:
    f = write(tmp_path / "t.toml", rule_toml(language=None, type_="eql"))
    assert only(import_elastic([f])) == ("imported", None)


@pytest.mark.parametrize(
    ("language", "type_", "reason"),
    [
        (None, "machine_learning", 'type is "machine_learning", not "eql" (no language)'),
        (None, None, "missing language and type"),
        ("esql", "esql", 'language is "esql", not "eql"'),
    ],
)
def test_other_rule_types_are_skipped(
    tmp_path: Path, language: str | None, type_: str | None, reason: str
) -> None:
    f = write(tmp_path / "r.toml", rule_toml(language=language, type_=type_))
    assert only(import_elastic([f])) == ("skipped", reason)


def test_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    f = write(tmp_path / "s.toml", rule_toml(query='process where\n  process.name == = "x"'))
    assert only(import_elastic([f])) == (
        "skipped",
        "query: line 2, column 19: unexpected '=' (use == to compare)",
    )


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("process where fooBar(process.name)", "unsupported construct: unknown function 'fooBar'"),
        (
            'process where process.pid == "x"',
            'unsupported construct: type mismatch: process.pid (number) == "x" (string)',
        ),
        (
            'process where process.Ext.token.integrity_level_name == "system"',
            "unsupported construct: unknown field 'process.Ext.token.integrity_level_name' "
            "(not in the ecs schema; ?process.Ext.token.integrity_level_name allows it)",
        ),
    ],
)
def test_semantic_error_is_an_unsupported_construct(tmp_path: Path, query: str, reason: str) -> None:
    f = write(tmp_path / "u.toml", rule_toml(query=query))
    assert only(import_elastic([f])) == ("skipped", reason)


def test_unreadable_files_are_skipped(tmp_path: Path) -> None:
    bad = write(tmp_path / "a.toml", "[rule\nname = 1\n")
    latin = tmp_path / "b.toml"
    latin.write_bytes(b'[rule]\nname = "caf\xe9"\n')
    ours = write(tmp_path / "c.toml", '[[rule]]\nid = "x"\n')
    report = import_elastic([tmp_path])
    assert [(e.path, e.status, e.reason) for e in report.entries] == [
        (
            str(bad),
            "skipped",
            "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 6)",
        ),
        (str(latin), "skipped", "not UTF-8"),
        (str(ours), "skipped", "no [rule] table"),
    ]


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        ("rule_id", "missing rule_id"),
        ("name", "missing name"),
        ("severity", "missing severity"),
        ("query", "missing query"),
    ],
)
def test_missing_field_is_skipped(tmp_path: Path, drop: str, reason: str) -> None:
    data = rule_toml()
    if drop == "query":
        text = data.split("query = ")[0]
    else:
        text = "\n".join(line for line in data.split("\n") if not line.startswith(f"{drop} = "))
    f = write(tmp_path / "m.toml", text)
    assert drop not in tomllib.loads(f.read_text())["rule"]
    assert only(import_elastic([f])) == ("skipped", reason)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            rule_toml(severity="informational"),
            'severity is "informational", not one of low, medium, high, critical',
        ),
        (rule_toml(name="  "), 'name: expected a non-empty string, got "  "'),
        (
            rule_toml().replace('rule_id = "id-1"', "rule_id = 7"),
            "rule_id: expected a non-empty string, got 7",
        ),
        (rule_toml(query=""), 'query: expected a non-empty string, got "\\n"'),
    ],
)
def test_invalid_field_is_skipped(tmp_path: Path, text: str, reason: str) -> None:
    f = write(tmp_path / "v.toml", text)
    assert only(import_elastic([f])) == ("skipped", reason)


def test_duplicate_rule_id_keeps_the_first(tmp_path: Path) -> None:
    a = write(tmp_path / "a.toml", rule_toml(name="First"))
    b = write(tmp_path / "b.toml", rule_toml(name="Second"))
    report = import_elastic([tmp_path])
    assert [(e.path, e.status, e.name, e.reason) for e in report.entries] == [
        (str(a), "imported", "First", None),
        (str(b), "skipped", "Second", f"duplicate rule_id, first in {a}"),
    ]
    assert [r.name for r in report.rules] == ["First"]


def test_a_skipped_rule_does_not_claim_its_id(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", rule_toml(query="process where"))
    write(tmp_path / "b.toml", rule_toml())
    report = import_elastic([tmp_path])
    assert [e.status for e in report.entries] == ["skipped", "imported"]


def test_directories_recurse_sorted_and_only_toml(tmp_path: Path) -> None:
    root = tmp_path / "rules"
    write(root / "windows" / "z.toml", rule_toml(rule_id="w-z"))
    write(root / "linux" / "b.toml", rule_toml(rule_id="l-b"))
    write(root / "linux" / "a.toml", rule_toml(rule_id="l-a"))
    write(root / "top.toml", rule_toml(rule_id="top"))
    write(root / "linux" / "notes.md", "not a rule")
    write(root / "linux" / "c.toml.bak", rule_toml(rule_id="bak"))
    extra = write(tmp_path / "extra.toml", rule_toml(rule_id="extra"))
    report = import_elastic([root, extra, root / "top.toml"])
    assert [e.rule_id for e in report.entries] == ["l-a", "l-b", "top", "w-z", "extra"]
    assert report.entries[0].path == str(root / "linux" / "a.toml")
    assert report.imported == 5


def test_json_and_text(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", rule_toml(rule_id="a", name="Alpha"))
    write(tmp_path / "b.toml", rule_toml(rule_id="b", language="kuery"))
    write(tmp_path / "c.toml", rule_toml(rule_id="c", language="lucene"))
    write(tmp_path / "d.toml", rule_toml(rule_id="d", query="process where nope(process.name)"))
    report = import_elastic([tmp_path])
    data = report.to_json()
    assert list(data) == ["imported", "compiled", "skipped", "total", "sources", "files"]
    assert (data["imported"], data["compiled"], data["skipped"], data["total"]) == (1, 1, 3, 4)
    assert data["sources"] == {DETECTION: {"imported": 1, "skipped": 3, "total": 4}}
    common = {"status": "skipped", "source": DETECTION, "name": "A rule", "action": None}
    assert data["files"] == [
        {"path": str(tmp_path / "a.toml"), "status": "imported", "source": DETECTION, "rule_id": "a",
         "name": "Alpha", "action": "alert", "reason": None},
        {**common, "path": str(tmp_path / "b.toml"), "rule_id": "b", "reason": 'language is "kuery", not "eql"'},
        {**common, "path": str(tmp_path / "c.toml"), "rule_id": "c", "reason": 'language is "lucene", not "eql"'},
        {**common, "path": str(tmp_path / "d.toml"), "rule_id": "d",
         "reason": "unsupported construct: unknown function 'nope'"},
    ]  # fmt: skip
    json.dumps(data)
    assert report.render_text().splitlines() == [
        f"imported  {tmp_path / 'a.toml'}  a  Alpha",
        f'skipped   {tmp_path / "b.toml"}  language is "kuery", not "eql"',
        f'skipped   {tmp_path / "c.toml"}  language is "lucene", not "eql"',
        f"skipped   {tmp_path / 'd.toml'}  unsupported construct: unknown function 'nope'",
        "imported 1 of 4 files (3 skipped)",
        "skip reasons:",
        "  2 language is not eql",
        "  1 unsupported construct",
    ]


def test_empty_report(tmp_path: Path) -> None:
    report = import_elastic([tmp_path])
    assert report.to_json() == {
        "imported": 0,
        "compiled": 0,
        "skipped": 0,
        "total": 0,
        "sources": {},
        "files": [],
    }
    assert report.render_text() == "imported 0 of 0 files (0 skipped)"


def test_write_policy_round_trips_through_load_policy(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a.toml", EQL_RULE)
    write(src / "b.toml", rule_toml(rule_id="b", name="Curl!! run", description='say "hi"\\ \nand\tbye'))
    write(src / "c.toml", rule_toml(rule_id="c", name="curl run"))
    write(
        src / "d.toml",
        rule_toml(rule_id="d", name="???", query="process where process.name : \"x'''y\"", basic_query=True),
    )
    write(
        src / "e.toml",
        rule_toml(rule_id="e", name="quote", query='process where process.name : "it\'s" and true'),
    )
    write(src / "f.toml", rule_toml(rule_id="f", language="kuery"))
    write(
        src / "g.toml",
        rule_toml(rule_id="g", name="Tail", query="process where process.name == \"a\" // it''"),
    )
    report = import_elastic([src])
    assert report.imported == 6
    out = tmp_path / "out" / "policy"
    written = write_policy(report, out)
    assert [p.name for p in written] == [
        "suspicious-execution-from-tmp.toml",
        "curl-run.toml",
        "curl-run-2.toml",
        "d.toml",
        "quote.toml",
        "tail.toml",
    ]
    assert written[5].read_text().endswith("""query = '''\nprocess where process.name == "a" // it'''''\n""")
    assert all(p.parent == out for p in written)
    assert "query = '''\nprocess where event.type" in written[0].read_text()
    assert 'query = "process where process.name : \\"x\'\'\'y\\""' in written[3].read_text()
    for path, rule in zip(written, report.rules, strict=True):
        loaded = load_policy(path).rules
        assert len(loaded) == 1
        back = loaded[0]
        assert (back.id, back.name, back.severity, back.action, back.mode) == (
            rule.id,
            rule.name,
            rule.severity,
            "alert",
            None,
        )
        assert back.query == rule.query
        assert back.description == rule.description
    whole = load_policy(out)
    assert sorted(r.id for r in whole.rules) == sorted(r.id for r in report.rules)
    assert load_policy(written[1]).rules[0].description == 'say "hi"\\ \nand\tbye'
    assert write_policy(report, out) == written  # idempotent: same names, overwritten


def test_nonexistent_path_raises(tmp_path: Path) -> None:
    good = write(tmp_path / "a.toml", rule_toml())
    missing = tmp_path / "absent"
    with pytest.raises(PolicyError) as info:
        import_elastic([good, missing])
    assert str(info.value) == f"{missing}: no such file or directory"


# ------------------------------------------------------------------------------- Defend behaviour rules


def defend_toml(
    *,
    rule_id: str = "d-1",
    name: str = "Defend rule",
    query: str = 'process where event.type == "start" and process.name == "nc"',
    os_list: str = '["linux"]',
    actions: str = '[[actions]]\naction = "kill_process"\nfield = "process.entity_id"\nstate = 0\n',
    extra: str = "",
    head: str = "",
) -> str:
    return (
        f'{head}[rule]\ndescription = "Netcat."\nid = "{rule_id}"\nlicense = "Elastic License v2"\nname = "{name}"\n'
        f"os_list = {os_list}\nversion = \"1.0.0\"\n{extra}query = '''\n{query}\n'''\n"
        'min_endpoint_version = "8.4.0"\noptional_actions = []\n'
        f'{actions}\n[internal]\nmin_endpoint_version = "8.4.0"\n'
    )


def test_defend_rule_becomes_a_kill_rule(tmp_path: Path) -> None:
    f = write(tmp_path / "d.toml", defend_toml())
    report = import_elastic([f])
    entry = report.entries[0]
    assert (entry.status, entry.source, entry.rule_id, entry.name) == (
        "imported",
        DEFEND,
        "d-1",
        "Defend rule",
    )
    rule = entry.rule
    assert rule is not None
    assert (rule.id, rule.action, rule.severity, rule.mode) == ("d-1", "kill", DEFEND_SEVERITY, None)
    origin = elastic_origin(rule.description)
    assert origin == (
        "Elastic Defend kill_process: process.entity_id (state 0); "
        "imported as kill: SIGKILL to the process of the last matching event"
    )
    assert rule.description == origin + "\nNetcat."


def test_defend_states_and_fields_are_named(tmp_path: Path) -> None:
    actions = "".join(
        f'[[actions]]\naction = "kill_process"\nfield = "{field}"\nstate = {state}\n'
        for field, state in [
            ("process.entity_id", 1),
            ("process.entity_id", 0),
            ("process.parent.entity_id", 1),
        ]
    )
    query = "sequence by process.entity_id [process where true] [network where true]"
    rule = import_elastic([write(tmp_path / "d.toml", defend_toml(actions=actions, query=query))]).rules[0]
    assert elastic_origin(rule.description) == (
        "Elastic Defend kill_process: process.entity_id (states 0, 1), process.parent.entity_id (state 1); "
        "imported as kill: SIGKILL to the process of the last matching event"
    )


@pytest.mark.parametrize(
    ("actions", "action", "origin"),
    [
        ("", "alert", "Elastic Defend rule without actions: imported as alert"),
        (
            '[[actions]]\naction = "isolate"\n',
            "alert",
            "Elastic Defend isolate (no equivalent here); imported as alert",
        ),
    ],
)
def test_defend_rule_without_kill_alerts(tmp_path: Path, actions: str, action: str, origin: str) -> None:
    rule = import_elastic([write(tmp_path / "d.toml", defend_toml(actions=actions))]).rules[0]
    assert (rule.action, elastic_origin(rule.description)) == (action, origin)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"os_list": '["windows"]'}, 'os_list is ["windows"], without linux'),
        ({"os_list": '"linux"'}, 'os_list: expected an array of strings, got "linux"'),
        ({"actions": '[[actions]]\naction = "kill_process"\nfield = "process.entity_id"\n'},
         "actions #1: state: expected a non-negative integer, got null"),
        ({"actions": '[[actions]]\naction = "kill_process"\nstate = 0\nfield = 3\n'},
         "actions #1: field: expected a non-empty string, got 3"),
        ({"actions": "", "head": 'actions = "kill"\n'}, 'actions: expected an array of tables, got "kill"'),
        ({"extra": 'language = "kuery"\n'}, 'language is "kuery", not "eql"'),
        ({"extra": 'severity = "extreme"\n'}, 'severity is "extreme", not one of low, medium, high, critical'),
    ],
)  # fmt: skip
def test_defend_rule_skipped(tmp_path: Path, kwargs: dict[str, str], reason: str) -> None:
    report = import_elastic([write(tmp_path / "d.toml", defend_toml(**kwargs))])
    assert only(report) == ("skipped", reason)
    assert report.entries[0].source == DEFEND


def test_defend_severity_when_given(tmp_path: Path) -> None:
    rule = import_elastic([write(tmp_path / "d.toml", defend_toml(extra='severity = "low"\n'))]).rules[0]
    assert rule.severity == "low"


def test_mixed_sources_sum_per_kind(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", rule_toml(rule_id="a"))
    write(tmp_path / "b.toml", defend_toml(rule_id="b"))
    write(tmp_path / "c.toml", defend_toml(rule_id="a"))  # Elastic's ids are one namespace
    write(tmp_path / "d.toml", "not toml [")
    report = import_elastic([tmp_path])
    assert [(e.source, e.status) for e in report.entries] == [
        (DETECTION, "imported"),
        (DEFEND, "imported"),
        (DEFEND, "skipped"),
        ("unknown", "skipped"),
    ]
    assert report.by_source() == {DETECTION: (1, 1), DEFEND: (1, 2), "unknown": (0, 1)}
    text = report.render_text().splitlines()
    assert text[4:8] == [
        "imported 2 of 4 files (2 skipped)",
        f"  {DETECTION}: imported 1 of 1",
        f"  {DEFEND}: imported 1 of 2",
        "  unknown: imported 0 of 1",
    ]


def test_defend_rules_round_trip_as_kill(tmp_path: Path) -> None:
    report = import_elastic([write(tmp_path / "src" / "d.toml", defend_toml())])
    (path,) = write_policy(report, tmp_path / "out")
    back = load_policy(path).rules[0]
    assert (back.id, back.action, back.description) == ("d-1", "kill", report.rules[0].description)
    assert elastic_origin(back.description) is not None


def test_vendored_defend_rules_import_with_their_ids_and_actions() -> None:
    files = sorted(DEFEND_DIR.glob("*.toml"))
    report = import_elastic([DEFEND_DIR])
    assert report.total == len(files) > 200
    assert {e.source for e in report.entries} == {DEFEND}
    assert not [e.reason for e in report.entries if "missing language" in (e.reason or "")]
    assert not [e.reason for e in report.entries if "unknown field" in (e.reason or "")]
    for f, entry in zip(files, report.entries, strict=True):
        data = tomllib.loads(f.read_text())
        assert entry.rule_id == data["rule"]["id"]
        if entry.rule is None:
            continue
        kills = [a for a in data["actions"] if a["action"] == "kill_process"]
        assert entry.rule.action == ("kill" if kills else "alert")
        origin = elastic_origin(entry.rule.description)
        assert origin is not None
        for a in kills:
            assert a["field"] in origin
    assert report.imported > report.total * 0.9
    print(f"defend-behavior: imported {report.imported} of {report.total}")


def test_vendored_detection_rules_keep_alert_and_miss_no_field() -> None:
    report = import_elastic([DETECTION_DIR])
    assert {e.source for e in report.entries} == {DETECTION}
    assert {r.action for r in report.rules} == {"alert"}
    assert not [e.reason for e in report.entries if "unknown field" in (e.reason or "")]
    eql = [e for e in report.entries if not (e.reason or "").startswith("language is")]
    assert report.imported > len(eql) * 0.9
    print(f"detection-rules: imported {report.imported} of {report.total} ({len(eql)} EQL)")
