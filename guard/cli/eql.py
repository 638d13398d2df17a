"""``guardctl eql check|conformance``: the EQL language."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

from guard.cli.command import Subparsers, group, leaf
from guard.cli.output import emit
from guard.config import GuardConfig
from guard.errors import PolicySyntaxError
from guard.policy.analyzer import compile_query
from guard.policy.conformance import engine_evaluator, eql_evaluator, run_corpus
from guard.policy.corpus import default_corpus
from guard.policy.predicates.abi import RUNTIMES

__all__ = ["register"]

#: longest source line (with its caret line) printed above a syntax error
_CARET_MAX: Final = 2 * 500


def _cmd_eql_check(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    try:
        ir = compile_query(args.query)
    except PolicySyntaxError as exc:
        caret = exc.caret()
        if caret and not args.json and len(caret) <= _CARET_MAX:  # a huge line is not echoed back
            print(caret, file=sys.stderr)
        raise
    emit(
        args,
        lambda: {
            "query": ir.query.render(),
            "kind": "sequence" if ir.is_sequence else "event",
            "fields": {name: kind.value for name, kind in sorted(ir.field_kinds.items())},
        },
        ir.query.render,
    )
    return 0


def _cmd_eql_conformance(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    corpus = Path(args.corpus) if args.corpus else default_corpus()
    evaluator = engine_evaluator(runtime=args.runtime) if args.runtime else eql_evaluator()
    report = run_corpus(corpus, evaluator)
    emit(args, report.to_json, report.render_text)
    return 0 if report.failed == 0 else 1


def register(sub: Subparsers) -> None:
    """Add ``guardctl eql check|conformance``."""
    eql_sub = group(sub, "eql", "the EQL language: check a query, run Elastic's conformance corpus")
    q = leaf(
        eql_sub, "check", _cmd_eql_check,
        "parse and check a query against the ECS schema; print it in canonical form",
        "Parse and check a query against the ECS schema; print it in canonical form. "
        "Errors name the line, column, field or function.",
        "print JSON (canonical query, kind, fields read)",
    )  # fmt: skip
    q.add_argument("query", help="the EQL query")
    q = leaf(
        eql_sub, "conformance", _cmd_eql_conformance,
        "run Elastic's EQL spec queries (exit 1 when any fails)",
        "Run Elastic's EQL spec corpus (264 queries) through the parser, analyzer and "
        "offline evaluator, or with --runtime through the streaming engine with every predicate "
        "on that runtime; one line per file, every failure, and the total.",
        'print {"passed", "failed", "total", "failures"}',
    )  # fmt: skip
    q.add_argument(
        "--corpus", metavar="DIR", help="corpus directory (default: tests/data/conformance/elastic-eql)"
    )
    q.add_argument(
        "--runtime", choices=RUNTIMES,
        help="run the streaming engine with every predicate on this runtime (python: codegen)",
    )  # fmt: skip
