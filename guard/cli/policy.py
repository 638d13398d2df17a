"""``guardctl policy explain|test``: what each rule's enforcement can achieve, and its embedded tests."""

from __future__ import annotations

import argparse
from pathlib import Path

import guard.cli
from guard.cli.command import Subparsers, group, leaf, need_root
from guard.cli.output import emit
from guard.config import GuardConfig
from guard.lsm.btf import DEFAULT_BTF_PATH
from guard.lsm.probe import FEATURES, Feature, hook_enforcement
from guard.model import HOOKS, BackendName, Hook
from guard.offline.policy_test import run_policy_tests
from guard.plan.explain import RuleExplanation, explain_policy
from guard.policy.loader import load_policy

__all__ = ["register"]


def _runtime_note(row: RuleExplanation) -> str:
    """Say which runtime decides a rule's predicates in the engine when it is not the default."""
    if row.runtime in ("kernel", "python"):
        return ""
    return f"[{row.runtime} predicates, fail {row.rule.fail_mode}] "


def _render_explanation(source: str, backend: BackendName, rows: list[RuleExplanation]) -> str:
    """Return one line per rule and hook: action, enforcement path, the hook's enforcement, why."""
    lines = [
        f"policy {source}: {len(rows)} rules, backend {backend.value}",
        f"{'RULE':<28} {'ACTION':<7} {'PATH':<15} {'HOOK':<21} {'ENFORCEMENT':<14} WHY",
    ]
    for row in rows:
        hooks: list[tuple[Hook | None, str]] = [*row.hooks.items()] or [(None, "-")]
        for n, (hook, level) in enumerate(hooks):
            first = n == 0
            lines.append(
                f"{row.rule.id if first else '':<28} {row.rule.action if first else '':<7} "
                f"{row.path if first else '':<15} {hook.value if hook else '-':<21} {level:<14} "
                f"{_runtime_note(row) + row.note if first else ''}".rstrip()
            )
    return "\n".join(lines)


def _cmd_policy_explain(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    policy = load_policy(Path(args.path))
    if args.backend == "auto":
        need_root("policy explain (it probes the kernel; --backend lsm|compat explains without probing)")
        report = guard.cli.probe_kernel(args.btf)
        backend = report.backend
        levels = {h.hook: h.enforcement for h in report.hooks}
    else:
        backend = BackendName(args.backend)
        assumed = {name: Feature(name, True, "assumed") for name in FEATURES}
        levels = {hook: hook_enforcement(backend, hook, assumed, lsm_loads=True) for hook in HOOKS}
    rows = explain_policy(policy, backend, levels)
    emit(
        args,
        lambda: {"policy": policy.source, "backend": backend.value, "rules": [r.to_json() for r in rows]},
        lambda: _render_explanation(policy.source, backend, rows),
    )
    return 0


def _cmd_policy_test(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    policy = load_policy(Path(args.path))
    results = run_policy_tests(policy)
    failed = [r for r in results if not r.passed]
    untested = [r.id for r in policy.rules if not r.tests]

    def text() -> str:
        lines = []
        for r in results:
            verdict = "ok  " if r.passed else "FAIL"
            outcome = "matched" if r.matched else "no match"
            lines.append(f"{verdict} {r.rule} case {r.case}: expect {r.expect}, {outcome}")
        lines += [f"note {rule_id}: no test cases" for rule_id in untested]
        lines.append(f"{len(results) - len(failed)} passed, {len(failed)} failed ({len(policy.rules)} rules)")
        return "\n".join(lines)

    emit(
        args,
        lambda: {
            "policy": policy.source,
            "passed": len(results) - len(failed),
            "failed": len(failed),
            "untested": untested,
            "cases": [r.to_json() for r in results],
        },
        text,
    )
    return 1 if failed else 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl policy explain|test``."""
    policy_sub = group(sub, "policy", "policy inspection: what each rule's enforcement can achieve here")
    q = leaf(
        policy_sub, "explain", _cmd_policy_explain,
        "per rule: the hook that decides it and what the backend achieves there",
        "For every rule: the hook its deciding event reaches (a sequence: its last step) and the\n"
        "enforcement the backend achieves there: inline deny, kill reaction, detect only or none.\n"
        "--backend auto probes this kernel (root); lsm or compat explain a backend as such.",
        epilog="examples:\n"
        "  guardctl policy explain policies/\n"
        "  guardctl policy explain policies/ --backend compat --json | jq '.rules[].hooks'",
    )  # fmt: skip
    q.add_argument("path", metavar="PATH", help="policy file or directory")
    q.add_argument("--backend", choices=["auto", "lsm", "compat", "fake"], default="auto")
    q.add_argument("--btf", default=DEFAULT_BTF_PATH, help="BTF file for the probe (default: %(default)s)")
    q = leaf(
        policy_sub, "test", _cmd_policy_test,
        "run every rule's embedded test cases (exit 1 when any fails)",
        "Run each rule's [[rule.tests]] cases through the engine: the events, and whether the rule\n"
        "must match them. One line per case, then the totals.",
        epilog="examples:\n  guardctl policy test policies/\n"
        "  guardctl policy test policies/ --json | jq .failed",
    )  # fmt: skip
    q.add_argument("path", metavar="PATH", help="policy file or directory")
