"""Harness for Elastic's EQL spec corpus: run an evaluator over the cases, compare, tally.

The corpus itself (cases, datasets, field types) is :mod:`guard.policy.corpus`. The comparison
knows nothing about EQL: the evaluator under test is passed in as a callable
(:class:`Evaluator`); :func:`eql_evaluator` and :func:`engine_evaluator` are ours.

Comparison rules, as Elasticsearch's ``BaseEqlSpecTestCase`` applies them:

- Each result row (an event, or a sequence) is a :class:`Match`. The flattened list of
  tie-breaker values (``serial_event_id`` or ``sequence``, per file) must equal one of the
  case's expected lists exactly, order included; ``-1`` stands for a missing-event slot.
- When a case lists ``join_keys``, the flattened keys of all rows must equal them, each key
  rendered as a string (``None`` renders as ``"null"``); see :func:`render_join_key`.
- The harness does not truncate: the evaluator must apply Elasticsearch's request size of
  :data:`DEFAULT_SIZE` results itself unless the query has ``| head`` or ``| tail``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Final, Protocol

from guard.errors import ConformanceError
from guard.policy.analyzer import compile_query
from guard.policy.ast import Field as FieldNode
from guard.policy.corpus import (
    CORPUS_NAME,
    DATASET_SOURCES,
    MISSING_EVENT_ID,
    SPEC_FILES,
    Case,
    Dataset,
    datetime_millis,
    format_date_millis,
    load_corpus,
    load_dataset,
    parse_date_millis,
)
from guard.policy.engine import Engine
from guard.policy.evaluator import Match as EvalMatch
from guard.policy.evaluator import evaluate, limit_rows
from guard.policy.ir import QueryIR
from guard.policy.loader import Rule
from guard.policy.schema import Schema, kind_of_es_type

__all__ = [
    "DEFAULT_SIZE",
    "Evaluator",
    "FileTally",
    "Match",
    "Outcome",
    "Report",
    "check",
    "engine_evaluator",
    "eql_evaluator",
    "render_join_key",
    "run_corpus",
    "schema_for",
]

#: Elasticsearch's request ``size`` in the spec tests: results beyond it are not returned
#: unless the query has ``| head`` or ``| tail``
DEFAULT_SIZE: Final = 50


# --------------------------------------------------------------------------- results and verdicts


@dataclass(frozen=True, slots=True)
class Match:
    """One result row in result order: an event (one id) or a sequence (ids in step order).

    A missing-event step contributes :data:`MISSING_EVENT_ID`. ``join_keys`` are the
    sequence's keys rendered as strings (see :func:`render_join_key`); None for events.
    """

    event_ids: tuple[int, ...]
    join_keys: tuple[str | None, ...] | None = None


class Evaluator(Protocol):
    """An EQL implementation under test: runs one query over one dataset."""

    def __call__(self, query: str, dataset: Dataset, /) -> Sequence[Match]:
        """Return the result rows in order."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict on one case; ``actual`` is None when the evaluator raised."""

    case: Case
    passed: bool
    expected: tuple[tuple[int, ...], ...]
    actual: tuple[int, ...] | None
    reason: str = ""
    expected_join_keys: tuple[str, ...] | None = None
    actual_join_keys: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class FileTally:
    """Passed and failed counts of one query file."""

    file: str
    passed: int
    failed: int

    @property
    def total(self) -> int:
        """Return passed + failed."""
        return self.passed + self.failed


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of a run: every case's verdict, tallied per file."""

    outcomes: tuple[Outcome, ...]
    files: tuple[FileTally, ...]

    @property
    def passed(self) -> int:
        """Return how many cases passed."""
        return sum(t.passed for t in self.files)

    @property
    def failed(self) -> int:
        """Return how many cases failed."""
        return sum(t.failed for t in self.files)

    @property
    def total(self) -> int:
        """Return how many cases ran."""
        return self.passed + self.failed

    @property
    def failures(self) -> tuple[Outcome, ...]:
        """Return the failed outcomes in run order."""
        return tuple(o for o in self.outcomes if not o.passed)

    def to_json(self) -> dict[str, object]:
        """Return a JSON-ready summary: totals, failures and per-file counts."""
        failures: list[dict[str, object]] = []
        for o in self.failures:
            item: dict[str, object] = {
                "file": o.case.file,
                "name": o.case.name,
                "query": o.case.query,
                "expected": [list(alt) for alt in o.expected],
                "actual": None if o.actual is None else list(o.actual),
                "reason": o.reason,
            }
            if o.expected_join_keys is not None:
                item["expected_join_keys"] = list(o.expected_join_keys)
                item["actual_join_keys"] = None if o.actual_join_keys is None else list(o.actual_join_keys)
            failures.append(item)
        return {
            "passed": self.passed,
            "failed": self.failed,
            "total": self.total,
            "failures": failures,
            "files": {t.file: {"passed": t.passed, "failed": t.failed, "total": t.total} for t in self.files},
        }

    def render_text(self) -> str:
        """Return one line per file, one per failure, then ``elastic-eql: N passed, M failed``."""
        lines = [f"{t.file}: {t.passed} passed, {t.failed} failed" for t in self.files]
        for o in self.failures:
            got = "nothing" if o.actual is None else _ids(o.actual)
            lines.append(f"FAIL {o.case.id}: expected {_expected(o.expected)} got {got} ({o.reason})")
        lines.append(f"{CORPUS_NAME}: {self.passed} passed, {self.failed} failed")
        return "\n".join(lines)


