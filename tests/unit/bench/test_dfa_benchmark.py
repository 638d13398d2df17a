"""`guardctl bench dfa`: the DFA of the benchmark's rule set agrees with the reference and with `re`.

No timing assertions.
"""

from __future__ import annotations

import json

from guard.bench.dfa import render_dfa_benchmark, rule_set, run_dfa_benchmark


def test_rule_set_has_contains_and_globs() -> None:
    patterns = rule_set()
    kinds = {p.kind for p in patterns}
    assert kinds == {"contains", "glob"}
    assert len({p.rule_id for p in patterns}) == len(patterns) >= 250


def test_run_and_render() -> None:
    result = run_dfa_benchmark(paths=600, seed=3)
    json.dumps(result)
    assert result["paths"] == 600
    assert result["patterns"] == result["contains"] + result["globs"]
    assert result["split_anchored"] is True
    assert result["reference_checked"] == 600
    assert result["reference_disagreements"] == 0
    assert result["baseline_any_match_disagreements"] == 0
    assert 0 < result["matched_fraction"] < 1
    assert result["kernel_transitions_per_byte"] >= 1
    text = render_dfa_benchmark(result)
    assert text.startswith(f"DFA for {result['patterns']} patterns (")
    assert "two lanes" in text
    assert "disagreements: 0 of 600 vs reference_match, 0 any-match vs re" in text


def test_single_lane() -> None:
    result = run_dfa_benchmark(paths=50, single_lane=True)
    assert result["split_anchored"] is False
    assert result["reference_disagreements"] == 0
    assert "one lane" in render_dfa_benchmark(result)
