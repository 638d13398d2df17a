"""FakeBackend: per-rule modes, the lineage and file flags of events, created-file interest, chmod events."""

from __future__ import annotations

import errno

import pytest

from guard.errors import MapError
from guard.lsm import abi
from guard.lsm.abi import Counter, Decision, Match, ModeId
from guard.lsm.fake import FakeBackend
from guard.lsm.verdicts import Action, DynamicVerdict, InodeRule, KernelPolicy, PathRule, build_tables
from guard.model import Hook, Telemetry
from tests.unit.lsm.test_fake_backend import OUTSIDER, TGID, make, only_event, summary

OPEN = Hook.FILE_OPEN
OFF, DETECT, ENFORCE = ModeId.OFF, ModeId.DETECT, ModeId.ENFORCE


# ------------------------------------------------------------------ per-rule modes
# Each override on each hook, and removing it: tests/hook_scenarios.py.


def test_an_override_applies_only_to_its_rule_and_out_of_scope_stays_allowed() -> None:
    policy = KernelPolicy(
        paths=(PathRule(OPEN, "exact", "/a", 1), PathRule(OPEN, "exact", "/b", 2)),
    )
    fake = make(policy, modes={OPEN: ENFORCE})
    fake.set_rule_modes({1: DETECT})
    assert fake.open(TGID, path="/a") == 0
    assert fake.open(TGID, path="/b") == errno.EPERM
    assert fake.open(OUTSIDER, path="/b") == 0
    got = [summary(e) for e in fake.poll_events()]
    assert got == [(Decision.WOULD_BLOCK, 1, Match.PATH), (Decision.DENIED, 2, Match.PATH)]


def test_set_rule_modes_replaces_every_override() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/a", 1),)), modes={OPEN: ENFORCE})
    fake.set_rule_modes({1: DETECT, 2: OFF})
    assert fake.rule_modes() == {1: DETECT, 2: OFF}
    fake.set_rule_modes({2: ENFORCE})
    assert fake.rule_modes() == {2: ENFORCE}
    assert fake.open(TGID, path="/a") == errno.EPERM  # rule 1 follows its hook again
    fake.set_rule_modes({})
    assert fake.rule_modes() == {}


@pytest.mark.parametrize(
    "modes", [{0: DETECT}, {-1: DETECT}, {2**32: DETECT}, {1: 3}], ids=["zero", "negative", "too-big", "mode"]
)
def test_bad_rule_modes_are_refused_and_change_nothing(modes: dict[int, int]) -> None:
    fake = make()
    fake.set_rule_modes({5: OFF})
    with pytest.raises(MapError):
        fake.set_rule_modes(modes)  # type: ignore[arg-type]  # bad ids and modes on purpose
    assert fake.rule_modes() == {5: OFF}


def test_an_armed_verdict_obeys_its_rule_mode() -> None:
    fake = make(modes={OPEN: DETECT})
    fake.track(TGID, 7)
    fake.arm(DynamicVerdict(group=7, hook=OPEN, rule_id=90))
    assert fake.open(TGID, path="/x") == 0
    fake.set_rule_modes({90: ENFORCE})
    assert fake.open(TGID, path="/x") == errno.EPERM
    fake.set_rule_modes({90: OFF})
    assert fake.open(TGID, path="/x") == 0
    got = [summary(e) for e in fake.poll_events()]
    assert got == [(Decision.WOULD_BLOCK, 90, Match.DYNAMIC), (Decision.DENIED, 90, Match.DYNAMIC)]


def test_an_off_deny_does_not_resume_the_search() -> None:
    # The inode table decides first; switching its rule off does not bring the path rule into play
    # (the kernel keeps one deny per hook and key, and stops at the first deny).
    policy = KernelPolicy(
        inodes=(InodeRule(OPEN, 8, 9, 1),),
        paths=(PathRule(OPEN, "exact", "/a", 2),),
    )
    fake = make(policy, modes={OPEN: ENFORCE})
    fake.set_rule_modes({1: OFF})
    assert fake.open(TGID, path="/a", dev=8, ino=9) == 0
    assert fake.poll_events() == []


def test_an_off_deny_falls_back_to_the_long_path_deny_in_the_hook_mode() -> None:
    policy = KernelPolicy(inodes=(InodeRule(OPEN, 8, 9, 1),), hook_flags={OPEN: abi.HF_LONG_PATH_DENY})
    fake = make(policy, modes={OPEN: ENFORCE})
    fake.set_rule_modes({1: OFF})
    assert fake.open(TGID, path=None, dev=8, ino=9) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 0, Match.LONG_PATH)


def test_a_notify_rule_that_is_off_reports_nothing() -> None:
    policy = KernelPolicy(paths=(PathRule(OPEN, "exact", "/a", 3, Action.NOTIFY),))
    fake = make(policy, modes={OPEN: ENFORCE})
    fake.set_rule_modes({3: OFF})
    assert fake.open(TGID, path="/a") == 0
    assert fake.poll_events() == []
    fake.set_rule_modes({3: DETECT})
    assert fake.open(TGID, path="/a") == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 3, Match.PATH)


