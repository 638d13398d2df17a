"""The baseline of ``guardctl bench engine``: the reference ``eql`` library's ``PythonEngine``.

:func:`eql_baseline` runs the rules eql can parse (with its most permissive syntax) and run, over
the same events as our engine, converted to its ``Event`` type before timing, and rates it on
the prefix of the stream it processed within its time budget. This is the only module that
imports ``eql``, a bench-only dependency (the ``bench`` extra): it is imported when the baseline
runs, so ``guardctl`` works without it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from guard.policy.loader import Rule

__all__ = [
    "EQL_MAX_SECONDS",
    "EQL_SAMPLE_EVENTS",
    "BaselineResult",
    "eql_baseline",
    "rate",
]

#: eql run time after which the baseline stops (it is rated on the prefix it processed).
EQL_MAX_SECONDS: Final = 40.0
#: The shortest prefix the eql baseline is timed on, whatever the time.
EQL_SAMPLE_EVENTS: Final = 20_000
_EQL_CHUNK: Final = 1_000


def rate(events: int, seconds: float) -> float:
    """Return events per second, rounded to 0.1 (infinite when nothing took measurable time)."""
    return round(events / seconds, 1) if seconds > 0 else math.inf


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """The ``eql`` library's PythonEngine on the same rules (those it can run) and events."""

    parsed: int  # rules eql.parse_query accepts
    unparsed: int
    unrunnable: int  # parsed, but the PythonEngine cannot run them on these events (not loaded)
    loaded: int  # rules timed: parsed - unrunnable
    unparsed_examples: tuple[tuple[str, str], ...]  # (rule id, eql's first error), unparsed then unrunnable
    events: int  # events timed
    total_events: int
    seconds: float
    events_per_s: float
    alerts: int
    compile_s: float
    sampled_events: int | None  # the prefix timed when the whole stream would take too long
    syntax: str


_EQL_SYNTAX: Final = "elastic_endpoint_syntax + allow_runs + allow_negation (fallback: elasticsearch_syntax)"


def _eql_parse(eql: Any, query: str) -> tuple[Any, str | None]:
    """Parse with the most permissive settings eql 1.0.1 has (Endpoint syntax, runs=, ![...])."""
    p = eql.parser
    first: str | None = None
    for syntax in (p.elastic_endpoint_syntax, p.elasticsearch_syntax):
        try:
            with syntax, p.allow_runs, p.allow_negation, p.allow_sample, p.ignore_missing_fields:
                return eql.parse_query(query), None
        except eql.EqlError as exc:
            if first is None:
                first = " ".join(str(getattr(exc, "error_msg", "") or exc).split()) or type(exc).__name__
    return None, first


