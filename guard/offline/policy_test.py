"""``guardctl policy test``: every rule's embedded test cases, run through the streaming engine.

A rule's ``[[rule.tests]]`` give events and whether the rule must match them (``match`` /
``no_match``). Each case runs the rule alone in a fresh :class:`~guard.policy.engine.Engine`, as the
agent would (whatever the rule's mode); events without ``@timestamp`` get one a second apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from guard.policy.engine import Engine
from guard.policy.loader import Policy

__all__ = ["CaseResult", "run_policy_tests"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One test case of one rule."""

    rule: str
    path: str
    case: int  # 1-based, in file order
    expect: str
    matched: bool

    @property
    def passed(self) -> bool:
        """Whether the rule did what the case expects."""
        return self.matched == (self.expect == "match")

    def to_json(self) -> dict[str, object]:
        """Return the case as JSON-ready data."""
        return {
            "rule": self.rule,
            "path": self.path,
            "case": self.case,
            "expect": self.expect,
            "matched": self.matched,
            "passed": self.passed,
        }


def run_policy_tests(policy: Policy) -> list[CaseResult]:
    """Run every embedded case of every rule; return one result per case."""
    out = []
    for rule in policy.rules:
        for n, case in enumerate(rule.tests, 1):
            events = []
            for i, ev in enumerate(case.events):
                doc = dict(ev)
                doc.setdefault("@timestamp", (i + 1) * 1000)
                events.append(doc)
            # a rule's logic, whatever its mode
            alerts = Engine([dataclasses.replace(rule, mode=None)], modules=policy.modules).run(events)
            out.append(CaseResult(rule.id, rule.path, n, case.expect, bool(alerts)))
    return out
