"""The synthetic workload: generated rules and events.

No timing assertions: only shape, determinism and coverage.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path
from typing import Any

from guard.bench.synth import generate_events, generate_rules
from guard.policy.loader import Rule
from tests.unit.bench.kit import field, load_rules

# --------------------------------------------------------------------------- rules


def test_generated_rules_load_and_count(rules: tuple[Rule, ...]) -> None:
    sequences = [r for r in rules if r.ir.is_sequence]
    assert len(rules) >= 300
    assert len(sequences) >= 50
    assert len({r.id for r in rules}) == len(rules)
    assert len({r.query for r in rules}) == len(rules)
    assert {r.action for r in rules} == {"alert"}
    assert len({r.severity for r in rules}) >= 3


def test_generated_rules_cover_the_operators(rules: tuple[Rule, ...]) -> None:
    queries = [r.query for r in rules]
    text = "\n".join(queries)
    for needle in (
        " == ",
        " != ",
        " in (",
        "in~ (",
        " like (",
        " like~ (",
        "startsWith(",
        "endsWith(",
        "stringContains(",
        "wildcard(",
        "cidrMatch(",
        "not ",
        " or ",
        "?process.",
        "process.args ==",
        "process.args in (",
        "process.args : ",
        "sequence by process.entity_id with maxspan=30s",
        "sequence by host.id",
        "until [",
        "with runs=2",
        "with runs=3",
        "  ![",
        "] by process.entity_id",
    ):
        assert needle in text, needle
    assert re.search(r' : "[^"*]+"', text), "a : without wildcards"
    assert re.search(r' : \(?"[^"]*\*[^"]*"', text), "a : with wildcards"
    assert re.search(r"destination\.port [<>]=? \d+", text)
    assert re.search(r"[0-9a-f]+:[0-9a-f:]*/\d+", text), "an IPv6 CIDR"
    seqs = [q for q in queries if q.startswith("sequence")]
    assert sum("until [" in q for q in seqs) >= 10
    assert sum("with runs=" in q for q in seqs) >= 5
    assert sum("![" in q for q in seqs) >= 5
    assert any("[process where" in q and "[network where" in q and "entity_id" in q for q in seqs)
    assert any(
        q.startswith("sequence by host.id") and "[file where" in q and "[process where" in q for q in seqs
    )


def test_generated_rules_are_deterministic() -> None:
    assert generate_rules() == generate_rules()
    assert generate_rules(seed=8) != generate_rules()
    assert generate_rules(20, 8).count("[[rule]]") == 28


def test_more_rules_than_a_family_has_literals_stay_distinct(tmp_path: Path) -> None:
    rules = load_rules(tmp_path, generate_rules(700, 120, seed=3))
    assert len({r.query for r in rules}) == len(rules) == 820


# --------------------------------------------------------------------------- events


def test_generated_events_are_deterministic() -> None:
    assert generate_events(1500) == generate_events(1500)
    assert generate_events(1500, seed=8) != generate_events(1500)


def test_generated_events_shape_and_mix(events: list[dict[str, Any]]) -> None:
    n = len(events)
    assert n == 6000
    mix = Counter(e["event"]["category"] for e in events)
    assert set(mix) == {"process", "file", "network"}
    assert 0.40 <= mix["process"] / n <= 0.50
    assert 0.30 <= mix["file"] / n <= 0.40
    assert 0.15 <= mix["network"] / n <= 0.25
    stamps = [e["@timestamp"] for e in events]
    assert all(isinstance(t, int) for t in stamps)
    assert all(a <= b for a, b in itertools.pairwise(stamps))
    assert any(a == b for a, b in itertools.pairwise(stamps))
    assert [e["event"]["sequence"] for e in events] == list(range(1, n + 1))
    common = ("event.type", "event.action", "host.id", "host.os.type", "user.id", "user.name")
    for e in events:
        for name in (*common, "process.pid", "process.entity_id", "process.name", "process.executable"):
            assert field(e, name) is not None, (name, e)
        assert e["host"]["os"]["type"] == "linux"
        cat = e["event"]["category"]
        if cat == "process":
            p = e["process"]
            assert isinstance(p["args"], list)
            assert p["args"]
            assert p["command_line"] == " ".join(p["args"])
            assert p["working_directory"].startswith("/")
        elif cat == "file":
            assert e["file"]["path"].startswith("/")
            assert e["file"]["name"] == e["file"]["path"].rsplit("/", 1)[1]
        else:
            for name in (
                "destination.ip",
                "destination.port",
                "source.ip",
                "source.port",
                "network.transport",
            ):
                assert field(e, name) is not None, (name, e)
    starts = [e for e in events if e["event"]["category"] == "process" and e["event"]["type"] == "start"]
    assert sum("parent" in e["process"] for e in starts) == len(starts)
    assert any(e["event"]["type"] == "end" for e in events if e["event"]["category"] == "process")


def test_generated_events_pools_and_entity_reuse() -> None:
    events = generate_events(20_000)
    procs = [e for e in events if "process" in e]
    assert len({e["process"]["executable"] for e in procs}) >= 200
    paths = [e["file"]["path"] for e in events if "file" in e]
    assert len(set(paths)) >= 2000
    once = [p for p, c in Counter(paths).items() if c == 1 and p.startswith(("/tmp/", "/var/tmp/"))]
    assert len(once) >= 500  # the long tail of unique temporary files
    assert any(":" in e["destination"]["ip"] for e in events if "destination" in e)
    started: set[str] = set()
    reused = 0
    for e in events:
        if e["event"]["category"] == "process" and e["event"]["type"] == "start":
            started.add(e["process"]["entity_id"])
        elif e["process"]["entity_id"] in started:
            reused += 1
    assert reused > 1000  # file/network events of processes started earlier in the stream
