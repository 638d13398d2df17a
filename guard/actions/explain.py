"""What a backend can do for each rule: the hooks a rule decides on and their enforcement level.

A rule acts on the hook of its deciding event's category (for a sequence, the last step that is not
a missing step): ``process`` → exec, ``file`` → file open, ``network`` → connect, ``any`` → every
hook. Each hook's level comes from the backend on this kernel (:func:`guard.lsm.probe.hook_enforcement`):
``inline deny``, ``kill reaction``, ``detect only`` or ``none``. A rule whose action is ``alert``
never enforces, whatever the hook allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from guard.model import BackendName, Hook
from guard.policy.loader import Policy, Rule

__all__ = ["CATEGORY_HOOKS", "RuleExplanation", "explain_policy"]

#: The hook that decides events of an ECS category (``None``: any category).
CATEGORY_HOOKS: Final[Mapping[str | None, tuple[Hook, ...]]] = {
    "process": (Hook.BPRM_CHECK_SECURITY,),
    "file": (Hook.FILE_OPEN,),
    "network": (Hook.SOCKET_CONNECT,),
    None: tuple(Hook),
}


@dataclass(frozen=True, slots=True)
class RuleExplanation:
    """One rule under one backend: per hook, what enforcing it can achieve."""

    rule: Rule
    backend: BackendName
    hooks: Mapping[Hook, str]
    note: str

    def to_json(self) -> dict[str, object]:
        """Return the rule's row as JSON-ready data."""
        return {
            "rule": self.rule.id,
            "action": self.rule.action,
            "mode": self.rule.mode,
            "sequence": self.rule.ir.is_sequence,
            "backend": self.backend.value,
            "hooks": {hook.value: level for hook, level in self.hooks.items()},
            "note": self.note,
        }


def _deciding_hooks(rule: Rule) -> tuple[Hook, ...]:
    steps = [s for s in rule.ir.steps if not s.missing]
    category = steps[-1].category if steps else None
    return CATEGORY_HOOKS.get(category, ())


def explain_policy(policy: Policy, backend: BackendName, levels: Mapping[Hook, str]) -> list[RuleExplanation]:
    """Explain every rule under ``backend`` with its per-hook ``levels`` (from the probe)."""
    out = []
    for rule in policy.rules:
        hooks = _deciding_hooks(rule)
        if rule.action == "alert":
            note = "action = alert: matches are reported, never enforced"
        elif not hooks:
            note = "no hook sees this rule's events: detect only (alerts from the engine)"
        elif rule.ir.is_sequence:
            note = "sequence: the last step's verdict is armed for the entity once the earlier steps match"
        else:
            note = ""
        out.append(RuleExplanation(rule, backend, {hook: levels.get(hook, "none") for hook in hooks}, note))
    return out