# ------------------------------------------------------------------ lineage, file flags, created-file interest


def test_events_carry_the_lineage_and_the_file_mode() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/a", 1),)))
    fake.open(TGID, path="/a", mode=0o100640, ppid=50, start_ns=123, parent_start_ns=45)
    event = only_event(fake)
    assert (event.ppid, event.start_ns, event.parent_start_ns, event.mode) == (50, 123, 45, 0o100640)


def test_created_and_write_flags() -> None:
    fake = make(KernelPolicy(hook_flags={OPEN: abi.HF_EMIT_ALL}))
    fake.open(TGID, path="/a", created=True, write=True)
    fake.open(TGID, path="/a", write=True)
    fake.open(TGID, path="/a")
    flags = [e.flags & (abi.EVF_CREATED | abi.EVF_WRITE) for e in fake.poll_events()]
    assert flags == [abi.EVF_CREATED | abi.EVF_WRITE, abi.EVF_WRITE, 0]


def test_created_interest_emits_only_opens_that_created_their_file() -> None:
    fake = make(KernelPolicy(hook_flags={OPEN: abi.HF_EMIT_CREATED}))
    assert fake.open(TGID, path="/new", created=True, write=True) == 0
    assert fake.open(TGID, path="/old", write=True) == 0
    assert fake.open(OUTSIDER, path="/new2", created=True) == 0  # not governed
    event = only_event(fake)
    assert (event.path, summary(event)) == (b"/new", (Decision.ALLOWED, 0, Match.ALL))


def test_a_deny_beats_the_created_interest() -> None:
    policy = KernelPolicy(paths=(PathRule(OPEN, "exact", "/new", 4),), hook_flags={OPEN: abi.HF_EMIT_CREATED})
    fake = make(policy)
    assert fake.open(TGID, path="/new", created=True) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 4, Match.PATH)


# ------------------------------------------------------------------ chmod events


def chmod_backend(mode: ModeId = DETECT, flags: int = abi.HF_EMIT_CHMOD) -> FakeBackend:
    return make(KernelPolicy(hook_flags={OPEN: flags}), modes={OPEN: mode})


def test_a_governed_chmod_emits_a_chmod_event() -> None:
    fake = chmod_backend()
    assert (
        fake.chmod(TGID, path="/tmp/x", mode=0o755, dev=3, ino=4, ppid=9, start_ns=8, parent_start_ns=7) == 0
    )
    event = only_event(fake)
    assert event.hook == abi.EVENT_CHMOD == Telemetry.CHMOD.abi
    assert summary(event) == (Decision.ALLOWED, 0, Match.ALL)
    assert (event.path, event.mode, event.dev, event.ino) == (b"/tmp/x", 0o755, 3, 4)
    assert (event.ppid, event.start_ns, event.parent_start_ns) == (9, 8, 7)
    counters = fake.counters(OPEN)
    assert (counters[Counter.CALLS], counters[Counter.EMITTED]) == (0, 1)


@pytest.mark.parametrize(
    ("mode", "flags", "tgid"),
    [
        (OFF, abi.HF_EMIT_CHMOD, TGID),  # file_open off
        (ENFORCE, 0, TGID),  # no interest
        (ENFORCE, abi.HF_EMIT_ALL, TGID),  # every open, still no chmod
        (ENFORCE, abi.HF_EMIT_CHMOD, OUTSIDER),  # out of scope
        (ENFORCE, abi.HF_EMIT_CHMOD, 10),  # the agent
    ],
)
def test_chmod_events_are_gated(mode: ModeId, flags: int, tgid: int) -> None:
    fake = chmod_backend(mode, flags)
    assert fake.chmod(tgid, path="/tmp/x", mode=0o755) == 0
    assert fake.poll_events() == []


def test_a_chmod_without_a_path_is_flagged_and_counted_under_file_open() -> None:
    fake = chmod_backend()
    fake.chmod(TGID, path=None, mode=0o700, dev=1, ino=2)
    event = only_event(fake)
    assert event.flags & abi.EVF_PATH_TOO_LONG
    assert event.path == b""
    assert fake.counters(OPEN)[Counter.PATH_TOO_LONG] == 1


def test_chmod_events_are_dropped_when_the_ring_buffer_is_full() -> None:
    fake = FakeBackend(ringbuf_capacity=0)
    fake.load()
    fake.configure({OPEN: DETECT}, agent_tgid=10)
    fake.set_scope(pids=[TGID])
    fake.apply(build_tables(KernelPolicy(hook_flags={OPEN: abi.HF_EMIT_CHMOD})))
    fake.chmod(TGID, path="/x", mode=0o755)
    assert fake.poll_events() == []
    assert fake.counters(OPEN)[Counter.RINGBUF_DROPS] == 1


def test_chmod_needs_a_loaded_backend() -> None:
    with pytest.raises(MapError):
        FakeBackend().chmod(TGID, path="/x", mode=0o755)