def _list_fields(events: Sequence[Mapping[str, Any]]) -> frozenset[tuple[str, ...]]:
    """Every field path holding a list (a multi-valued field) in any event."""
    found: set[tuple[str, ...]] = set()

    def walk(obj: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in obj.items():
            if isinstance(value, Mapping):
                walk(value, (*prefix, key))
            elif isinstance(value, list):
                found.add((*prefix, key))

    for ev in events:
        walk(ev, ())
    return frozenset(found)


def _eql_nodes(node: Any) -> Any:
    """Yield ``node`` and every eql AST node under it."""
    yield node
    for _key, value in node.iter_slots():
        values = (
            value.values()
            if isinstance(value, dict)
            else value
            if isinstance(value, list | tuple)
            else [value]
        )
        for v in values:
            if hasattr(v, "iter_slots"):
                yield from _eql_nodes(v)


def _eql_unrunnable(eql: Any, query: Any, lists: frozenset[tuple[str, ...]]) -> str | None:
    """Say why eql's PythonEngine would crash on this query over these events, if it would.

    Its ``in`` over literals hashes the field's value, so on a multi-valued field (a list, such
    as ``process.args``) it raises ``TypeError: unhashable type: 'list'`` mid-stream. Its optimizer
    also turns ``f == "a" or f == "b"`` into such an ``in``.
    """
    for node in _eql_nodes(query):
        if (
            isinstance(node, eql.ast.InSet)
            and node.is_literal()
            and isinstance(node.expression, eql.ast.Field)
        ):
            path = (node.expression.base, *map(str, node.expression.path))
            if path in lists:
                return (
                    f"runtime: PythonEngine raises TypeError (unhashable list) on `in` over the "
                    f"multi-valued field {'.'.join(path)}"
                )
    return None


def eql_baseline(
    policy_rules: Sequence[Rule],
    events: Sequence[Mapping[str, Any]],
    *,
    max_seconds: float = EQL_MAX_SECONDS,
    sample_events: int = EQL_SAMPLE_EVENTS,
) -> BaselineResult:
    """Time the ``eql`` library's ``PythonEngine`` on the rules it can run, over ``events``.

    Rules are parsed with the most permissive syntax eql has; those it rejects, and those its
    engine would crash on with these events (see :func:`_eql_unrunnable`), are left out and listed
    with eql's first error. Events become ``eql.Event(category, @timestamp in ms, document)`` before
    timing and the engine is configured with ``time_unit=1000`` (ticks per second), so maxspan
    compares milliseconds. It streams in chunks of ``_EQL_CHUNK`` events and stops after the chunk
    that passes ``max_seconds`` (never before ``sample_events``): a prefix, since rates are per event.
    """
    import eql  # type: ignore[import-untyped]  # the bench-only dependency, nowhere else

    lists = _list_fields(events)
    runnable: list[Any] = []
    unparsed: list[tuple[str, str]] = []
    unrunnable: list[tuple[str, str]] = []
    for rule in policy_rules:
        query, error = _eql_parse(eql, rule.query)
        if query is None:
            unparsed.append((rule.id, error or "unparsed"))
            continue
        why = _eql_unrunnable(eql, query, lists)
        if why is not None:
            unrunnable.append((rule.id, why))
        else:
            runnable.append((rule.id, query))
    hits = [0]

    def count(_result: object) -> None:
        hits[0] += 1

    start = time.perf_counter()
    engine = eql.PythonEngine({"time_unit": 1000})
    engine.add_output_hook(count)
    loaded = 0
    for rule_id, query in runnable:
        try:
            engine.add_query(query)
            loaded += 1
        except eql.EqlError as exc:
            unrunnable.append((rule_id, f"engine: {' '.join(str(exc).split())}"))
    compile_s = time.perf_counter() - start
    converted = [
        eql.Event(str(ev.get("event", {}).get("category", "generic")), ev.get("@timestamp", 0), ev)
        for ev in events
    ]
    # eql slows down as its sequence state grows, so no projection from a short probe: it streams in
    # chunks until the stream ends or the time budget is spent, and is rated on what it processed
    seconds = 0.0
    timed = 0
    while timed < len(converted):
        size = min(_EQL_CHUNK, sample_events - timed) if timed < sample_events else _EQL_CHUNK
        chunk = converted[timed : timed + size]
        start = time.perf_counter()
        engine.stream_events(chunk, finalize=False)
        seconds += time.perf_counter() - start
        timed += len(chunk)
        if seconds > max_seconds and timed >= min(sample_events, len(converted)):
            break
    start = time.perf_counter()
    engine.stream_events([], finalize=True)
    seconds += time.perf_counter() - start
    sampled: int | None = timed if timed < len(converted) else None
    return BaselineResult(
        parsed=len(policy_rules) - len(unparsed),
        unparsed=len(unparsed),
        unrunnable=len(unrunnable),
        loaded=loaded,
        unparsed_examples=tuple(unparsed + unrunnable),
        events=timed,
        total_events=len(events),
        seconds=round(seconds, 3),
        events_per_s=rate(timed, seconds),
        alerts=hits[0],
        compile_s=round(compile_s, 3),
        sampled_events=sampled,
        syntax=_EQL_SYNTAX,
    )
