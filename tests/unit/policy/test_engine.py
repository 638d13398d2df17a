"""The streaming engine: equal to the offline evaluator on the corpus, bounded by budgets, deterministic."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil
import pytest

from guard.bench.synth import generate_events, generate_rules
from guard.errors import GuardError, PolicyError
from guard.policy.analyzer import compile_query
from guard.policy.conformance import schema_for
from guard.policy.corpus import Dataset, default_corpus, load_corpus
from guard.policy.engine import Alert, Budgets, Engine
from guard.policy.evaluator import evaluate
from guard.policy.loader import Rule, load_policy
from guard.policy.schema import ECS, Schema

Row = tuple[tuple[object, ...], object]


def _rule(rule_id: str, query: str, schema: Schema = ECS) -> Rule:
    return Rule(rule_id, rule_id, "low", "alert", None, query, compile_query(query, schema), "<test>")


def _ids(events: Sequence[Mapping[str, object] | None], tiebreaker: str) -> tuple[object, ...]:
    return tuple(-1 if e is None else e.get(tiebreaker) for e in events)


@pytest.fixture(scope="module")
def corpus_rules() -> dict[str, tuple[list[Rule], Dataset]]:
    """Per dataset: every compilable corpus query as a rule (pipes dropped: rules alert on every match)."""
    cases, datasets = load_corpus(default_corpus())
    out: dict[str, tuple[list[Rule], Dataset]] = {}
    for case in cases:
        ds = datasets[case.dataset]
        schema = schema_for(ds)
        try:
            ir = compile_query(case.query, schema)
        except GuardError:
            continue
        ir = dataclasses.replace(ir, head=None, tail=None)
        rules, _ = out.setdefault(case.dataset, ([], ds))
        rules.append(Rule(case.id, case.name, "low", "alert", None, case.query, ir, case.file))
    return out


@pytest.mark.parametrize("batch", [1, 7, 100_000])
def test_all_corpus_queries_at_once_stream_to_the_offline_results(
    corpus_rules: dict[str, tuple[list[Rule], Dataset]], batch: int
) -> None:
    sequences = compared = 0
    for name, (rules, ds) in corpus_rules.items():
        schema = schema_for(ds)
        events = list(ds.ordered())
        tb = ds.tiebreaker
        engine = Engine(rules, schema=schema, timestamp_field=ds.timestamp_field, tiebreaker_field=tb)
        alerts: list[Alert] = []
        for start in range(0, len(events), batch):
            alerts.extend(engine.process(events[start : start + batch]))
        alerts.extend(engine.flush())
        streamed: dict[str, list[Row]] = {}
        for a in sorted(alerts, key=lambda a: a.seq):
            streamed.setdefault(a.rule.id, []).append((_ids(a.events, tb), a.join_keys))
        for rule in rules:
            offline = evaluate(rule.ir, events, schema=schema, timestamp_field=ds.timestamp_field,
                               tiebreaker_field=tb, limit=None)  # fmt: skip
            want = [(_ids(m.events, tb), m.join_keys) for m in offline]
            assert streamed.get(rule.id, []) == want, f"{name}: {rule.id}: {rule.query}"
            compared += 1
            sequences += rule.ir.is_sequence
    assert compared >= 250
    assert sequences >= 100


SEQ = """sequence by process.entity_id with maxspan=10s
  [process where process.name == "a"]
  [process where process.name == "b"]"""


def _ev(i: int, name: str, entity: str, t: int | None = None, **extra: object) -> dict[str, object]:
    return {
        "@timestamp": t if t is not None else i,
        "event": {"category": "process", "sequence": i},
        "process": {"name": name, "entity_id": entity},
        **extra,
    }


def test_rule_budget_evicts_least_recently_used_and_counts() -> None:
    engine = Engine([_rule("s", SEQ)], budgets=Budgets(max_pending_per_rule=3))
    engine.process([_ev(i, "a", f"e{i}") for i in range(5)])
    assert engine.pending() == 3
    assert engine.stats["s"].evicted_lru == 2
    # e0 and e1 were evicted: their "b" completes nothing; e4's does
    alerts = engine.process([_ev(5, "b", "e0"), _ev(6, "b", "e1"), _ev(7, "b", "e4")])
    assert [a.join_keys for a in alerts] == [("e4",)]
    events = engine.budget_events()
    assert [(e.rule_id, e.kind, e.count) for e in events] == [("s", "evicted_lru", 2)]
    assert engine.budget_events() == []  # reported once


def test_drop_new_refuses_instead_of_evicting() -> None:
    rule = dataclasses.replace(_rule("s", SEQ), overflow="drop_new")
    engine = Engine([rule], budgets=Budgets(max_pending_per_rule=2))
    engine.process([_ev(i, "a", f"e{i}") for i in range(4)])
    assert engine.stats["s"].refused == 2
    alerts = engine.process([_ev(10, "b", "e0"), _ev(11, "b", "e3")])
    assert [a.join_keys for a in alerts] == [("e0",)]


def test_entity_budget_spans_rules() -> None:
    rules = [_rule(f"s{n}", SEQ.replace('"a"', f'"a{n}"')) for n in range(4)]
    engine = Engine(rules, budgets=Budgets(max_pending_per_entity=2))
    engine.process([_ev(n, f"a{n}", "same") for n in range(4)])
    assert engine.pending() == 2
    assert engine.stats["s0"].evicted_entity == 1
    assert engine.stats["s1"].evicted_entity == 1


def test_partials_idle_past_maxspan_expire_by_event_time() -> None:
    engine = Engine([_rule("s", SEQ)])
    engine.process([_ev(i, "a", f"e{i}", t=i) for i in range(100)])
    assert engine.pending() == 100
    engine.process([_ev(100, "x", "other", t=20_000)])
    assert engine.pending() == 0
    assert engine.stats["s"].expired == 100
    assert engine.budget_events() == []  # expiry is not an overflow


def test_adversarial_keys_keep_memory_bounded() -> None:
    """Two million distinct keys against 5,000-entry budgets: state stays at the caps, memory stops growing."""
    trailing = 'sequence by process.entity_id [process where process.name == "a"] ![process where process.name == "x"]'
    rules = [_rule("s", SEQ), _rule("m", trailing)]
    budgets = Budgets(max_pending_per_rule=5_000, max_held_per_rule=5_000, memo_per_field=4_096)
    engine = Engine(rules, budgets=budgets)
    proc = psutil.Process()

    def feed(start: int, stop: int) -> None:
        for base in range(start, stop, 20_000):
            engine.process([_ev(i, "a", f"k{i}", t=i // 1000) for i in range(base, base + 20_000)])

    feed(0, 200_000)
    rss_warm = proc.memory_info().rss
    feed(200_000, 2_000_000)
    rss_end = proc.memory_info().rss
    state = engine.state_size()
    assert state["partials"] == 5_000
    assert state["held"] == 5_000
    assert state["memo"] <= 3 * 4_096
    assert engine.stats["s"].evicted_lru == 2_000_000 - 5_000
    assert engine.stats["m"].held_released == 2_000_000 - 5_000
    # 1.8M more distinct keys after warm-up: the process grew by less than 32 MiB (unbounded state
    # would hold ~1.8M partials and held matches, hundreds of MiB)
    assert rss_end - rss_warm < 32 * 1024 * 1024, (rss_warm, rss_end)


def test_replay_twice_is_identical_and_names_the_ruleset() -> None:
    rules = [_rule("s", SEQ), _rule("one", 'process where process.name : "B*"')]
    events = [_ev(i, "ab"[i % 2], f"e{i % 3}", t=i * 100) for i in range(200)]

    def run() -> list[tuple[object, ...]]:
        engine = Engine(rules)
        out = engine.process(events) + engine.flush()
        return [
            (a.rule.id, a.seq, a.ts_ms, _ids(a.events, "event"), a.join_keys, engine.ruleset_hash)
            for a in out
        ]

    first, second = run(), run()
    assert first == second
    assert len(first) > 50
    assert Engine(rules).ruleset_hash != Engine(rules[:1]).ruleset_hash


def test_batches_are_put_in_time_order() -> None:
    engine = Engine([_rule("s", SEQ)])
    alerts = engine.process([_ev(2, "b", "e", t=2), _ev(1, "a", "e", t=1)])
    assert len(alerts) == 1
    assert engine.late_events == 0
    engine.process([_ev(3, "a", "e", t=0)])
    assert engine.late_events == 1


def test_trailing_missing_held_until_maxspan_passes() -> None:
    rule = _rule("m", 'sequence by process.entity_id with maxspan=1s [process where process.name == "a"] '
                      '![process where process.name == "x"]')  # fmt: skip
    engine = Engine([rule])
    assert engine.process([_ev(1, "a", "e1", t=0), _ev(2, "a", "e2", t=10)]) == []
    assert engine.process([_ev(3, "x", "e2", t=500)]) == []  # rejects e2's match
    released = engine.process([_ev(4, "z", "q", t=1_200)])  # 1s after e1: nothing can reject it now
    assert [a.join_keys for a in released] == [("e1",)]
    assert engine.stats["m"].rejected == 1


def test_until_drops_the_key() -> None:
    rule = _rule("u", SEQ + '\nuntil [process where process.name == "stop"]')
    engine = Engine([rule])
    alerts = engine.process(
        [_ev(1, "a", "e"), _ev(2, "stop", "e"), _ev(3, "b", "e"), _ev(4, "a", "f"), _ev(5, "b", "f")]
    )
    assert [a.join_keys for a in alerts] == [("f",)]


def test_off_rules_are_not_loaded_and_budgets_are_checked() -> None:
    off = dataclasses.replace(_rule("s", SEQ), mode="off")
    assert Engine([off]).rules == ()
    with pytest.raises(PolicyError, match="max_pending_per_rule"):
        Budgets(max_pending_per_rule=0)


def test_generated_rule_set_streams_to_the_offline_results(tmp_path: Path) -> None:
    """The benchmark's 320 realistic rules over 6,000 synthetic events: every rule equals the evaluator."""
    (tmp_path / "rules.toml").write_text(generate_rules())
    rules = load_policy(tmp_path / "rules.toml").rules
    events = generate_events(6_000)
    engine = Engine(rules)
    alerts: list[Alert] = []
    for start in range(0, len(events), 500):
        alerts.extend(engine.process(events[start : start + 500]))
    alerts.extend(engine.flush())
    streamed: dict[str, list[Row]] = {}
    for a in sorted(alerts, key=lambda a: a.seq):
        streamed.setdefault(a.rule.id, []).append((_ids(a.events, "event"), a.join_keys))
    matched = 0
    for rule in rules:
        offline = evaluate(rule.ir, events, tiebreaker_field="event.sequence", limit=None)
        want = [(_ids(m.events, "event"), m.join_keys) for m in offline]
        assert streamed.get(rule.id, []) == want, rule.id
        matched += bool(want)
    assert matched >= 8  # (10 do) enough rules fire for the comparison to mean something
    guarded = sum(g is not None for g in engine.guards.values())
    assert guarded == len(engine.guards)  # every unit of this rule set has a prefilter guard


