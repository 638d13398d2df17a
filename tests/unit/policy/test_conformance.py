"""Elastic's EQL spec corpus through our parser, analyzer and evaluator: all 264 must pass."""

from __future__ import annotations

from guard.policy.conformance import engine_evaluator, eql_evaluator, run_corpus
from guard.policy.corpus import default_corpus


def test_elastic_eql_corpus_passes_completely() -> None:
    report = run_corpus(default_corpus(), eql_evaluator())
    failures = "\n".join(
        f"{o.case.id}: expected {o.expected} got {o.actual} ({o.reason})" for o in report.failures
    )
    assert report.total == 264
    assert report.failed == 0, failures
    assert report.render_text().splitlines()[-1] == "elastic-eql: 264 passed, 0 failed"


def test_the_streaming_engine_passes_the_corpus_too() -> None:
    report = run_corpus(default_corpus(), engine_evaluator())
    failures = "\n".join(
        f"{o.case.id}: expected {o.expected} got {o.actual} ({o.reason})" for o in report.failures
    )
    assert report.failed == 0, failures
    assert report.passed == 264
