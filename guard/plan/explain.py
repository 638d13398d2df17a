"""``guardctl policy explain``: per rule, the path the compiler chose and what the backend achieves.

For every rule: its enforcement path (:mod:`guard.plan.compiler`: kernel-inline, sequence-armed
or detect-only, with the reason whenever it is not inline), the hook its deciding event reaches
(for a sequence, the last step that is not a missing step) and the enforcement level the backend
has on that hook on this kernel (:func:`guard.lsm.probe.hook_enforcement`): ``inline deny``,
``kill reaction``, ``detect only`` or ``none``; for a detect-only rule, what the engine does
instead: ``alert only`` or ``kill after alert``. A rule whose action is ``alert`` never enforces.
The note also names the fields the rule reads that no sensor fills (:mod:`guard.plan.coverage`)
and, for a rule imported from Elastic Defend, the Elastic actions it came with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from guard.model import HOOKS, BackendName, Hook, Telemetry
from guard.plan.compiler import INLINE, RulePlan, compile_policy, for_plane
from guard.plan.coverage import unfilled_fields
from guard.policy.elastic import elastic_origin
from guard.policy.loader import Policy, Rule

__all__ = ["RuleExplanation", "explain_policy"]


@dataclass(frozen=True, slots=True)
class RuleExplanation:
    """One rule under one backend: its path and, per hook, what enforcing it can achieve."""

    rule: Rule
    backend: BackendName
    hooks: Mapping[Hook, str]
    note: str
    plan: RulePlan
    #: fields the rule reads that no sensor fills today (guard/lsm/catalog.py)
    unfilled: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """kernel-inline, sequence-armed or detect-only."""
        return self.plan.path

    def to_json(self) -> dict[str, object]:
        """Return the rule's row as JSON-ready data."""
        return {
            "rule": self.rule.id,
            "number": self.plan.number,
            "action": self.rule.action,
            "mode": self.rule.mode,
            "sequence": self.rule.ir.is_sequence,
            "path": self.plan.path,
            "reason": self.plan.reason,
            "exemptions": list(self.plan.exemptions),
            "subject": self.plan.subject,
            "backend": self.backend.value,
            "hooks": {hook.value: level for hook, level in self.hooks.items()},
            "note": self.note,
            "runtime": self.runtime,
            "fail_mode": self.rule.fail_mode,
            "unfilled_fields": list(self.unfilled),
        }

    @property
    def runtime(self) -> str:
        """Where the rule's predicates run: ``kernel`` for inline rules, else the engine's runtime."""
        return "kernel" if self.plan.path == INLINE else self.rule.runtime


def _deciding_hooks(rule: Rule, plan: RulePlan) -> tuple[Hook, ...]:
    """Return the plan's hooks, else the deciding step's category's hook (every hook without one)."""
    hooks = tuple(kind for kind in plan.hook if isinstance(kind, Hook))
    if hooks:
        return hooks
    steps = [s for s in rule.ir.steps if not s.missing]
    category = steps[-1].category if steps else None
    if category is None:
        return HOOKS
    hook = Hook.for_category(category)
    return () if hook is None else (hook,)


def _note(plan: RulePlan, levels: Mapping[Hook, str], hooks: tuple[Hook, ...]) -> str:
    rule = plan.rule
    if rule.action == "alert":
        return "action = alert: matches are reported, never enforced"
    if plan.path == INLINE:
        who = f"; only for callers with {plan.subject}" if plan.subject else ""
        if any(levels.get(h) == "kill reaction" for h in hooks):
            return f"in the kernel; this backend kills the caller instead of refusing the call{who}"
        if plan.exemptions:
            return f"in the kernel; exempt executables: {', '.join(plan.exemptions)}{who}"
        return f"in the kernel: no user-space round trip{who}"
    if plan.arm is not None:
        target = (
            "the file named by a join key" if plan.arm.target_key is not None else "every call of the hook"
        )
        return f"once the earlier steps match, {target} is denied for the entity and its descendants"
    return f"not inline: {plan.reason}" + ("; the engine alerts, then kills" if rule.action == "kill" else "")


def explain_policy(policy: Policy, backend: BackendName, levels: Mapping[Hook, str]) -> list[RuleExplanation]:
    """Explain every rule under ``backend`` with its per-hook ``levels`` (from the probe)."""
    unseen = frozenset({Telemetry.CHMOD}) if backend is BackendName.COMPAT else frozenset()
    compiled = for_plane(compile_policy(policy), unseen)  # armed only where it can arm
    out = []
    for plan in compiled.plans:
        hooks = _deciding_hooks(plan.rule, plan)
        note = _note(plan, levels, hooks)
        origin = elastic_origin(plan.rule.description)
        if origin:
            note += f" [{origin}]"
        unfilled = () if plan.path == INLINE else unfilled_fields(plan.rule)
        if unfilled:
            note += f"; no sensor fills {', '.join(unfilled)}"
        if plan.path == INLINE or plan.arm is not None:
            what = {h: levels.get(h, "none") for h in hooks}
        else:  # the kernel does nothing for it: say what the engine does instead
            what = dict.fromkeys(hooks, "kill after alert" if plan.rule.action == "kill" else "alert only")
        out.append(RuleExplanation(plan.rule, backend, what, note, plan, unfilled))
    return out
