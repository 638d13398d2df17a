"""The rule-engine benchmark behind ``guardctl bench engine``: our streaming engine against ``eql``.

One run generates (:mod:`guard.bench.synth`) or loads a rule set and the deterministic synthetic
ECS event stream, then measures, on the same events:

- **ours**: :class:`guard.policy.engine.Engine` with every rule loaded, fed in batches of 4096
  events then flushed; best of three runs with a fresh engine each (the median is reported too),
  construction (compile) timed separately;
- **eql**: the reference ``eql`` library's ``PythonEngine`` (:mod:`guard.bench.baseline`) with the
  rules it can parse, on the same events. It streams until the stream ends or its time budget is
  spent, and is rated on the prefix it processed (rates are per event); our engine is timed on
  that prefix too.
"""

from __future__ import annotations

import gc
import importlib
import os
import resource
import statistics
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from guard.bench.baseline import EQL_MAX_SECONDS, EQL_SAMPLE_EVENTS, eql_baseline, rate
from guard.bench.synth import Event, generate_events, generate_rules
from guard.policy.loader import Rule, load_policy

__all__ = [
    "BATCH",
    "TARGETS",
    "render_engine_benchmark",
    "run_engine_benchmark",
]

#: Events per ``Engine.process`` call.
BATCH: Final = 4096
#: What ``guardctl bench engine`` must reach on the 2-core reference machine.
TARGETS: Final[Mapping[str, float]] = {"events_per_s": 250_000, "ratio_vs_eql": 20}


class _Engine(Protocol):
    def process(self, events: Sequence[Mapping[str, object]]) -> Sequence[object]: ...

    def flush(self) -> Sequence[object]: ...


EngineFactory = Callable[[Sequence[Rule]], _Engine]


def _default_factory(rules: Sequence[Rule]) -> _Engine:
    module = importlib.import_module("guard.policy.engine")  # imported when the benchmark runs
    engine: _Engine = module.Engine(rules)
    return engine


@dataclass(frozen=True, slots=True)
class _OursRun:
    compile_s: float
    seconds: float
    alerts: int


def _run_ours(
    factory: EngineFactory, rules: Sequence[Rule], events: Sequence[Event], runs: int
) -> list[_OursRun]:
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    out = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        engine = factory(rules)
        t1 = time.perf_counter()
        alerts = 0
        for batch in batches:
            alerts += len(engine.process(batch))
        alerts += len(engine.flush())
        t2 = time.perf_counter()
        out.append(_OursRun(t1 - t0, t2 - t1, alerts))
        del engine
    return out


def _is_elastic_dir(path: Path) -> bool:
    """Tell whether ``path`` holds Elastic detection-rules TOML (a ``[rule]`` table, not ``[[rule]]``)."""
    if not path.is_dir():
        return False
    for f in sorted(path.rglob("*.toml"))[:20]:
        try:
            data = tomllib.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        rule = data.get("rule")
        if isinstance(rule, dict) and ("language" in rule or "rule_id" in rule):
            return True
    return False


def _load_rules(rules_dir: Path | None, seed: int) -> tuple[tuple[Rule, ...], str]:
    if rules_dir is None:
        with tempfile.TemporaryDirectory(prefix="guard-bench-rules-") as tmp:
            path = Path(tmp) / "generated.toml"
            path.write_text(generate_rules(seed=seed), encoding="utf-8")
            return load_policy(path).rules, "generated"
    if _is_elastic_dir(rules_dir):
        elastic = importlib.import_module("guard.policy.elastic")
        imported = elastic.import_elastic([rules_dir])
        return tuple(imported.rules), f"elastic:{rules_dir}"
    return load_policy(rules_dir).rules, f"policy:{rules_dir}"


