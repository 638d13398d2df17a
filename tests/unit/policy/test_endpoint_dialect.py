"""Elastic Endpoint's EQL dialect on the vendored Elastic rules: aliases, lineage, keyword numbers, samples.

Every behaviour is shown on real rule queries (loaded from tests/data/elastic-rules) with the events
a re-enactment produces under the event contract (docs/testing.md), and the streaming engine must
give the offline evaluator's answers in batches of 1, 7 and all.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from guard.errors import PolicySemanticError, PolicySyntaxError
from guard.policy.analyzer import analyze, compile_query
from guard.policy.ast import AliasField, Comparison, InSet, Lineage, Literal, Sample
from guard.policy.engine import Budgets, Engine
from guard.policy.evaluator import evaluate, match_sample
from guard.policy.loader import Rule
from guard.policy.parser import parse_query
from guard.policy.schema import ECS, Kind, Schema
from guard.policy.walker import iter_nodes

RULES = Path(__file__).resolve().parents[2] / "data" / "elastic-rules"
PA = RULES / "protections-artifacts" / "behavior" / "rules" / "linux"
DR = RULES / "detection-rules" / "rules" / "linux"
TB = "event.sequence"


def _queries(root: Path) -> dict[str, str]:
    out = {}
    for f in sorted(root.glob("*.toml")):
        rule = tomllib.loads(f.read_text())["rule"]
        if rule.get("language", "eql") == "eql" and "query" in rule:
            out[f.stem] = rule["query"]
    return out


PA_QUERIES = _queries(PA)
DR_QUERIES = _queries(DR)


def _rule(rule_id: str, query: str, schema: Schema = ECS) -> Rule:
    return Rule(rule_id, rule_id, "low", "alert", None, query, compile_query(query, schema), "<test>")


def _real(stem: str) -> Rule:
    return _rule(stem, PA_QUERIES.get(stem) or DR_QUERIES[stem])


# --------------------------------------------------------------------------- events (the event contract)

_clock = iter(range(1, 1_000_000))


def _base(category: str, type_: str, action: str, entity: str, uid: str = "1000") -> dict[str, Any]:
    n = next(_clock)
    return {
        "@timestamp": 1_700_000_000_000 + n,
        "event": {"category": [category], "type": [type_], "action": action, "sequence": n},
        "host": {"id": "h1", "name": "box", "os": {"type": "linux"}},
        "process": {"entity_id": entity},
        "user": {"id": uid},
    }


def exec_(entity: str, parent: str, exe: str, *args: str, uid: str = "1000", **more: Any) -> dict[str, Any]:
    """A process exec: event.type start, action exec, as the agent reports it (``pfields``: the parent's)."""
    parent_fields = more.pop("pfields", {})
    ev = _base("process", "start", "exec", entity, uid=uid)
    name = exe.rsplit("/", 1)[-1]
    argv = [name, *args]
    ev["process"].update(
        name=name, executable=exe, args=argv, args_count=len(argv), command_line=" ".join(argv),
        working_directory="/root", parent={**_BASH, "entity_id": parent, **parent_fields}, **more,
    )  # fmt: skip
    return ev


#: the parent fields an exec carries when a test does not say otherwise (the agent fills every one)
_BASH: dict[str, Any] = {
    "name": "bash", "executable": "/usr/bin/bash", "args": ["bash"], "args_count": 1, "command_line": "bash",
    "working_directory": "/root", "pid": 100, "user": {"id": "1000", "name": "alice"},
    "group": {"id": "1000", "name": "alice"},
}  # fmt: skip


def fork(entity: str, parent: str, exe: str = "/usr/bin/bash") -> dict[str, Any]:
    """A fork: event.type start, action fork (the child runs its parent's image)."""
    ev = _base("process", "start", "fork", entity)
    ev["process"].update(name=exe.rsplit("/", 1)[-1], executable=exe, parent={"entity_id": parent})
    return ev


def connect(entity: str, parent: str, exe: str, ip: str, port: int = 443) -> dict[str, Any]:
    ev = _base("network", "start", "connection_attempted", entity)
    ev["process"].update(name=exe.rsplit("/", 1)[-1], executable=exe, parent={"entity_id": parent})
    ev["destination"] = {"ip": ip, "port": port}
    ev["network"] = {"type": "ipv4", "transport": "tcp"}
    return ev


def file_(action: str, entity: str, parent: str, exe: str, path: str) -> dict[str, Any]:
    type_ = {"creation": "creation", "deletion": "deletion"}.get(action, "change")
    ev = _base("file", type_, action, entity)
    ev["process"].update(name=exe.rsplit("/", 1)[-1], executable=exe, parent={"entity_id": parent})
    name = path.rsplit("/", 1)[-1]
    ev["file"] = {"path": path, "name": name, "directory": path.rsplit("/", 1)[0] or "/"}
    return ev


# --------------------------------------------------------------------------- the evaluator and the engine agree


def _ids(events: Sequence[Mapping[str, Any] | None]) -> tuple[object, ...]:
    return tuple(-1 if e is None else e["event"]["sequence"] for e in events)


def agree(rules: Sequence[Rule], events: list[dict[str, Any]], **engine_args: Any) -> dict[str, list[Any]]:
    """Every rule's offline answer, checked equal to the engine's in batches of 1, 7 and all."""
    offline = {}
    for rule in rules:
        rows = evaluate(rule.ir, events, tiebreaker_field=TB, limit=None)
        offline[rule.id] = [(_ids(m.events), m.join_keys) for m in rows]
    for batch in (1, 7, len(events) or 1):
        engine = Engine(rules, **engine_args)
        alerts = []
        for start in range(0, len(events), batch):
            alerts.extend(engine.process(events[start : start + batch]))
        alerts.extend(engine.flush())
        streamed: dict[str, list[Any]] = {}
        for a in sorted(alerts, key=lambda a: a.seq):
            streamed.setdefault(a.rule.id, []).append((_ids(a.events), a.join_keys))
        for rule in rules:
            got, want = streamed.get(rule.id, []), offline[rule.id]
            if rule.ir.is_sample:  # samples complete in stream order; Elasticsearch lists them by key
                got, want = sorted(got, key=repr), sorted(want, key=repr)
            assert got == want, f"batch {batch}: {rule.id}"
    return offline


# --------------------------------------------------------------------------- every vendored query


@pytest.mark.parametrize("name", ["behavior", "detection"])
def test_every_vendored_query_parses_analyzes_and_round_trips(name: str) -> None:
    queries = PA_QUERIES if name == "behavior" else DR_QUERIES
    assert len(queries) >= 200
    failures = {}
    for stem, text in queries.items():
        query = parse_query(text)  # no syntax or construct failure is left
        assert parse_query(query.render()) == query, stem
        try:
            analyze(query)
        except PolicySemanticError as exc:
            failures[stem] = str(exc)
    # the ECS schema is another module's: only its gaps (unknown fields) may fail, and few
    assert {s: m for s, m in failures.items() if "unknown field" not in m} == {}
    assert len(failures) < len(queries) // 10


def test_the_vendored_rules_use_every_construct() -> None:
    """The constructs this dialect adds are the ones the real rules use (so the tests above cover them)."""
    parsed = {stem: parse_query(q) for stem, q in {**PA_QUERIES, **DR_QUERIES}.items()}
    aliases = [s for s, q in parsed.items() if "] as event0" in q.render()]
    lineage = {n.relation for q in parsed.values() for n in iter_nodes(q) if isinstance(n, Lineage)}
    samples = [s for s, q in parsed.items() if isinstance(q.body, Sample)]
    assert len(aliases) >= 13
    assert lineage == {"descendant"}
    assert len(samples) == 3


def test_raw_strings_may_end_in_quotes() -> None:
    stem = "persistence_unusual_command_execution_via_cron"
    texts = [n.patterns for n in iter_nodes(parse_query(PA_QUERIES[stem])) if hasattr(n, "patterns")]
    flat = [p for ps in texts for p in ps]
    assert (
        '/bin/sh -c wget -q -O /dev/null "https://*/v2/index.php?route=cron/recurring&platform_id=1"' in flat
    )
    q = parse_query('process where process.command_line == """say "hi"""" and true')
    assert q.body.condition.terms[0].right == Literal('say "hi"')  # type: ignore[union-attr]


# --------------------------------------------------------------------------- aliases


def test_alias_fields_are_typed_like_the_schema_field() -> None:
    rule = _real("defense_evasion_process_execution_followed_by_self_deletion")
    second = rule.ir.steps[1].condition
    (alias,) = [n for n in iter_nodes(second) if isinstance(n, AliasField)]
    assert (alias.alias, alias.name) == ("event0", "process.executable")
    assert rule.ir.steps[0].alias == "event0"
    with pytest.raises(PolicySemanticError, match=r"unknown field 'process\.nope' .*alias 'e0'"):
        compile_query("sequence [process where true] as e0 [file where e0.process.nope == 1]")
    with pytest.raises(PolicySemanticError, match="type mismatch"):
        compile_query('sequence [process where true] as e0 [file where e0.process.pid == "x"]')


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sequence [process where e0.process.name == \"a\"] as e0 [file where true]", "alias 'e0' cannot be read"),
        ("sequence [process where true] by process.pid as e0 [file where true] by e0.process.pid",
         "alias 'e0' cannot be read"),
        ("sequence by process.pid [process where true] as e0 [file where true] by e0.process.pid",
         "alias 'e0' cannot be read"),
        ("sequence with maxspan=1s [process where true] ![file where true] as e0 [file where true]",
         "missing step"),
        ("sequence [process where true] as e0 [file where true] as e0", "names two steps"),
        ("sequence [process where true] as process [file where true]", "also a field name"),
        ("sequence [process where true] as e0 [file where true] until [file where e0.file.path == \"x\"]",
         "alias 'e0' cannot be read"),
        ("sequence [process where true] as e0 [file where descendant of [process where e0.process.pid == 1]]",
         "alias 'e0' cannot be read"),
    ],
)  # fmt: skip
def test_alias_misuse_is_refused(query: str, message: str) -> None:
    with pytest.raises(PolicySemanticError, match=message):
        compile_query(query)


