"""``guardctl rules import-elastic``: Elastic detection rules into policy files."""

from __future__ import annotations

import argparse
from pathlib import Path

from guard.cli.command import Subparsers, group, leaf
from guard.cli.output import emit
from guard.config import GuardConfig
from guard.policy.elastic import import_elastic, write_policy

__all__ = ["register"]


def _cmd_rules_import(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    report = import_elastic([Path(p) for p in args.paths])
    written = write_policy(report, Path(args.output)) if args.output and report.imported else []

    def text() -> str:
        wrote = [f"wrote {len(written)} policy file(s) to {args.output}"] if args.output else []
        return "\n".join([report.render_text(), *wrote])

    emit(args, lambda: report.to_json() | {"written": [str(p) for p in written]}, text)
    return 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl rules import-elastic``."""
    rules_sub = group(sub, "rules", "rule management: import Elastic detection rules")
    q = leaf(
        rules_sub, "import-elastic", _cmd_rules_import,
        "turn Elastic detection-rules TOML files (language = eql) into policy files",
        "Read Elastic detection-rules TOML files (or directories of them); import each EQL rule "
        "(action alert) and report per file: imported and compiled, or skipped with the exact reason.",
        "print JSON (imported, compiled, skipped, total, files)",
    )  # fmt: skip
    q.add_argument("paths", nargs="+", metavar="PATH", help="TOML files or directories")
    q.add_argument("-o", "--output", metavar="DIR", help="write the imported rules as policy files into DIR")
