"""The eql baseline of `guardctl bench engine`: what it runs, leaves out and how it is timed.

No timing assertions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guard.bench.baseline import eql_baseline
from guard.policy.loader import Rule
from tests.unit.bench.kit import load_rules

# --------------------------------------------------------------------------- the eql baseline


def test_eql_baseline_parses_most_rules_and_reports_the_rest(
    rules: tuple[Rule, ...], events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # A missing step without maxspan: ours accepts it, eql refuses ("Negative subquery used without maxspan").
    odd = load_rules(
        tmp_path,
        "[[rule]]\n"
        'id = "no-maxspan"\nname = "x"\nseverity = "low"\naction = "alert"\n'
        "query = '''sequence by host.id [process where true] ![file where true] [network where true]'''\n",
    )
    result = eql_baseline((*rules, *odd), events[:1000])
    total = len(rules) + 1
    # Measured with eql 1.0.1 and the default seed: every generated rule parses (the one above does
    # not); 26 of them use `in` over process.args, which its PythonEngine would crash on.
    assert result.parsed == total - 1 == len(rules)
    assert result.unparsed == 1
    assert result.unparsed_examples[0][0] == "no-maxspan"
    assert "maxspan" in result.unparsed_examples[0][1]
    assert 10 <= result.unrunnable <= 40
    assert result.loaded == result.parsed - result.unrunnable >= 0.9 * len(rules)
    assert all("process.args" in msg for _, msg in result.unparsed_examples[1:])
    assert result.events == result.total_events == 1000
    assert result.sampled_events is None
    assert result.events_per_s > 0


def test_eql_baseline_maxspan_is_in_milliseconds(tmp_path: Path) -> None:
    rules = load_rules(
        tmp_path,
        "[[rule]]\n"
        'id = "seq"\nname = "x"\nseverity = "low"\naction = "alert"\n'
        "query = '''sequence by process.entity_id with maxspan=30s\n"
        "  [process where process.name == \"bash\"] [network where destination.port == 4444]'''\n",
    )

    def ev(ts: int, cat: str, entity: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"@timestamp": ts, "event": {"category": cat}, "process": {"entity_id": entity}}
        if cat == "process":
            doc["process"]["name"] = "bash"
        else:
            doc["destination"] = {"port": 4444}
        return doc

    base = 1_735_689_600_000
    stream = [ev(base, "process", "a"), ev(base, "process", "b"), ev(base + 10_000, "network", "a")]
    stream.append(ev(base + 40_000, "network", "b"))  # 40 s after its start: beyond maxspan
    assert eql_baseline(rules, stream).alerts == 1


def test_eql_baseline_samples_a_prefix_when_too_slow(
    rules: tuple[Rule, ...], events: list[dict[str, Any]]
) -> None:
    result = eql_baseline(rules[:20], events[:3000], max_seconds=0.0, sample_events=2500)
    assert result.sampled_events == 2500
    assert result.events == 2500
    assert result.total_events == 3000
