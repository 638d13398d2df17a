"""FakeBackend's two rings: decisions apart from telemetry, and the decision-drop table."""

from __future__ import annotations

import errno

import pytest

from guard.lsm import abi
from guard.lsm.abi import Counter, Decision, ModeId
from guard.lsm.fake import FakeBackend
from guard.lsm.verdicts import Action, KernelPolicy, PathRule, build_tables
from guard.model import Hook

OPEN, EXEC = Hook.FILE_OPEN, Hook.BPRM_CHECK_SECURITY
TGID = 100
POLICY = KernelPolicy(
    paths=(
        PathRule(OPEN, "exact", "/deny", 1, Action.DENY),
        PathRule(OPEN, "exact", "/also", 2, Action.DENY),
        PathRule(EXEC, "exact", "/deny", 3, Action.DENY),
        PathRule(OPEN, "exact", "/note", 4, Action.NOTIFY),
    )
)


def make(**knobs: int | bool) -> FakeBackend:
    fake = FakeBackend(**knobs)  # type: ignore[arg-type]
    fake.load()
    fake.configure({OPEN: ModeId.ENFORCE, EXEC: ModeId.ENFORCE}, agent_tgid=10)
    fake.set_scope(pids=[TGID])
    fake.apply(build_tables(POLICY))
    return fake


def test_decisions_come_first_in_a_batch_and_do_not_share_the_event_ring() -> None:
    fake = make(ringbuf_capacity=1, decision_capacity=8)
    assert fake.open(TGID, path="/note") == 0
    assert fake.open(TGID, path="/note") == 0  # the event ring is full: telemetry dropped
    assert fake.open(TGID, path="/deny") == errno.EPERM  # the decision ring still has room
    batch = fake.poll_events()
    assert [(e.decision, e.rule_id) for e in batch] == [(Decision.DENIED, 1), (Decision.ALLOWED, 4)]
    counters = fake.counters(OPEN)
    assert (counters[Counter.RINGBUF_DROPS], counters[Counter.DECISION_DROPS]) == (1, 0)
    assert fake.decision_drops() == {}


def test_a_full_decision_ring_counts_by_rule_hook_and_decision() -> None:
    fake = make(decision_capacity=1)
    fake.set_rule_modes({2: ModeId.DETECT})
    assert [fake.open(TGID, path="/deny") for _ in range(3)] == [errno.EPERM] * 3
    assert [fake.open(TGID, path="/also") for _ in range(2)] == [0, 0]  # would-block (rule in detect)
    assert fake.exec(TGID, path="/deny") == errno.EPERM
    assert fake.decision_drops() == {
        (1, OPEN, Decision.DENIED): 2,
        (2, OPEN, Decision.WOULD_BLOCK): 2,
        (3, EXEC, Decision.DENIED): 1,
    }
    assert fake.counters(OPEN)[Counter.DECISION_DROPS] == 4
    assert fake.counters(EXEC)[Counter.DECISION_DROPS] == 1
    assert len(fake.poll_events()) == 1  # the one the ring held
    assert fake.open(TGID, path="/deny") == errno.EPERM
    assert [e.rule_id for e in fake.poll_events()] == [1]  # room again: recorded, not counted
    assert fake.decision_drops()[(1, OPEN, Decision.DENIED)] == 2


def test_a_full_drop_table_leaves_the_drop_in_the_hook_counter_only() -> None:
    fake = make(decision_capacity=0, max_decision_drops=1)
    fake.open(TGID, path="/deny")
    fake.open(TGID, path="/also")  # a second key: no room in the table
    fake.open(TGID, path="/deny")  # a key the table holds still counts
    assert fake.decision_drops() == {(1, OPEN, Decision.DENIED): 2}
    assert fake.counters(OPEN)[Counter.DECISION_DROPS] == 3


def test_the_drop_table_outlives_a_load_only_when_pinned() -> None:
    for pinned in (False, True):
        fake = make(decision_capacity=0, pinned=pinned)
        fake.open(TGID, path="/deny")
        epoch = fake.decision_drops_epoch()
        fake.close()
        fake.load()
        expected = {(1, OPEN, Decision.DENIED): 1} if pinned else {}
        assert fake.decision_drops() == expected
        assert fake.counters(OPEN)[Counter.DECISION_DROPS] == len(expected)
        assert (fake.decision_drops_epoch() == epoch) is pinned
        assert fake.modes()[OPEN] == ModeId.OFF  # nothing else is kept


def test_submit_routes_a_raw_decision_to_the_decision_ring() -> None:
    fake = make()
    allowed, denied = abi.Event(decision=Decision.ALLOWED), abi.Event(decision=Decision.DENIED)
    fake.submit(bytes(allowed))
    fake.submit(bytes(denied))
    assert [e.decision for e in fake.poll_events()] == [Decision.DENIED, Decision.ALLOWED]


@pytest.mark.parametrize("knob", ["decision_capacity", "max_decision_drops"])
def test_negative_capacities_are_refused(knob: str) -> None:
    with pytest.raises(ValueError, match=knob):
        FakeBackend(**{knob: -1})  # type: ignore[arg-type]