def test_self_deletion_rule_matches_only_the_aliased_executable() -> None:
    rule = _real("defense_evasion_process_execution_followed_by_self_deletion")
    events = [
        exec_("p1", "p0", "/tmp/payload", "--run"),
        file_("deletion", "p1", "p0", "/tmp/payload", "/var/tmp/unrelated"),
        file_("deletion", "p1", "p0", "/tmp/payload", "/tmp/payload"),
        exec_("p2", "p0", "/tmp/other"),
        file_("deletion", "p2", "p0", "/tmp/other", "/tmp/payload"),  # p2 deletes p1's file: not itself
    ]
    got = agree([rule], events)[rule.id]
    assert got == [((events[0]["event"]["sequence"], events[2]["event"]["sequence"]), ("p1",))]


def test_a_rejected_step_keeps_its_partial_pending() -> None:
    """The compiler's file must name the aliased command line; an unrelated file leaves the gcc partial waiting."""
    rule = _real("defense_evasion_linux_compilation_in_suspicious_directory")
    gcc = exec_("c1", "sh1", "/usr/bin/gcc", "-o", "/dev/shm/implant", "implant.c")
    events = [
        gcc,
        file_("creation", "ld1", "c1", "/usr/bin/ld", "/dev/shm/zzz"),  # "zzz" is not in gcc's command line
        file_("creation", "ld1", "c1", "/usr/bin/ld", "/dev/shm/implant"),
    ]
    got = agree([rule], events)[rule.id]
    assert got == [((gcc["event"]["sequence"], events[2]["event"]["sequence"]), None)]


