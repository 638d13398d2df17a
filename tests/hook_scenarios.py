"""One table of hook scenarios: a call on one hook, the modes around it, and the decision expected.

Every row runs on every hook, against the FakeBackend (``tests/unit/lsm/test_hook_scenarios.py``)
and against both kernel planes (``tests/privileged/test_hook_scenarios.py``: the compat plane on
a root host, the lsm plane in the vm-tests guests). A row says what the policy decides; the plane
says what a deny becomes (``guard.model.Hook.<hook>.<plane>.reaction``): an inline deny (EPERM and
a DENIED event) or, on the compat plane's tracepoint hooks, a kill reaction (SIGKILL and a KILLED
event). The FakeBackend decides as the lsm plane does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from guard.lsm.abi import Counter, Decision, ModeId
from guard.model import HOOKS, BackendName, Hook, Reaction


class Expect(enum.Enum):
    """What the call meets."""

    #: denied under enforce: the plane's reaction, a DENIED (or KILLED) event, DENIES counted
    DENY = "deny"
    #: allowed, with a WOULD_BLOCK event, WOULD_BLOCK counted
    WOULD_BLOCK = "would_block"
    #: allowed, counted as a call, no event
    ALLOW = "allow"
    #: the hook is off: allowed, nothing counted, no event
    UNCOUNTED = "uncounted"


@dataclass(frozen=True)
class Scenario:
    """One row on one hook."""

    hook: Hook
    name: str
    #: the hook's mode; None = never configured
    hook_mode: ModeId | None
    #: the rule's own mode (``set_rule_modes``); None = it follows its hook
    rule_mode: ModeId | None
    #: whether the caller is in the governed scope (the test's cgroup or pids)
    in_scope: bool
    #: whether the policy holds a rule matching the call
    rule: bool
    expect: Expect

    @property
    def id(self) -> str:
        """The test id: ``<hook>-<row>``."""
        return f"{self.hook.short}-{self.name}"


OFF, DETECT, ENFORCE = ModeId.OFF, ModeId.DETECT, ModeId.ENFORCE
DENY, WOULD_BLOCK, ALLOW, UNCOUNTED = Expect.DENY, Expect.WOULD_BLOCK, Expect.ALLOW, Expect.UNCOUNTED

# fmt: off
#: (row, hook mode, rule mode, caller in scope, a matching rule) -> what the call meets
ROWS: tuple[tuple[str, ModeId | None, ModeId | None, bool, bool, Expect], ...] = (
    ("no-rule",                   ENFORCE, None,    True,  False, ALLOW),
    ("enforce",                   ENFORCE, None,    True,  True,  DENY),
    ("detect",                    DETECT,  None,    True,  True,  WOULD_BLOCK),
    ("off",                       OFF,     None,    True,  True,  UNCOUNTED),
    ("unconfigured",              None,    None,    True,  True,  UNCOUNTED),
    ("out-of-scope",              ENFORCE, None,    False, True,  ALLOW),
    ("rule-detect-under-enforce", ENFORCE, DETECT,  True,  True,  WOULD_BLOCK),
    ("rule-enforce-under-detect", DETECT,  ENFORCE, True,  True,  DENY),
    ("rule-off-under-enforce",    ENFORCE, OFF,     True,  True,  ALLOW),
    ("rule-off-under-detect",     DETECT,  OFF,     True,  True,  ALLOW),
    ("rule-enforce-under-off",    OFF,     ENFORCE, True,  True,  UNCOUNTED),
)
# fmt: on

SCENARIOS: tuple[Scenario, ...] = tuple(Scenario(hook, *row) for hook in HOOKS for row in ROWS)
IDS = [s.id for s in SCENARIOS]

#: A hook's counters after one call (CALLS aside, which a kernel plane counts machine-wide).
COUNTED: dict[Expect, dict[Counter, int]] = {
    DENY: {Counter.DENIES: 1, Counter.WOULD_BLOCK: 0, Counter.EMITTED: 1, Counter.RINGBUF_DROPS: 0},
    WOULD_BLOCK: {Counter.DENIES: 0, Counter.WOULD_BLOCK: 1, Counter.EMITTED: 1, Counter.RINGBUF_DROPS: 0},
    ALLOW: {Counter.DENIES: 0, Counter.WOULD_BLOCK: 0, Counter.EMITTED: 0, Counter.RINGBUF_DROPS: 0},
}


def cleared(scenario: Scenario) -> Scenario:
    """The scenario once its rule's override is removed: the hook's mode decides again."""
    return next(
        s
        for s in SCENARIOS
        if (s.hook, s.hook_mode, s.in_scope, s.rule)
        == (scenario.hook, scenario.hook_mode, scenario.in_scope, True)
        and s.rule_mode is None
    )


def reaction(plane: BackendName, hook: Hook) -> Reaction:
    """What a deny becomes on a plane (the fake decides as the lsm plane)."""
    return hook.compat.reaction if plane == BackendName.COMPAT else hook.lsm.reaction


def sees(plane: BackendName, scenario: Scenario) -> bool:
    """Whether the plane's programs see (and count) the call: cgroup programs attach to the scope only."""
    facts = scenario.hook.compat if plane == BackendName.COMPAT else scenario.hook.lsm
    return scenario.in_scope or not facts.attach[0].startswith("cgroup/")


def modes(scenario: Scenario) -> dict[Hook, ModeId]:
    """The hook modes a scenario configures (only its own hook; none when unconfigured)."""
    return {} if scenario.hook_mode is None else {scenario.hook: scenario.hook_mode}


def decision(scenario: Scenario, plane: BackendName) -> Decision | None:
    """The one event's decision the call reports on this plane (None: no event)."""
    if scenario.expect is DENY:
        return (
            Decision.KILLED if reaction(plane, scenario.hook) is Reaction.KILL_REACTION else Decision.DENIED
        )
    return Decision.WOULD_BLOCK if scenario.expect is WOULD_BLOCK else None
