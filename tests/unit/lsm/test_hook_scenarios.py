"""The hook scenario table (tests/hook_scenarios.py) on the FakeBackend, every counter exact."""

from __future__ import annotations

import errno

import pytest

from guard.lsm.fake import FakeBackend
from guard.lsm.verdicts import KernelPolicy
from guard.model import HOOKS, BackendName
from tests.hook_scenarios import COUNTED, ENFORCE, IDS, SCENARIOS, Expect, Scenario, cleared, decision, modes
from tests.unit.lsm.test_fake_backend import CASES, CGROUP, OUTSIDER, TGID, ZERO, counts, make, summary

BY_HOOK = {case.hook: case for case in CASES}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_scenario(scenario: Scenario) -> None:
    case = BY_HOOK[scenario.hook]
    # every other hook enforces too: a call counts on its own hook only
    configured = modes(scenario) and {**dict.fromkeys(HOOKS, ENFORCE), **modes(scenario)}
    fake = make(case.policy if scenario.rule else KernelPolicy(), modes=configured)
    if scenario.rule_mode is None:
        meet(fake, scenario)
        return
    fake.set_rule_modes({case.rule_id: scenario.rule_mode})
    assert fake.rule_modes() == {case.rule_id: scenario.rule_mode}
    meet(fake, scenario)
    fake.set_rule_modes({})  # without the override, the hook's mode decides again
    assert fake.rule_modes() == {}
    meet(fake, cleared(scenario))


def meet(fake: FakeBackend, scenario: Scenario) -> None:
    """Make the call once; check its result, its event and what it added to every hook's counters."""
    case = BY_HOOK[scenario.hook]
    before = {hook: fake.counters(hook) for hook in HOOKS}
    tgid, where = (TGID, {}) if scenario.in_scope else (OUTSIDER, {"cgroup": CGROUP + 1})

    result = case.call(fake, tgid, **where)

    assert result == (errno.EPERM if scenario.expect is Expect.DENY else 0)
    events = fake.poll_events()
    expected = decision(scenario, BackendName.FAKE)
    if expected is None:
        assert events == []
    else:
        assert [summary(e) for e in events] == [(expected, case.rule_id, case.match)]
        assert (events[0].hook, events[0].tgid, events[0].pid) == (scenario.hook.abi, tgid, tgid)
    added = {hook: {c: n - before[hook][c] for c, n in fake.counters(hook).items()} for hook in HOOKS}
    if scenario.expect is Expect.UNCOUNTED:
        assert added[scenario.hook] == ZERO
    else:
        assert added[scenario.hook] == {**counts(calls=1), **COUNTED[scenario.expect]}
    for other in HOOKS:
        if other != scenario.hook:
            assert added[other] == ZERO
