"""guardctl rules coverage: per rule, whether the agent produces what it reads, on Elastic's real rules."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from guard import cli
from guard.lsm import catalog
from guard.lsm.catalog import CATALOG, NOW, PLANNED, Row
from guard.lsm.probe import Feature, ProbeReport
from guard.model import BackendName
from guard.plan.coverage import coverage, rule_coverage, rule_needs, unfilled_fields
from guard.plan.explain import explain_policy
from guard.policy.elastic import import_elastic, write_policy
from guard.policy.engine import Engine
from guard.policy.loader import Rule, load_policy

ROOT = Path(__file__).parents[3]
RULES = ROOT / "tests" / "data" / "elastic-rules"
DETECTION = RULES / "detection-rules" / "rules" / "linux"
DEFEND = RULES / "protections-artifacts" / "behavior" / "rules" / "linux"


def elastic_rule(path: Path) -> Rule:
    report = import_elastic([path])
    assert report.imported == 1, report.entries[0].reason
    return report.rules[0]


def policy_rule(tmp_path: Path, query: str) -> Rule:
    (tmp_path / "p.toml").write_text(
        f'[[rule]]\nid = "r"\nname = "r"\nseverity = "low"\naction = "alert"\nquery = \'\'\'\n{query}\n\'\'\'\n'
    )
    return load_policy(tmp_path / "p.toml").rules[0]


#: process.name and process.args of an exec: Defend's "Potential Memory Dumping via dd"
DD = DEFEND / "credential_access_potential_memory_dumping_via_dd.toml"
#: reads auditd.data.a0 and .syscall (Auditbeat): no sensor here fills them
AUDITD = DETECTION / "defense_evasion_prctl_process_name_tampering.toml"
#: an exclusion on an auditd field (``not auditd.data.a2 == "80000"``): it can fire, the exclusion never applies
EXCLUDING = DETECTION / "privilege_escalation_suspicious_passwd_file_write.toml"
#: a uid_change event: captured at the setuid family's exit
UID_CHANGE = DEFEND / "privilege_escalation_uid_change_to_0_from_unusual_process_executable.toml"
#: Defend's ptrace event (process/start/ptrace with process.Ext.ptrace.*): captured at ptrace's exit
PTRACE = DEFEND / "credential_access_potential_credential_access_via_ptrace.toml"


def test_exec_rule_can_fire_once_the_catalog_says_so() -> None:
    rule = elastic_rule(DD)
    (need,) = rule_needs(rule)
    assert need.category == "process"
    assert {"process.name", "process.args", "event.type", "event.action"} <= need.fields
    assert rule_coverage(rule, "lsm").status == "can fire"
    # without today's exec rows (the process record's image and the agent's table), not yet
    before = [r for r in CATALOG if not (r.since == NOW and (r.by == "agent" or catalog.EXEC in r.kinds))]
    cov = rule_coverage(rule, "lsm", catalog=before)
    assert (cov.status, cov.missing_fields, cov.missing_kinds, cov.planned) == (
        "cannot fire",
        ("process.args",),
        (),
        True,
    )
    flipped = [Row(r.kinds, NOW, r.by, r.fields) if r.since == PLANNED and catalog.EXEC in r.kinds else r
               for r in before]  # fmt: skip
    assert rule_coverage(rule, "lsm", catalog=flipped).status == "can fire"


def test_auditd_rule_cannot_fire_and_names_auditd_fields() -> None:
    rule = elastic_rule(AUDITD)
    cov = rule_coverage(rule, "lsm")
    assert cov.status == "cannot fire"
    assert cov.planned is False
    assert [f for f in cov.missing_fields if f.startswith("auditd.")] == [
        "auditd.data.a0",
        "auditd.data.syscall",
    ]
    assert "auditd.data.a0" in unfilled_fields(rule)
    assert "auditd.data.a0" in unfilled_fields(rule, since=(NOW, PLANNED))


def test_a_field_only_an_exclusion_reads_is_not_needed_to_fire_and_is_named() -> None:
    rule = elastic_rule(EXCLUDING)
    cov = rule_coverage(rule, "lsm")
    assert cov.status == "can fire"
    assert cov.missing_fields == ()
    assert cov.unfilled_exclusions == ("auditd.data.a2",)
    assert "exclusions never apply: auditd.data.a2 unfilled" in cov.render()
    assert unfilled_fields(rule) == ("auditd.data.a2",)  # explain still names it
    # and it does fire on events without the field (the engine's own null semantics)
    base = {"host": {"os": {"type": "linux"}, "id": "h1"}, "user": {"id": "1000"}}
    events = [
        {**base, "@timestamp": 1, "event": {"category": ["process"], "type": ["start"], "action": "exec"},
         "process": {"name": "openssl", "args": ["openssl", "passwd"], "parent": {"pid": 77}}},
        {**base, "@timestamp": 2, "event": {"category": ["file"], "type": ["change"], "outcome": "success"},
         "file": {"path": "/etc/passwd"}, "process": {"parent": {"pid": 77}}},
    ]  # fmt: skip
    assert [a.rule.id for a in Engine([rule]).process(events)] == [rule.id]


def test_a_like_under_not_is_needed_and_a_not_equal_is_not(tmp_path: Path) -> None:
    needs = rule_needs(
        policy_rule(
            tmp_path,
            'file where not (file.Ext.original.name like "*.dpkg-new") and file.name != "a" and '
            'file.extension not in ("b") and not (process.name in ("c", "d")) and file.path == "/etc/x"',
        )
    )
    (need,) = needs
    assert need.fields == {"file.Ext.original.name", "file.path"}
    assert need.excluding == {"file.name", "file.extension", "process.name"}


def test_a_planned_event_kind_is_named_until_it_lands() -> None:
    planned = [Row(r.kinds, PLANNED, r.by, r.fields) if catalog.PTRACE in r.kinds else r for r in CATALOG]
    cov = rule_coverage(elastic_rule(PTRACE), "lsm", catalog=planned)
    assert cov.status == "cannot fire"
    assert cov.missing_kinds == ('process where event.action == "ptrace" and event.type == "start"',)
    assert cov.planned is True
    assert rule_coverage(elastic_rule(PTRACE), "lsm").status == "can fire"  # landed
    assert rule_coverage(elastic_rule(UID_CHANGE), "compat").status == "can fire"


def test_optional_fields_are_not_needed(tmp_path: Path) -> None:
    plain = policy_rule(
        tmp_path,
        'process where process.name == "sh" and process.parent.thread.capabilities.effective == "CAP_BPF"',
    )
    cov = rule_coverage(plain, "lsm")
    assert (cov.status, cov.missing_fields) == (
        "cannot fire",
        ("process.parent.thread.capabilities.effective",),
    )
    optional = policy_rule(
        tmp_path,
        'process where process.name == "sh" and ?process.parent.thread.capabilities.effective == "CAP_BPF"',
    )
    assert rule_coverage(optional, "lsm").status == "can fire"


def test_every_sequence_step_is_needed(tmp_path: Path) -> None:
    rule = policy_rule(
        tmp_path,
        'sequence by process.entity_id [process where event.action == "exec"] '
        '[file where event.action == "already_running"] '
        '[file where event.type == "deletion" and dns.question.name == "x"]',
    )
    cov = rule_coverage(rule, "lsm")
    assert cov.missing_kinds == ('file where event.action == "already_running"',)
    assert cov.missing_fields == ("dns.question.name",)
    assert cov.planned is False  # neither is in any plan


def test_planes_differ(tmp_path: Path) -> None:
    rule = policy_rule(tmp_path, 'file where event.action == "chmod" and file.mode == "0755"')
    assert rule_coverage(rule, "lsm").status == "can fire"
    cov = rule_coverage(rule, "compat")
    assert (cov.status, cov.missing_kinds) == ("cannot fire", ('file where event.action == "chmod"',))
    assert rule_coverage(rule, "lsm", features={"raw_tracepoint"}).status == "cannot fire"


def test_alias_fields_are_read_from_the_aliased_step() -> None:
    rule = elastic_rule(DEFEND / "command_and_control_dns_request_by_recently_created_executable.toml")
    first, second = rule_needs(rule)[:2]
    assert "file.path" in first.fields  # event0.file.path, read by the DNS step
    assert second.category == "dns"
    assert "process.executable" in second.fields


def test_lineage_filters_are_needs() -> None:
    rule = elastic_rule(DEFEND / "persistence_egress_connection_by_a_dnf_package_manager_descendant.toml")
    step, network, ancestor = rule_needs(rule)
    assert step.describe() == 'process where event.action == "exec" and event.type == "start"'
    assert {"process.entity_id", "process.parent.entity_id"} <= step.fields  # descendant of [...]
    assert network.category == "network"
    assert ancestor.describe() == 'process where event.action == "exec"'  # the lineage filter
    assert ancestor.fields == {"event.action", "process.name"}


def test_the_vendored_sets() -> None:
    report = coverage([RULES], "lsm")
    files = sorted(RULES.rglob("*.toml"))
    assert len(report.entries) == len(files)
    counts = report.by_source()
    assert sum(counts["detection-rules"].values()) == len(list(DETECTION.glob("*.toml")))
    assert sum(counts["defend-behavior"].values()) == len(list(DEFEND.glob("*.toml")))
    not_imported = {e.reason for e in report.entries if e.status == "not imported"}
    assert {r.split(",")[0] for r in not_imported if r} <= {'language is "kuery"', 'language is "esql"'}
    compiled = report.count("can fire") + report.count("cannot fire")
    assert report.count("can fire") >= 0.9 * compiled  # the goal: 9 in 10 of Elastic's Linux rules can fire
    assert report.count("cannot fire") > 0
    top = report.missing_fields()
    assert top == sorted(top, key=lambda kv: (-kv[1], kv[0]))
    for field, n in top:
        assert n == sum(1 for e in report.entries if field in e.missing_fields)
    data: dict[str, Any] = report.to_json(top=5)
    assert len(data["missing_fields"]) == 5
    assert data["can_fire"] + data["cannot_fire"] + data["not_imported"] == len(files)
    full: dict[str, Any] = report.to_json()
    auditd = [m for m in full["missing_fields"] if m["field"].startswith("auditd.")]
    assert auditd
    assert {m["source"] for m in auditd} == {"Auditbeat auditd module"}
    text = report.render_text(top=3).splitlines()
    assert text[len(files)].startswith(f"plane lsm: {report.count('can fire')} of ")
    print("\n".join(text[len(files) :]))


def test_our_policies_and_kernel_inline_rules() -> None:
    report = coverage([ROOT / "policies"], "compat")
    rows = {e.rule_id: e for e in report.entries}
    assert {e.source for e in report.entries} == {"policy"}
    assert rows["block_ptrace_protected"].kernel_inline  # decided from the kernel's protected tgids
    assert rows["block_ptrace_protected"].status == "can fire"
    chmod = rows["block_download_chmod_exec"]  # its chmod step: no tracepoint sees a chmod
    assert (chmod.status, chmod.kernel_inline) == ("cannot fire", False)
    assert chmod.missing_kinds == ('file where event.action == "chmod"',)


def test_unreadable_policy_file_is_not_imported(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[[rule]]\nid = "x"\n')
    (entry,) = coverage([tmp_path], "lsm").entries
    assert (entry.status, entry.source) == ("not imported", "policy")
    assert "name: missing" in (entry.reason or "") or "query: missing" in (entry.reason or "")


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "coverage", str(DD), str(AUDITD), "--plane", "lsm", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["plane"], data["can_fire"], data["cannot_fire"]) == ("lsm", 1, 1)
    assert [(r["rule_id"], r["status"]) for r in data["rules"]] == [  # in the order named
        (elastic_rule(DD).id, "can fire"),
        (elastic_rule(AUDITD).id, "cannot fire"),
    ]


def test_cli_auto_uses_the_probed_plane_and_features(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def report(backend: BackendName, available: tuple[str, ...]) -> ProbeReport:
        feats = tuple(Feature(n, True, "") for n in available)
        return ProbeReport("6.8", feats, (), backend, ("because",))

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(cli, "probe_kernel", lambda *a, **k: report(BackendName.COMPAT, ("raw_tracepoint",)))
    assert cli.main(["rules", "coverage", str(DD), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["plane"], data["can_fire"]) == ("compat", 1)
    monkeypatch.setattr(cli, "probe_kernel", lambda *a, **k: report(BackendName.COMPAT, ()))
    assert cli.main(["rules", "coverage", str(DD), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cannot_fire"] == 1  # no feature: no event
    monkeypatch.setattr(cli, "probe_kernel", lambda *a, **k: report(BackendName.FAKE, ()))
    assert cli.main(["rules", "coverage", str(DD)]) != 0
    assert "neither lsm nor compat can run here: because" in capsys.readouterr().err
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["rules", "coverage", str(DD)]) == 4


def test_explain_names_unfilled_fields_and_the_elastic_actions(tmp_path: Path) -> None:
    report = import_elastic([DD, AUDITD])
    write_policy(report, tmp_path)
    rows = {r.rule.id: r for r in explain_policy(load_policy(tmp_path), BackendName.LSM, {})}
    dd, auditd = rows[report.rules[0].id], rows[report.rules[1].id]
    assert auditd.unfilled == ("auditd.data.a0", "auditd.data.syscall")
    assert auditd.note.endswith("; no sensor fills auditd.data.a0, auditd.data.syscall")
    assert auditd.to_json()["unfilled_fields"] == ["auditd.data.a0", "auditd.data.syscall"]
    assert dd.rule.action == "kill"
    assert "[Elastic Defend kill_process: process.entity_id (state 0)" in dd.note
    assert dd.unfilled == ()