def test_three_aliased_steps_need_three_different_command_lines() -> None:
    rule = _real("collection_multi_value_secret_searching_via_find")
    finds = [
        ("f1", "/", "-type", "f", "-name", "*password*"),
        ("f2", "/", "-type", "f", "-name", "*password*"),  # the same search again: not a second value
        ("f3", "/home", "-type", "f", "-name", "id_rsa"),
        ("f4", "/etc", "-type", "f", "-name", "*token*"),
    ]
    events = [
        exec_(e, "sh9", "/usr/bin/find", *args, pfields={"executable": "/bin/sh"}) for e, *args in finds
    ]
    got = agree([rule], events)[rule.id]
    seqs = [e["event"]["sequence"] for e in events]
    assert got == [((seqs[1], seqs[2], seqs[3]), ("sh9",))]
    assert agree([rule], events[:2] + events[1:2])[rule.id] == []


def test_alias_with_by_keys_and_runs_names_the_last_run() -> None:
    query = """sequence by process.entity_id with maxspan=1m
      [process where event.action == "exec"] by process.parent.entity_id with runs=2 as e0
      [file where event.action == "deletion" and file.path == e0.process.executable] by process.parent.entity_id"""
    rule = _rule("runs", query)
    events = [
        exec_("p1", "p0", "/tmp/first"),
        exec_("p1", "p0", "/tmp/second"),
        file_("deletion", "p1", "p0", "/tmp/second", "/tmp/first"),  # not the alias (the last run)
        file_("deletion", "p1", "p0", "/tmp/second", "/tmp/second"),
    ]
    seqs = [e["event"]["sequence"] for e in events]
    assert agree([rule], events)[rule.id] == [((seqs[0], seqs[1], seqs[3]), ("p1", "p0"))]


