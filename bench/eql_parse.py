"""Parse time of a ~300-character EQL sequence query (target: under 1 ms), against a baseline.

The baseline, measured in the same run, is CPython's own parser (`ast.parse`) on a Python
expression of the same length and shape, so the ratio says how close the lark LALR parser gets to
a C parser on this machine. Run: .venv/bin/python bench/eql_parse.py [--json] [--rounds N]
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import time

from guard.policy.analyzer import compile_query
from guard.policy.parser import parse_query

QUERY = (
    "sequence by host.id, process.entity_id with maxspan=30s\n"
    '  [process where event.type == "start" and process.name : ("curl", "wget") and process.args : "http*"]\n'
    '  [file where event.type == "creation" and file.path : ("/tmp/*", "/dev/shm/*")]\n'
    '  [process where event.type == "start" and startsWith(process.executable, "/tmp/")] | head 10'
)
BASELINE = (
    "(host_id, entity) and (event_type == 'start' and name in ('curl', 'wget') and args.startswith('http'))"
    " and (event_type == 'creation' and path.startswith(('/tmp/', '/dev/shm/')))"
    " and (event_type == 'start' and executable.startswith('/tmp/')) and x[0:10]"
)


def timed(fn: object, text: str, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        fn(text)  # type: ignore[operator]
        samples.append((time.perf_counter_ns() - start) / 1e3)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    parse_query(QUERY)  # build the parser once, as the agent does at start
    ours = timed(parse_query, QUERY, args.rounds)
    checked = timed(compile_query, QUERY, args.rounds)
    base = timed(ast.parse, BASELINE, args.rounds)
    result = {
        "query_chars": len(QUERY),
        "parse_median_us": round(statistics.median(ours), 1),
        "parse_p99_us": round(statistics.quantiles(ours, n=100)[98], 1),
        "parse_and_analyze_median_us": round(statistics.median(checked), 1),
        "baseline_ast_parse_median_us": round(statistics.median(base), 1),
        "ratio_to_baseline": round(statistics.median(ours) / statistics.median(base), 2),
        "target_us": 1000,
        "meets_target": statistics.median(ours) < 1000,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        r = result
        verdict = "met" if r["meets_target"] else "MISSED"
        print(f"EQL parse of a {r['query_chars']}-char sequence query: median {r['parse_median_us']} us")
        print(f"  p99 {r['parse_p99_us']} us; parse + analysis median {r['parse_and_analyze_median_us']} us")
        print(f"  baseline CPython ast.parse, same length: {r['baseline_ast_parse_median_us']} us")
        print(f"  ratio to baseline: {r['ratio_to_baseline']}x; target < 1000 us: {verdict}")


if __name__ == "__main__":
    main()