def test_leading_missing_keys_are_forgotten_after_maxspan() -> None:
    rule = _rule("l", 'sequence by process.entity_id with maxspan=1s ![process where process.name == "x"] '
                      '[process where process.name == "a"]')  # fmt: skip
    engine = Engine([rule])
    assert engine.process([_ev(i, "x", f"k{i}", t=i) for i in range(50)]) == []
    assert engine.state_size()["lead_keys"] == 50
    # k49 was seen 1 ms before: its "a" is rejected; k60 was never seen: its "a" alerts
    alerts = engine.process([_ev(51, "a", "k49", t=50), _ev(52, "a", "k60", t=50)])
    assert [a.join_keys for a in alerts] == [("k60",)]
    engine.process([_ev(53, "z", "q", t=5_000)])
    assert engine.state_size()["lead_keys"] == 0


# --------------------------------------------------------------------------- arming signals


def _arm_events(engine: Engine, events: list[dict[str, object]]) -> list[tuple[str, tuple[object, ...], int]]:
    out: list[tuple[str, tuple[object, ...], int]] = []
    for ev in events:
        engine.process([ev])
        out += [(s.kind, s.join_keys, len(s.events)) for s in engine.take_arm_signals()]
    return out


def test_arm_signal_when_all_but_the_last_step_matched() -> None:
    q = (
        'sequence by process.pid with maxspan=1m [file where file.name == "a"] '
        '[file where file.name == "b"] [process where true] until [network where true]'
    )
    rule = _rule("seq", q)
    engine = Engine([rule], armed=frozenset({"seq"}))
    ev = [
        {"@timestamp": 1000, "event.category": "file", "file.name": "a", "process.pid": 7},
        {"@timestamp": 2000, "event.category": "file", "file.name": "b", "process.pid": 7},
        {
            "@timestamp": 2500,
            "event.category": "file",
            "file.name": "b",
            "process.pid": 8,
        },  # no partial for 8
        {"@timestamp": 3000, "event.category": "network", "process.pid": 7},  # until: disarm
        {"@timestamp": 4000, "event.category": "file", "file.name": "b", "process.pid": 7},  # nothing pending
    ]
    assert _arm_events(engine, ev) == [("arm", (7,), 2), ("disarm", (7,), 2)]
    # a rule that is not armed reports nothing
    quiet = Engine([rule])
    assert _arm_events(quiet, ev) == []


def test_two_step_sequences_arm_on_the_first_step_and_rearm_on_a_newer_one() -> None:
    rule = _rule("seq2", "sequence by process.pid [file where true] [network where true]")
    engine = Engine([rule], armed=frozenset({"seq2"}))
    ev = [
        {"@timestamp": 1000, "event.category": "file", "process.pid": 7},
        {"@timestamp": 2000, "event.category": "file", "process.pid": 7},
        {"@timestamp": 3000, "event.category": "network", "process.pid": 7},
    ]
    assert _arm_events(engine, ev) == [("arm", (7,), 1), ("arm", (7,), 1)]
    # completion is not a disarm: the kernel verdict keeps denying the last step until it expires
    assert engine.take_arm_signals() == []