# --------------------------------------------------------------------------- lineage


def _dnf_tree() -> list[dict[str, Any]]:
    return [
        exec_("b1", "init", "/usr/bin/bash"),
        fork("d1", "b1"),
        exec_("d1", "b1", "/usr/bin/dnf", "install", "x"),
        fork("s1", "d1", "/usr/bin/dnf"),
        exec_(
            "s1",
            "d1",
            "/usr/bin/sh",
            "-c",
            "scriptlet",
            pfields={"name": "dnf", "executable": "/usr/bin/dnf"},
        ),
        connect("s1", "d1", "/usr/bin/sh", "8.8.8.8"),
        fork("s2", "b1"),  # a sibling of dnf: not its descendant
        exec_("s2", "b1", "/usr/bin/sh", "-c", "true"),
        connect("s2", "b1", "/usr/bin/sh", "8.8.4.4"),
        fork("p3", "s1", "/usr/bin/sh"),  # a grandchild of dnf
        exec_("p3", "s1", "/usr/bin/python3", "-c", "x"),
        connect("p3", "s1", "/usr/bin/python3", "1.1.1.1"),
        connect("p3", "s1", "/usr/bin/python3", "10.0.0.1"),  # private: excluded by the rule
    ]


def test_descendant_rule_on_a_package_manager_tree() -> None:
    rule = _real("persistence_egress_connection_by_a_dnf_package_manager_descendant")
    assert [f.render() for f in rule.ir.lineage] == [
        'process where event.action == "exec" and process.name == "dnf"'
    ]
    events = _dnf_tree()
    seq = {i: e["event"]["sequence"] for i, e in enumerate(events)}
    got = agree([rule], events)[rule.id]
    assert got == [((seq[4], seq[5]), ("s1",)), ((seq[10], seq[11]), ("p3",))]


def test_descendant_child_and_event_of() -> None:
    f = '[process where event.action == "exec" and process.name == "dnf"]'
    rules = [
        _rule(rel, f'any where event.action in ("exec", "connection_attempted") and {rel} of {f}')
        for rel in ("descendant", "child", "event")
    ]
    events = _dnf_tree()
    seq = {i: e["event"]["sequence"] for i, e in enumerate(events)}
    got = agree(rules, events)
    assert got["event"] == [((seq[2],), None)]  # dnf's own exec: the event is observed before it is matched
    assert got["child"] == [((seq[4],), None), ((seq[5],), None)]
    assert got["descendant"] == [((seq[i],), None) for i in (4, 5, 10, 11, 12)]


