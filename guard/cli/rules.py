"""``guardctl rules import-elastic|coverage``: Elastic rules into policy files; what can fire here."""

from __future__ import annotations

import argparse
from pathlib import Path

import guard.cli
from guard.cli.command import Subparsers, group, leaf, need_root
from guard.cli.output import emit
from guard.config import GuardConfig
from guard.errors import KernelUnsupportedError
from guard.lsm.btf import DEFAULT_BTF_PATH
from guard.lsm.catalog import Plane, plane_of
from guard.plan.coverage import coverage
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


def _plane(args: argparse.Namespace) -> tuple[Plane, frozenset[str] | None]:
    """Return the plane to judge on and the probe features available (None: assume all)."""
    if args.plane != "auto":
        plane: Plane = "lsm" if args.plane == "lsm" else "compat"
        return plane, None
    need_root("rules coverage --plane auto (it probes the kernel; --plane lsm|compat judge without probing)")
    report = guard.cli.probe_kernel(args.btf)
    chosen = plane_of(report.backend)
    if chosen is None:
        raise KernelUnsupportedError(
            "kernel plane", f"neither lsm nor compat can run here: {'; '.join(report.reasons)}"
        )
    return chosen, frozenset(f.name for f in report.features if f.available)


def _cmd_rules_coverage(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    plane, features = _plane(args)
    report = coverage([Path(p) for p in args.paths], plane, features=features)
    emit(args, lambda: report.to_json(args.top), lambda: report.render_text(args.top))
    return 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl rules import-elastic|coverage``."""
    rules_sub = group(sub, "rules", "rule management: import Elastic rules, see which can fire here")
    q = leaf(
        rules_sub, "import-elastic", _cmd_rules_import,
        "turn Elastic rule TOML files (detection-rules EQL, Defend behaviour rules) into policy files",
        "Read Elastic rule TOML files (or directories of them): detection-rules (language = eql; "
        "imported with action alert) and Elastic Defend behaviour rules (kill_process actions become "
        "action kill). Report per file: imported and compiled, or skipped with the exact reason; "
        "then the totals per source kind.",
        "print JSON (imported, compiled, skipped, total, sources, files)",
    )  # fmt: skip
    q.add_argument("paths", nargs="+", metavar="PATH", help="TOML files or directories")
    q.add_argument("-o", "--output", metavar="DIR", help="write the imported rules as policy files into DIR")
    q = leaf(
        rules_sub, "coverage", _cmd_rules_coverage,
        "per rule: can it fire on this agent (the fields and event kinds the sensor produces)",
        "Import every rule file (Elastic TOML of either kind, or our policy TOML) and say per rule\n"
        "whether the agent produces every field it reads and every event kind it needs on a kernel\n"
        "plane (guard/lsm/catalog.py): 'can fire', or 'cannot fire' with the missing fields and\n"
        "event kinds. Then the totals and the fields missing most often: the capture roadmap.\n"
        "--plane auto probes this kernel (root) and uses the plane the agent would choose.",
        "print JSON (totals, sources, missing_fields, missing_kinds, rules)",
        epilog="examples:\n"
        "  guardctl rules coverage detection-rules/rules/linux --plane lsm\n"
        "  guardctl rules coverage protections-artifacts/behavior/rules/linux policies/ --plane compat\n"
        "  guardctl rules coverage rules/ --plane lsm --json | jq '.missing_fields[:5]'",
    )  # fmt: skip
    q.add_argument("paths", nargs="+", metavar="PATH", help="rule files or directories")
    q.add_argument("--plane", choices=["auto", "lsm", "compat"], default="auto")
    q.add_argument("--top", type=int, default=15, metavar="N", help="missing fields and kinds to list")
    q.add_argument("--btf", default=DEFAULT_BTF_PATH, help="BTF file for the probe (default: %(default)s)")