def _ids(ids: Iterable[int]) -> str:
    return "[" + ", ".join(str(i) for i in ids) + "]"


def _expected(alternatives: tuple[tuple[int, ...], ...]) -> str:
    if len(alternatives) == 1:
        return _ids(alternatives[0])
    return "one of " + " | ".join(_ids(alt) for alt in alternatives)


# --------------------------------------------------------------------------- join keys


def _java_double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "e" not in text and "." in text else f"{value:.1f}"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    if not isinstance(exponent, int):  # pragma: no cover - finite values only
        return repr(value)
    head, tail = str(digits[0]), "".join(str(d) for d in digits[1:]) or "0"
    return f"{'-' if sign else ''}{head}.{tail}E{exponent + len(digits) - 1}"


def render_join_key(value: object, *, field_type: str | None = None) -> str:
    """Return a join key value as Elasticsearch's spec tests compare it.

    None is ``"null"``; booleans ``true``/``false``; integers in decimal, or as an ISO date
    (``1970-01-01T00:00:00.000Z``) when ``field_type`` is ``"date"``; floats as Java prints
    doubles; datetimes as ISO dates; strings as they are (a date field's string value is
    normalised to the ISO form).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_date_millis(datetime_millis(value))
    if field_type == "date" and isinstance(value, int | float | str):
        return format_date_millis(parse_date_millis(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"not a scalar join key: {value!r}")


# --------------------------------------------------------------------------- comparison


def check(case: Case, results: Sequence[Match]) -> Outcome:
    """Compare an evaluator's result rows with the case, the way Elasticsearch's spec tests do.

    Ids first (flattened, exact, any alternative accepted), then, when the case lists join
    keys, the flattened keys with None rendered ``"null"``. Raises TypeError for rows that
    are not :class:`Match` or carry non-integer ids or non-string keys.
    """
    actual_list: list[int] = []
    keys_list: list[str] = []
    for row in results:
        if not isinstance(row, Match):
            raise TypeError(f"result row is a {type(row).__name__}, not a Match")
        for event_id in row.event_ids:
            if not isinstance(event_id, int) or isinstance(event_id, bool):
                raise TypeError(f"event id {event_id!r} is not an integer")
            actual_list.append(event_id)
        for key in row.join_keys or ():
            if key is not None and not isinstance(key, str):
                raise TypeError(f"join key {key!r} is not a string (see render_join_key)")
            keys_list.append("null" if key is None else key)
    actual = tuple(actual_list)
    expected_keys = (
        None if case.join_keys is None else tuple("null" if k is None else k for k in case.join_keys)
    )
    actual_keys = tuple(keys_list)
    if actual not in case.expected:
        reason = "ids differ"
        if len(results) > DEFAULT_SIZE:
            reason += (
                f" ({len(results)} rows: Elasticsearch returns at most {DEFAULT_SIZE} without head/tail)"
            )
        return Outcome(case, False, case.expected, actual, reason, expected_keys, actual_keys)
    if expected_keys and actual_keys != expected_keys:
        reason = f"join keys differ: expected {list(expected_keys)} got {list(actual_keys)}"
        return Outcome(case, False, case.expected, actual, reason, expected_keys, actual_keys)
    return Outcome(case, True, case.expected, actual, "", expected_keys, actual_keys)


# --------------------------------------------------------------------------- running


def run_corpus(root: Path, evaluate: Evaluator, *, only: str | None = None) -> Report:
    """Run every case of the corpus at ``root`` through ``evaluate`` and tally the verdicts.

    ``only`` selects a file (``test_extra.toml`` or ``test_extra``), a case name, or one
    ``<file>::<name>``. An exception from the evaluator (or a malformed result) fails that
    case with ``error: ...`` and the run goes on; so does an evaluator that mutates a
    dataset, which is then restored for the next case.
    """
    cases, datasets = load_corpus(root)
    selected = _select(cases, only)
    pristine = {name: _fingerprint(ds) for name, ds in datasets.items()}
    sources = {s.name: s for s in DATASET_SOURCES}
    outcomes: list[Outcome] = []
    for case in selected:
        dataset = datasets[case.dataset]
        outcome = _run_one(case, dataset, evaluate)
        if _fingerprint(dataset) != pristine[case.dataset]:
            outcome = Outcome(
                case, False, case.expected, outcome.actual, "error: the evaluator mutated the dataset"
            )
            datasets[case.dataset] = load_dataset(root, sources[case.dataset])
        outcomes.append(outcome)
    tallies: list[FileTally] = []
    for spec in SPEC_FILES:
        mine = [o for o in outcomes if o.case.file == spec.file]
        if mine:
            passed = sum(1 for o in mine if o.passed)
            tallies.append(FileTally(spec.file, passed, len(mine) - passed))
    return Report(tuple(outcomes), tuple(tallies))


def _run_one(case: Case, dataset: Dataset, evaluate: Evaluator) -> Outcome:
    try:
        results = evaluate(case.query, dataset)
    except Exception as exc:  # any failure of the evaluator is a failed case, never an aborted run
        return Outcome(case, False, case.expected, None, f"error: {type(exc).__name__}: {exc}")
    try:
        return check(case, results)
    except Exception as exc:  # a malformed result is the evaluator's failure too
        return Outcome(case, False, case.expected, None, f"error: bad result: {exc}")


def _select(cases: list[Case], only: str | None) -> list[Case]:
    if only is None:
        return cases
    wanted = only.strip()
    chosen = [c for c in cases if wanted in (c.file, c.file.removesuffix(".toml"), c.name, c.id)]
    if not chosen:
        raise ConformanceError(f"no case of the {CORPUS_NAME} corpus matches {only!r}")
    return chosen


def _fingerprint(dataset: Dataset) -> str:
    return json.dumps(dataset.events, sort_keys=True, default=repr)


# --------------------------------------------------------------------------- our evaluator


def schema_for(dataset: Dataset) -> Schema:
    """Build the analyzer's schema for a corpus dataset (types, null_value defaults, category field)."""
    kinds = {name: kind_of_es_type(ft.type) for name, ft in dataset.fields.items()}
    nulls = {name: ft.null_value for name, ft in dataset.fields.items() if ft.null_value is not None}
    texts = frozenset(name for name, ft in dataset.fields.items() if ft.type == "text")
    return Schema(dataset.name, kinds, nulls, (dataset.category_field,), texts)