def test_telnet_login_bypass_and_its_descendants() -> None:
    rule = _real("initial_access_potential_telnet_authentication_bypass_(cve_2026_24061)")
    telnetd = {"name": "telnetd", "executable": "/usr/sbin/telnetd"}
    events = [
        exec_("l1", "t1", "/usr/bin/login", "-p", "-h", "x", "-f", "root", pfields=telnetd),
        exec_("b2", "l1", "/usr/bin/bash", "-i", pfields={"name": "login"}),
        exec_("c3", "b2", "/usr/bin/id", pfields={"name": "bash"}),
        exec_("l9", "t1", "/usr/bin/login", "-p", "-h", "x", "root", pfields=telnetd),  # no -f
        exec_("b9", "l9", "/usr/bin/bash", pfields={"name": "login"}),
    ]
    seq = [e["event"]["sequence"] for e in events]
    assert agree([rule], events)[rule.id] == [((seq[0],), None), ((seq[1],), None), ((seq[2],), None)]


def test_suspicious_descendant_privilege_escalation_by_lineage_alone() -> None:
    """The root shell's parent and image are ordinary: only its /tmp ancestor makes the rule hold."""
    rule = _real(
        "privilege_escalation_potential_local_privilege_escalation_via_a_suspicious_descendant_process"
    )
    user = {"user": {"id": "1000", "name": "alice"}, "group": {"id": "1000", "name": "alice"}}
    py = {"executable": "/usr/bin/python3", "name": "python3", **user}
    events = [
        exec_("x1", "sh0", "/tmp/exploit", uid="1000"),
        fork("y2", "x1", "/tmp/exploit"),
        exec_("y2", "x1", "/usr/bin/python3", "-c", "pty", uid="1000"),
        exec_("z3", "y2", "/usr/bin/bash", "-i", uid="0", interactive=True, pfields=py),
        exec_("z4", "q0", "/usr/bin/bash", "-i", uid="0", interactive=True, pfields=py),  # no /tmp ancestor
    ]
    assert agree([rule], events)[rule.id] == [((events[3]["event"]["sequence"],), None)]


def test_lineage_state_is_bounded_and_counted() -> None:
    rule = _rule("d", 'process where descendant of [process where process.name == "dnf"]')
    events = [exec_("d1", "b1", "/usr/bin/dnf")]
    events += [exec_(f"c{i}", f"c{i - 1}" if i else "d1", "/usr/bin/sh") for i in range(6)]
    assert len(agree([rule], events)["d"]) == 6  # unbounded, as the defaults are here
    engine = Engine([rule], budgets=Budgets(max_lineage_processes=3))
    alerts = engine.run(events)
    assert len(alerts) < 6  # the oldest parents were forgotten: the deepest lost their ancestry
    assert engine.stats["d"].lineage_evicted == 4
    assert engine.state_size()["lineage"] <= 3 + 1
    assert [(b.rule_id, b.kind, b.count) for b in engine.budget_events()] == [("d", "lineage_evicted", 4)]


def test_unknown_relations_and_user_code_are_refused() -> None:
    with pytest.raises(PolicySyntaxError, match="unknown relation 'parent'"):
        parse_query("process where parent of [process where true]")
    with pytest.raises(PolicySemanticError, match="cannot call lua: or wasm:"):
        compile_query("process where lua:f(process.name) and child of [process where true]")


def test_lineage_reads_only_the_entity_fields_of_the_event() -> None:
    from guard.policy.walker import fields_read

    cond = compile_query('network where child of [process where process.name == "x"]').steps[0].condition
    assert set(fields_read(cond)) == {"process.entity_id", "process.parent.entity_id"}


