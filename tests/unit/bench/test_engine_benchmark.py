"""The `guardctl bench engine` run and report: the pieces fit together.

No timing assertions.
"""

from __future__ import annotations

import json
import types
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from guard.bench import engine as benchmark
from guard.bench.engine import render_engine_benchmark, run_engine_benchmark
from guard.bench.synth import generate_rules
from guard.policy import elastic
from guard.policy.evaluator import compile_expr
from guard.policy.loader import Rule
from tests.unit.bench.kit import field

# --------------------------------------------------------------------------- the whole run


class ToyEngine:
    """Single-event rules only, through the offline evaluator's expressions (a stand-in for Engine)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.by_category: dict[str | None, list[tuple[Rule, Any]]] = defaultdict(list)
        for rule in [r for r in rules if not r.ir.is_sequence][:40]:
            step = rule.ir.steps[0]
            self.by_category[step.category].append((rule, compile_expr(step.condition)))

    def process(self, events: Sequence[Mapping[str, object]]) -> list[str]:
        out = []
        for ev in events:
            category = field(ev, "event.category")
            for rule, condition in self.by_category.get(category, []) + self.by_category.get(None, []):
                if condition(ev) is True:
                    out.append(rule.id)
        return out

    def flush(self) -> list[str]:
        return []


def test_run_engine_benchmark_with_a_toy_engine() -> None:
    result = run_engine_benchmark(
        n_events=3000, engine_factory=ToyEngine, runs=2, eql_max_seconds=0.0, eql_sample_events=2500
    )
    json.dumps(result)
    assert set(result) >= {"rules", "events", "ours", "eql", "ratio", "peak_rss_mib", "targets", "met"}
    assert result["rules"]["total"] >= 300
    assert result["rules"]["sequences"] >= 50
    assert result["rules"]["single"] + result["rules"]["sequences"] == result["rules"]["total"]
    assert result["rules"]["source"] == "generated"
    assert result["events"] == 3000
    ours = result["ours"]
    assert set(ours) >= {"compile_s", "seconds", "events_per_s", "events_per_s_median", "alerts"}
    assert ours["events_per_s"] >= ours["events_per_s_median"] > 0
    assert 1 <= ours["alerts"] < 0.05 * 3000
    eql = result["eql"]
    assert set(eql) >= {
        "parsed",
        "unparsed",
        "unparsed_examples",
        "events",
        "seconds",
        "events_per_s",
        "alerts",
    }
    assert eql["sampled"] is True
    assert eql["sampled_events"] == eql["events"] == 2500
    assert eql["parsed"] == result["rules"]["total"]
    assert eql["unparsed_examples"]
    assert set(eql["unparsed_examples"][0]) == {"rule", "error"}
    assert ours["prefix"]["events"] == 2500
    assert result["ratio"] > 0
    assert result["ratio_same_prefix"] > 0
    assert result["peak_rss_mib"] > 0
    assert result["targets"] == {"events_per_s": 250_000, "ratio_vs_eql": 20}
    assert set(result["met"]) == {"events_per_s", "ratio_vs_eql"}
    assert all(isinstance(v, bool) for v in result["met"].values())

    text = render_engine_benchmark(result)
    assert "ratio ours/eql: " in text
    assert f"{result['ratio']}x" in text
    assert "on the same prefix" in text
    assert "timed on the first 2500 events" in text
    assert "peak RSS" in text

    whole = {**result, "ratio_same_prefix": None, "ours": {**ours, "prefix": None}}
    whole["eql"] = {**eql, "sampled": False, "sampled_events": None, "unparsed_examples": []}
    text = render_engine_benchmark(whole)
    assert "ratio ours/eql: " in text
    assert "same prefix" not in text
    assert "timed on the first" not in text


def test_rules_dir_policy_and_elastic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "a.toml").write_text(generate_rules(10, 4))
    loaded, source = benchmark._load_rules(policy_dir, 7)
    assert len(loaded) == 14
    assert source == f"policy:{policy_dir}"

    elastic_dir = tmp_path / "elastic"
    elastic_dir.mkdir()
    (elastic_dir / "r.toml").write_text(
        '[metadata]\ncreation_date = "2024/01/01"\n\n[rule]\nrule_id = "x"\nlanguage = "eql"\n'
        'query = "process where true"\n'
    )
    calls: list[list[Path]] = []

    def import_elastic(paths: list[Path]) -> Any:
        calls.append(paths)
        return types.SimpleNamespace(rules=loaded[:3])

    monkeypatch.setattr(elastic, "import_elastic", import_elastic)
    rules, source = benchmark._load_rules(elastic_dir, 7)
    assert calls == [[elastic_dir]]
    assert rules == loaded[:3]
    assert source == f"elastic:{elastic_dir}"
