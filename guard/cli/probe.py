"""``guardctl probe``: what this kernel offers and which backend the agent would run."""

from __future__ import annotations

import argparse

import guard.cli
from guard.cli.command import EXIT_HELP, Subparsers, command, need_root
from guard.cli.output import emit
from guard.config import GuardConfig
from guard.lsm.btf import DEFAULT_BTF_PATH
from guard.lsm.probe import ProbeReport

__all__ = ["register", "render_probe"]


def render_probe(report: ProbeReport) -> str:
    """Return the probe report as text: features, hooks with their enforcement, the backend and why."""
    rows = [f"kernel {report.kernel}", "", f"{'FEATURE':<18} {'OK':<4} DETAIL"]
    rows += [f"{f.name:<18} {'yes' if f.available else 'no':<4} {f.detail}" for f in report.features]
    rows += ["", f"{'HOOK':<21} {'LSM PROG':<9} {'ENFORCEMENT (' + report.backend.value + ')':<24} PROTOTYPE"]
    rows += [
        f"{h.hook.value:<21} {'yes' if h.lsm_program else 'no':<9} {h.enforcement:<24} {h.prototype or '-'}"
        for h in report.hooks
    ]
    rows += ["", f"backend: {report.backend.value}"]
    rows += [f"  - {r}" for r in report.reasons]
    return "\n".join(rows)


def _cmd_probe(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    need_root("probe")
    report = guard.cli.probe_kernel(args.btf)
    emit(args, report.to_json, lambda: render_probe(report))
    return 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl probe``."""
    p = command(
        sub,
        "probe",
        _cmd_probe,
        "report what this kernel offers and which backend the agent would run (root)",
        "examples:\n  guardctl probe\n  guardctl probe --json | jq .backend\n\n"
        "It loads allow-all no-op programs (LSM, cgroup connect4, raw tracepoint) with the raw bpf(2) call,\n"
        "so the kernel's own errno is shown; everything is released before it exits.\n\n" + EXIT_HELP,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--btf", default=DEFAULT_BTF_PATH, metavar="PATH", help="BTF file (default: %(default)s)")