def test_random_trees_agree_between_evaluator_and_engine() -> None:
    rng = random.Random(7)  # noqa: S311 - a reproducible stream, not a secret
    names = ["bash", "dnf", "sh", "python3", "curl"]
    events: list[dict[str, Any]] = []
    alive = ["root"]
    for n in range(300):
        parent = rng.choice(alive)
        entity = f"e{n}"
        name = rng.choice(names)
        kind = rng.random()
        if kind < 0.5:
            events.append(exec_(entity, parent, f"/usr/bin/{name}", "-c", rng.choice(["a", "b"])))
            alive.append(entity)
        elif kind < 0.7:
            events.append(fork(entity, parent))
            alive.append(entity)
        elif kind < 0.85:
            events.append(connect(rng.choice(alive), parent, f"/usr/bin/{name}", f"1.2.3.{n % 7}"))
        else:
            target = rng.choice(alive)
            events.append(
                file_("deletion", target, parent, f"/usr/bin/{name}", f"/usr/bin/{rng.choice(names)}")
            )
    nested = (
        'network where descendant of [process where process.name == "sh" and '
        'child of [process where process.name == "dnf"]]'
    )
    alias = """sequence with maxspan=50ms
        [process where event.action == "exec"] by process.entity_id as e0
        [file where file.path == e0.process.executable] by process.entity_id"""
    mixed = """sequence by process.entity_id
        [process where descendant of [process where process.name == "bash"]] as e0
        [network where destination.ip != e0.process.name and not child of [process where process.name == "sh"]]"""
    rules = [
        _rule("desc", 'network where descendant of [process where process.name == "dnf"]'),
        _rule(
            "child", 'process where child of [process where process.name == "bash" and process.args == "a"]'
        ),
        _rule("event", 'file where event of [process where process.name in ("sh", "curl")]'),
        _rule("nested", nested),
        _rule("alias", alias),
        _rule("mixed", mixed),
    ]
    got = agree(rules, events)
    assert all(got[r.id] for r in rules), {r: len(v) for r, v in got.items()}


# --------------------------------------------------------------------------- numbers against keyword fields


def test_integers_against_string_fields_compare_their_string_form() -> None:
    ir = compile_query('process where user.id == 0 and user.id in (0, "x") and 0 != process.user.id')
    leaves = [n for n in iter_nodes(ir.steps[0].condition) if isinstance(n, Comparison | InSet)]
    assert [n.render() for n in leaves] == [
        'user.id == "0"',
        'user.id in ("0", "x")',
        '"0" != process.user.id',
    ]
    rule = _rule("root", "process where user.id == 0")
    events = [
        exec_("a", "b", "/bin/sh", uid="0"),
        exec_("c", "b", "/bin/sh", uid="00"),
        exec_("d", "b", "/bin/sh"),
    ]
    assert agree([rule], events)["root"] == [((events[0]["event"]["sequence"],), None)]


def test_string_fields_order_against_numbers() -> None:
    rule = _rule("uid", "process where user.id >= 1000 and process.pid != 0")
    events = [exec_("a", "b", "/bin/sh", uid=uid, pid=7) for uid in ("999", "1000", "65534", "x")]
    assert [row[0] for row in agree([rule], events)["uid"]] == [(events[1]["event"]["sequence"],),
                                                                (events[2]["event"]["sequence"],)]  # fmt: skip
    with pytest.raises(PolicySemanticError, match="type mismatch"):
        compile_query('process where process.pid == "1"')  # a number field with a string: still refused


def test_real_rules_compare_user_ids_with_numbers() -> None:
    stems = [s for s, q in PA_QUERIES.items() if "user.id == 0" in q or "user.id != 0" in q]
    assert len(stems) >= 10
    for stem in stems:
        rendered = " ".join(s.condition.render() for s in _real(stem).ir.steps)
        assert 'user.id == "0"' in rendered or 'user.id != "0"' in rendered, stem


# --------------------------------------------------------------------------- samples


