"""``guardctl bench parse``: parse time of a ~300-character EQL sequence query (target: under 1 ms).

The baseline, measured in the same run, is CPython's own parser (``ast.parse``) on a Python
expression of the same length and shape, so the ratio says how close the lark LALR parser gets to
a C parser on this machine. Parse plus analysis (:func:`compile_query`) is reported too.
"""

from __future__ import annotations

import ast
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from guard.policy.analyzer import compile_query
from guard.policy.parser import parse_query

__all__ = ["QUERY", "TARGET_US", "render_parse_benchmark", "run_parse_benchmark"]

#: The query timed: a three-step sequence with joins, wildcards, a function and a pipe.
QUERY: Final = (
    "sequence by host.id, process.entity_id with maxspan=30s\n"
    '  [process where event.type == "start" and process.name : ("curl", "wget") and process.args : "http*"]\n'
    '  [file where event.type == "creation" and file.path : ("/tmp/*", "/dev/shm/*")]\n'
    '  [process where event.type == "start" and startsWith(process.executable, "/tmp/")] | head 10'
)
_BASELINE: Final = (
    "(host_id, entity) and (event_type == 'start' and name in ('curl', 'wget') and args.startswith('http'))"
    " and (event_type == 'creation' and path.startswith(('/tmp/', '/dev/shm/')))"
    " and (event_type == 'start' and executable.startswith('/tmp/')) and x[0:10]"
)
#: The median parse time ``guardctl bench parse`` must stay under, in microseconds.
TARGET_US: Final = 1000


def _timed(fn: Callable[[str], object], text: str, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        fn(text)
        samples.append((time.perf_counter_ns() - start) / 1e3)
    return samples


def run_parse_benchmark(rounds: int = 2000) -> dict[str, Any]:
    """Time :data:`QUERY` through the parser, parser + analyzer, and ``ast.parse`` on the baseline."""
    if rounds < 2:
        raise ValueError("rounds must be at least 2")
    parse_query(QUERY)  # build the parser once, as the agent does at start
    ours = _timed(parse_query, QUERY, rounds)
    checked = _timed(compile_query, QUERY, rounds)
    base = _timed(ast.parse, _BASELINE, rounds)
    return {
        "query_chars": len(QUERY),
        "parse_median_us": round(statistics.median(ours), 1),
        "parse_p99_us": round(statistics.quantiles(ours, n=100)[98], 1),
        "parse_and_analyze_median_us": round(statistics.median(checked), 1),
        "baseline_ast_parse_median_us": round(statistics.median(base), 1),
        "ratio_to_baseline": round(statistics.median(ours) / statistics.median(base), 2),
        "target_us": TARGET_US,
        "meets_target": statistics.median(ours) < TARGET_US,
    }


def render_parse_benchmark(result: Mapping[str, Any]) -> str:
    """Render :func:`run_parse_benchmark`'s result as the text ``guardctl bench parse`` prints."""
    r = result
    verdict = "met" if r["meets_target"] else "MISSED"
    return "\n".join(
        [
            f"EQL parse of a {r['query_chars']}-char sequence query: median {r['parse_median_us']} us",
            f"  p99 {r['parse_p99_us']} us; parse + analysis median {r['parse_and_analyze_median_us']} us",
            f"  baseline CPython ast.parse, same length: {r['baseline_ast_parse_median_us']} us",
            f"  ratio to baseline: {r['ratio_to_baseline']}x; target < {r['target_us']} us: {verdict}",
        ]
    )
