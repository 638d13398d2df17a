"""`guardctl bench parse`: the figures and the report, without timing assertions."""

from __future__ import annotations

import json

import pytest

from guard.bench.parse import QUERY, TARGET_US, render_parse_benchmark, run_parse_benchmark


def test_run_and_render() -> None:
    result = run_parse_benchmark(rounds=20)
    json.dumps(result)
    assert result["query_chars"] == len(QUERY) >= 300
    assert result["target_us"] == TARGET_US
    assert isinstance(result["meets_target"], bool)
    assert result["parse_median_us"] > 0
    assert result["baseline_ast_parse_median_us"] > 0
    text = render_parse_benchmark(result)
    assert text.startswith(f"EQL parse of a {len(QUERY)}-char sequence query: median ")
    assert "ratio to baseline: " in text


def test_rounds_must_allow_a_p99() -> None:
    with pytest.raises(ValueError, match="rounds"):
        run_parse_benchmark(rounds=1)