def test_match_sample_backtracks_and_knows_when_it_is_final() -> None:
    assert match_sample([[1, 2, 3], [4, 5], [4, 5, 3]]) == (1, 4, 5)
    assert match_sample([[1, 1], [1, 1, 1], [1, 1, 3]]) is None
    assert match_sample([[1, 2], [1]]) == (2, 1)
    assert match_sample([[1, 2], [1]], [False, True]) is None  # a later second-filter event could come first
    assert match_sample([[1, 2], [1, 3]], [False, True]) == (1, 3)


#: Elasticsearch's sample documentation: three indices' documents in the order they were stored
_ES = [
    (11, "1234567891", "doom", 0, 1234, None, "win10", None), (12, "1234567892", "CS", 5, 1, None, "win10", None),
    (13, "1234567893", "farcry", 1, 1234, False, "win10", None), (14, "1234567894", "GTA", 3, 12, None, "slack", None),
    (15, "1234567895", "sniper 3d", 6, 1234, None, "fedora", None),
    (16, "1234568896", "doom", None, 65123, True, "redhat", None),
    (17, "1234567897", "doom", 15, 1234, True, "redhat", None), (18, "1234567898", "doom", 16, 512, None, "win10", None),
    (19, "1234567899", "GTA", None, 12, True, "win10", None), (110, "1234567893", "farcry", 1, 1234, True, "win10", None),
    (21, "1234567991", "doom", 0, 1234, None, None, "win10"), (22, "1234567992", "CS", 5, 1, None, None, "win10"),
    (23, "1234567993", "farcry", 1, 1234, False, None, "win10"), (24, "1234567994", "GTA", 3, 12, None, None, "slack"),
    (25, "1234567995", "sniper 3d", 6, 1234, None, None, "fedora"),
    (26, "1234568996", "doom", None, 65123, True, None, "redhat"),
    (27, "1234567997", "doom", 15, 1234, True, None, "redhat"), (28, "1234567998", "doom", 16, 512, None, None, "win10"),
    (29, "1234567999", "GTA", None, 12, False, None, "win10"), (31, "1334567891", "doom", 0, 12, None, "win10", None),
    (32, "1334567892", "CS", None, None, None, "win10", None), (33, "1334567893", "farcry", None, None, True, "win10", None),
    (34, "1334567894", "GTA", None, None, True, "slack", None), (35, "1234567895", "sniper 3d", None, None, None, "fedora", None),
    (36, "1234578896", "doom", None, None, True, "redhat", None), (37, "1234567897", "doom", None, None, True, "redhat", None),
    (38, "1234577898", "doom", None, None, None, "win10", None), (39, "1234577899", "GTA", None, None, True, "win10", None),
]  # fmt: skip
_ES_SCHEMA = Schema(
    "es-sample-docs",
    {"@timestamp": Kind.DATE, "event_type": Kind.STRING, "host": Kind.STRING, "uptime": Kind.NUMBER,
     "port": Kind.NUMBER, "bool": Kind.BOOLEAN, "os": Kind.STRING, "op_sys": Kind.STRING, "id": Kind.NUMBER},
    category_fields=("event_type",),
)  # fmt: skip


def _es_events() -> list[dict[str, Any]]:
    out = []
    for n, (doc, ts, host, uptime, port, flag, os_, op_sys) in enumerate(_ES):
        ev: dict[str, Any] = {"@timestamp": ts, "event_type": "alert", "host": host, "id": doc,
                              "event": {"sequence": n}}  # fmt: skip
        for k, v in (("uptime", uptime), ("port", port), ("bool", flag), ("os", os_), ("op_sys", op_sys)):
            if v is not None:
                ev[k] = v
        out.append(ev)
    return out


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("sample by host [any where uptime > 0] [any where port > 100] [any where bool == true]",
         [(("doom",), (17, 11, 16)), (("farcry",), (13, 110, 33))]),
        ("sample by host [any where uptime > 0] by os [any where port > 100] by op_sys "
         "[any where bool == true] by os",
         [(("doom", "redhat"), (17, 26, 16)), (("farcry", "win10"), (13, 23, 110))]),
        ("sample [any where uptime > 0] by host, os [any where port > 100] by host, op_sys "
         "[any where bool == true] by host, os",
         [(("doom", "redhat"), (17, 26, 16)), (("farcry", "win10"), (13, 23, 110))]),
    ],
)  # fmt: skip
def test_elasticsearch_sample_documentation_examples(query: str, want: list[Any]) -> None:
    """The samples Elasticsearch's documentation shows, though the documents are not in time order."""
    rule = _rule("s", query, _ES_SCHEMA)
    events = _es_events()
    rows = evaluate(rule.ir, events, schema=_ES_SCHEMA, tiebreaker_field=TB, limit=None)
    assert [(m.join_keys, tuple(e["id"] for e in m.events if e)) for m in rows] == want
    agree([rule], events, schema=_ES_SCHEMA)