def _case_rows(ir: QueryIR, dataset: Dataset, rows: Sequence[EvalMatch]) -> list[Match]:
    """Turn evaluator rows into the harness's: event ids (-1 for a missing slot) and rendered keys."""
    key_types: list[str | None] = []
    for key in ir.steps[0].keys:
        ft = dataset.field(key.name) if isinstance(key, FieldNode) else None
        key_types.append(ft.type if ft is not None else None)
    out: list[Match] = []
    for row in rows:
        ids = tuple(MISSING_EVENT_ID if ev is None else dataset.event_id(ev) for ev in row.events)
        keys = None
        if row.join_keys is not None:
            keys = tuple(
                render_join_key(k, field_type=t) for k, t in zip(row.join_keys, key_types, strict=False)
            )
        out.append(Match(ids, keys))
    return out


def eql_evaluator() -> Evaluator:
    """Our parser, analyzer and offline evaluator as a conformance :class:`Evaluator`."""
    schemas: dict[int, Schema] = {}

    def run(query: str, dataset: Dataset, /) -> list[Match]:
        schema = schemas.setdefault(id(dataset), schema_for(dataset))
        ir = compile_query(query, schema)
        rows = evaluate(
            ir, dataset.events, schema=schema, timestamp_field=dataset.timestamp_field,
            tiebreaker_field=dataset.tiebreaker,
        )  # fmt: skip
        return _case_rows(ir, dataset, rows)

    return run


def engine_evaluator(*, batch: int = 7, runtime: str = "python") -> Evaluator:
    """Return the streaming engine as a conformance :class:`Evaluator` (the query as a one-rule policy).

    The dataset is put in the evaluator's order and streamed in batches of ``batch`` events (so
    sequence state crosses batches); alerts are ordered by completion, and the head/tail pipes and
    the default size are applied to them afterwards, as a search would. ``runtime`` is the rule's
    predicate runtime (``python``, ``wasm`` or ``lua``).
    """
    schemas: dict[int, Schema] = {}

    def run(query: str, dataset: Dataset, /) -> list[Match]:
        schema = schemas.setdefault(id(dataset), schema_for(dataset))
        ir = compile_query(query, schema)
        rule = Rule("q", "q", "low", "alert", None, query, ir, "<query>", runtime=runtime)
        engine = Engine([rule], schema=schema, timestamp_field=dataset.timestamp_field,
                        tiebreaker_field=dataset.tiebreaker)  # fmt: skip
        events = list(dataset.ordered())  # a stream arrives in time order; batches cross sequence state
        rows = [EvalMatch(a.events, a.join_keys) for a in engine.run(events, batch=batch)]
        return _case_rows(ir, dataset, limit_rows(rows, ir.head, ir.tail, DEFAULT_SIZE))

    return run