def _rss_now_mib() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def run_engine_benchmark(
    rules_dir: Path | None = None,
    n_events: int = 200_000,
    seed: int = 7,
    engine_factory: EngineFactory | None = None,
    *,
    runs: int = 3,
    eql_max_seconds: float = EQL_MAX_SECONDS,
    eql_sample_events: int = EQL_SAMPLE_EVENTS,
) -> dict[str, Any]:
    """Measure our engine and the eql baseline on the same rules and events; return JSON-able figures.

    ``ratio`` is ours/eql in events/s over each one's timed events; when eql was timed on a prefix
    ``ratio_same_prefix`` compares both on that prefix, and the ratio target is judged on the
    smaller of the two. Peak RSS is read after our runs, before the baseline loads.
    """
    if n_events < 1 or runs < 1:
        raise ValueError("n_events and runs must be positive")
    factory = engine_factory or _default_factory
    rules, source = _load_rules(rules_dir, seed)
    sequences = sum(1 for r in rules if r.ir.is_sequence)
    t0 = time.perf_counter()
    events = generate_events(n_events, seed)
    generate_s = time.perf_counter() - t0
    rss_events = _rss_now_mib()

    ours = _run_ours(factory, rules, events, runs)
    best = min(ours, key=lambda r: r.seconds)
    median_s = statistics.median(r.seconds for r in ours)
    peak_rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    gc.collect()
    base = eql_baseline(rules, events, max_seconds=eql_max_seconds, sample_events=eql_sample_events)
    ours_rate = rate(len(events), best.seconds)
    ratio = round(ours_rate / base.events_per_s, 2) if base.events_per_s else None
    prefix: dict[str, Any] | None = None
    ratio_prefix = None
    if base.sampled_events is not None:
        pre = _run_ours(factory, rules, events[: base.events], runs)
        pbest = min(pre, key=lambda r: r.seconds)
        prefix = {
            "events": base.events,
            "seconds": round(pbest.seconds, 4),
            "events_per_s": rate(base.events, pbest.seconds),
            "alerts": pbest.alerts,
        }
        ratio_prefix = round(prefix["events_per_s"] / base.events_per_s, 2) if base.events_per_s else None
    judged = min(x for x in (ratio, ratio_prefix) if x is not None) if ratio is not None else None
    eql_dict = asdict(base)
    eql_dict["unparsed_examples"] = [{"rule": rid, "error": msg} for rid, msg in base.unparsed_examples]
    eql_dict["sampled"] = base.sampled_events is not None
    return {
        "rules": {
            "total": len(rules),
            "single": len(rules) - sequences,
            "sequences": sequences,
            "source": source,
        },
        "events": len(events),
        "seed": seed,
        "generate_s": round(generate_s, 2),
        "ours": {
            "compile_s": round(statistics.median(r.compile_s for r in ours), 4),
            "seconds": round(best.seconds, 4),
            "seconds_median": round(median_s, 4),
            "events_per_s": ours_rate,
            "events_per_s_median": rate(len(events), median_s),
            "alerts": best.alerts,
            "alert_share": round(best.alerts / len(events), 5),
            "runs": runs,
            "batch": BATCH,
            "prefix": prefix,
        },
        "eql": eql_dict,
        "ratio": ratio,
        "ratio_same_prefix": ratio_prefix,
        "peak_rss_mib": peak_rss,
        "rss_after_events_mib": rss_events,
        "targets": dict(TARGETS),
        "met": {
            "events_per_s": ours_rate >= TARGETS["events_per_s"],
            "ratio_vs_eql": judged is not None and judged >= TARGETS["ratio_vs_eql"],
        },
    }


def render_engine_benchmark(result: Mapping[str, Any]) -> str:
    """Render :func:`run_engine_benchmark`'s result as the text ``guardctl bench engine`` prints."""
    r, o, e = result["rules"], result["ours"], result["eql"]
    met = result["met"]
    t = result["targets"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = [
        f"{r['total']} rules ({r['single']} single-event, {r['sequences']} sequences; {r['source']}), "
        f"{result['events']} events",
        f"  ours:  {o['events_per_s']:>12,.0f} events/s best of {o['runs']} "
        f"(median {o['events_per_s_median']:,.0f}); {o['seconds']} s, compile {o['compile_s']} s, "
        f"{o['alerts']} alerts ({o['alert_share']:.2%} of events)",
    ]
    if o.get("prefix"):
        p = o["prefix"]
        lines.append(f"         {p['events_per_s']:>12,.0f} events/s on the first {p['events']} events")
    sample = f", timed on the first {e['sampled_events']} events" if e["sampled"] else ""
    lines += [
        f"  eql:   {e['events_per_s']:>12,.0f} events/s ({e['loaded']} of the rules run: {e['unparsed']} not "
        f"parsed, {e['unrunnable']} would crash it{sample}); {e['seconds']} s, {e['alerts']} alerts",
    ]
    examples = e["unparsed_examples"]
    for ex in examples[:3]:
        lines.append(f"         left out of eql: {ex['rule']}: {ex['error'][:120]}")
    if len(examples) > 3:
        lines.append(f"         ... and {len(examples) - 3} more left out (--json lists them)")
    ratio = result["ratio"]
    line = f"  ratio ours/eql: {ratio}x" if ratio is not None else "  ratio ours/eql: n/a"
    if result.get("ratio_same_prefix") is not None:
        line += f" ({result['ratio_same_prefix']}x on the same prefix)"
    lines += [
        line,
        f"  peak RSS: {result['peak_rss_mib']} MiB "
        f"(after generating the events: {result['rss_after_events_mib']} MiB)",
        f"  targets: >= {t['events_per_s']:,.0f} events/s: {verdict(met['events_per_s'])}; "
        f">= {t['ratio_vs_eql']}x eql: {verdict(met['ratio_vs_eql'])}",
    ]
    return "\n".join(lines)