def test_meterpreter_sample_rule_on_its_five_opens() -> None:
    rule = _real("execution_shell_via_meterpreter_linux")
    paths = [
        "/etc/machine-id",
        "/etc/passwd",
        "/proc/net/route",
        "/proc/net/ipv6_route",
        "/proc/net/if_inet6",
    ]

    def opened(path: str, pid: int) -> dict[str, Any]:
        ev = file_("opened-file", "m1", "s0", "/tmp/m", path)
        ev["process"]["pid"] = pid
        ev["auditd"] = {"data": {"syscall": "open", "a2": "1b6"}}
        return ev

    events = [opened(p, 4242) for p in reversed(paths)] + [opened(p, 7) for p in paths[:4]]
    got = agree([rule], events)[rule.id]
    assert [keys for _ids, keys in got] == [("h1", 4242, "1000")]
    assert got[0][0] == tuple(events[4 - i]["event"]["sequence"] for i in range(5))  # in filter order


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sample by host.id [process where true]", "2 to 5 filters"),
        ("sample [process where true] [file where true]", "at least one join key"),
        ("sample by host.id [process where true] [file where true] | head 1", "pipes are not supported"),
        ("sample by host.id ![process where true] [file where true]", "unordered"),
        ("sample by host.id [process where true] as a [file where true]", "unordered"),
        ("sample by host.id [process where true] by process.pid [file where true]", "inconsistent number"),
    ],
)
def test_sample_misuse_is_refused(query: str, message: str) -> None:
    with pytest.raises(PolicySemanticError, match=message):
        compile_query(query)


def test_sample_keys_are_bounded() -> None:
    rule = _rule("s", "sample by process.entity_id [process where true] [network where true]")
    engine = Engine([rule], budgets=Budgets(max_pending_per_rule=2))
    engine.run([exec_(f"p{i}", "x", "/bin/sh") for i in range(5)])
    assert engine.stats["s"].evicted_lru == 3
    assert engine.state_size()["samples"] <= 2


# --------------------------------------------------------------------------- the kernel plan


def test_the_kernel_plan_leaves_the_dialect_to_the_engine() -> None:
    import dataclasses

    from guard.plan.compiler import compile_policy
    from guard.policy.loader import Policy

    queries = {
        "armed": "sequence by process.entity_id [process where process.name == \"a\"] [process where true]",
        "alias": "sequence by process.entity_id [process where process.name == \"a\"] as e0 "
                 "[process where process.name == e0.process.name]",
        "lineage": 'process where process.executable == "/tmp/x" and descendant of [process where true]',
        "sample": "sample by process.entity_id [process where true] [process where process.name == \"x\"]",
    }  # fmt: skip
    rules = [dataclasses.replace(_rule(k, q), action="block") for k, q in queries.items()]
    plans = {p.rule.id: p for p in compile_policy(Policy(tuple(rules), "<test>", "0", ())).plans}
    assert plans["armed"].path == "sequence-armed"  # the control: the same shape without an alias arms
    assert plans["alias"].path == plans["lineage"].path == plans["sample"].path == "detect-only"
    assert "alias" in plans["alias"].reason
    assert "sample" in plans["sample"].reason
