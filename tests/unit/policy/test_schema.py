"""guard.policy.schema: every field Elastic's vendored Linux rules read is typed, as ECS types it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from guard.errors import PolicyError
from guard.policy.ast import AliasField, Field, SequenceStep
from guard.policy.parser import parse_query
from guard.policy.schema import ECS, FOREIGN_SOURCES, Kind, foreign_source
from guard.policy.walker import iter_nodes

RULES = Path(__file__).parents[2] / "data" / "elastic-rules"
SETS = {
    "detection-rules": RULES / "detection-rules" / "rules" / "linux",
    "defend-behavior": RULES / "protections-artifacts" / "behavior" / "rules" / "linux",
}


def eql_queries(directory: Path) -> list[tuple[str, str]]:
    out = []
    for f in sorted(directory.glob("*.toml")):
        rule = tomllib.loads(f.read_text())["rule"]
        if rule.get("language", "eql") == "eql" and rule.get("type", "eql") == "eql":
            out.append((f.name, rule["query"]))
    return out


def fields_of(query: str) -> set[str]:
    """The fields a query reads; ``event0.process.name`` through a step's alias is ``process.name``."""
    nodes = list(iter_nodes(parse_query(query)))
    aliases = {n.alias for n in nodes if isinstance(n, SequenceStep) and n.alias}
    out = set()
    for n in nodes:
        if isinstance(n, Field) and n.path[0] in aliases:
            out.add(".".join(n.path[1:]))
        elif isinstance(n, Field | AliasField):
            out.add(n.name)
    return out


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_field_the_vendored_rules_read_is_in_the_schema(name: str) -> None:
    queries = eql_queries(SETS[name])
    assert len(queries) > 200
    read: dict[str, str] = {}
    unparsed = 0
    for file, query in queries:
        try:
            fields = fields_of(query)
        except PolicyError:
            unparsed += 1  # the parser's business (tests/unit/policy/test_endpoint_dialect.py)
            continue
        for f in fields:
            read.setdefault(f, file)
    assert unparsed <= 5
    assert len(read) > 40
    unknown = {f: file for f, file in read.items() if f not in ECS.fields}
    assert unknown == {}


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("user.id", Kind.STRING),
        ("group.id", Kind.STRING),
        ("process.user.id", Kind.STRING),
        ("process.parent.group.id", Kind.STRING),
        ("process.real_group.id", Kind.STRING),
        ("process.saved_user.name", Kind.STRING),
        ("user.Ext.real.id", Kind.STRING),
        ("group.Ext.real.id", Kind.STRING),
        ("process.thread.capabilities.effective", Kind.STRING),
        ("process.thread.capabilities.permitted", Kind.STRING),
        ("process.entry_leader.entry_meta.type", Kind.STRING),
        ("process.entry_leader.entry_meta.source.ip", Kind.IP),
        ("process.session_leader.entity_id", Kind.STRING),
        ("process.group_leader.executable", Kind.STRING),
        ("process.parent.interactive", Kind.BOOLEAN),
        ("process.interactive", Kind.BOOLEAN),
        ("process.tty.char_device.major", Kind.NUMBER),
        ("process.env_vars", Kind.STRING),
        ("process.pid", Kind.NUMBER),
        ("process.parent.pid", Kind.NUMBER),
        ("process.args_count", Kind.NUMBER),
        ("process.exit_code", Kind.NUMBER),
        ("process.start", Kind.DATE),
        ("process.Ext.memfd.name", Kind.STRING),
        ("process.Ext.ptrace.child_pid", Kind.NUMBER),
        ("file.Ext.original.path", Kind.STRING),
        ("file.Ext.original.extension", Kind.STRING),
        ("file.Ext.entropy", Kind.NUMBER),
        ("file.extension", Kind.STRING),
        ("file.size", Kind.NUMBER),
        ("dns.question.name", Kind.STRING),
        ("destination.ip", Kind.IP),
        ("source.port", Kind.NUMBER),
        ("host.ip", Kind.IP),
        ("host.os.full", Kind.STRING),
        ("host.architecture", Kind.STRING),
        ("auditd.data.syscall", Kind.STRING),
        ("data_stream.dataset", Kind.STRING),
    ],
)
def test_kinds_follow_ecs(field: str, kind: Kind) -> None:
    assert ECS.kind(field) is kind


def test_windows_only_fields_stay_unknown() -> None:
    assert ECS.kind("process.Ext.token.integrity_level_name") is None
    assert ECS.kind("registry.path") is None


def test_foreign_sources() -> None:
    assert foreign_source("auditd.data.syscall") == "Auditbeat auditd module"
    assert foreign_source("system.auth.ssh.event") == "Filebeat system module"
    assert foreign_source("process.name") is None
    assert foreign_source("auditdx") is None
    for prefix in FOREIGN_SOURCES:
        assert any(f.startswith(prefix) for f in ECS.fields), prefix
