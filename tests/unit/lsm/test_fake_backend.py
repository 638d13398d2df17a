"""FakeBackend: the in-memory data plane, hook by hook, against the semantics the BPF hooks implement."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from guard.errors import MapError
from guard.lsm import abi
from guard.lsm.abi import Counter, Decision, Match, ModeId
from guard.lsm.backend import KernelBackend
from guard.lsm.fake import FakeBackend
from guard.lsm.verdicts import (
    Action,
    DynamicVerdict,
    InodeRule,
    KernelPolicy,
    NetRule,
    PathRule,
    PtraceRule,
    build_tables,
)
from guard.model import BackendName, Hook

EXEC, OPEN, CONNECT, PTRACE = (
    Hook.BPRM_CHECK_SECURITY,
    Hook.FILE_OPEN,
    Hook.SOCKET_CONNECT,
    Hook.PTRACE_ACCESS_CHECK,
)
DENY, NOTIFY = Action.DENY, Action.NOTIFY
OFF, DETECT, ENFORCE = ModeId.OFF, ModeId.DETECT, ModeId.ENFORCE

AGENT = 10
TGID = 100  # governed by pid scope
CGROUP = 777  # governed cgroup
OUTSIDER = 300  # neither in the pid scope nor in a governed cgroup
PTRACE_MODE_READ = 0x01

ZERO = dict.fromkeys(Counter, 0)


class Clock:
    def __init__(self, now: int = 1_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def counts(**values: int) -> dict[Counter, int]:
    return {**ZERO, **{Counter[name.upper()]: n for name, n in values.items()}}


def make(
    policy: KernelPolicy | None = None,
    *,
    modes: dict[Hook, ModeId] | None = None,
    clock: Clock | None = None,
    capacity: int = 4096,
    decision_capacity: int = 4096,
) -> FakeBackend:
    fake = FakeBackend(clock=clock or Clock(), ringbuf_capacity=capacity, decision_capacity=decision_capacity)
    fake.load()
    fake.configure(dict.fromkeys(Hook, ENFORCE) if modes is None else modes, agent_tgid=AGENT)
    fake.set_scope(cgroups=[CGROUP], pids=[TGID])
    fake.apply(build_tables(policy or KernelPolicy()))
    return fake


def only_event(fake: FakeBackend) -> abi.Event:
    events = fake.poll_events()
    assert len(events) == 1, [(e.hook, e.decision, e.rule_id, e.match) for e in events]
    return events[0]


def summary(event: abi.Event) -> tuple[Decision, int, Match]:
    return Decision(event.decision), event.rule_id, Match(event.match)


# ------------------------------------------------------------------ one denying case per hook


@dataclass(frozen=True)
class Case:
    hook: Hook
    policy: KernelPolicy
    rule_id: int
    match: Match
    call: Callable[..., int]  # (fake, tgid, **task) -> errno
    miss: Callable[..., int]  # a call no rule matches


CASES = [
    Case(
        EXEC,
        KernelPolicy(paths=(PathRule(EXEC, "exact", "/usr/bin/nc", 11),)),
        11,
        Match.PATH,
        lambda f, tgid, **kw: f.exec(tgid, path="/usr/bin/nc", **kw),
        lambda f, tgid, **kw: f.exec(tgid, path="/usr/bin/ls", **kw),
    ),
    Case(
        OPEN,
        KernelPolicy(paths=(PathRule(OPEN, "exact", "/etc/shadow", 12),)),
        12,
        Match.PATH,
        lambda f, tgid, **kw: f.open(tgid, path="/etc/shadow", **kw),
        lambda f, tgid, **kw: f.open(tgid, path="/etc/passwd", **kw),
    ),
    Case(
        CONNECT,
        KernelPolicy(nets=(NetRule(ipaddress.ip_network("203.0.113.0/24"), 0, 13),)),
        13,
        Match.NET,
        lambda f, tgid, **kw: f.connect(tgid, address="203.0.113.7", port=443, **kw),
        lambda f, tgid, **kw: f.connect(tgid, address="198.51.100.7", port=443, **kw),
    ),
    Case(
        PTRACE,
        KernelPolicy(ptrace=(PtraceRule(4242, 14),)),
        14,
        Match.PTRACE,
        lambda f, tgid, **kw: f.ptrace(tgid, target_tgid=4242, **kw),
        lambda f, tgid, **kw: f.ptrace(tgid, target_tgid=4243, **kw),
    ),
]
IDS = [case.hook.short for case in CASES]


# Enforce, detect, off and out of scope on each hook, rule modes too: tests/hook_scenarios.py.


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_agent_is_exempt_even_in_a_governed_cgroup(case: Case) -> None:
    fake = make(case.policy, modes={case.hook: ENFORCE})
    fake.set_scope(cgroups=[CGROUP], pids=[TGID, AGENT])
    assert case.call(fake, AGENT, cgroup=CGROUP) == 0
    assert fake.poll_events() == []
    assert fake.counters(case.hook) == counts(calls=1)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cgroup_scope_governs_any_tgid_in_it(case: Case) -> None:
    fake = make(case.policy)
    assert case.call(fake, OUTSIDER, cgroup=CGROUP, pid=OUTSIDER + 1, uid=1000, comm=b"curl") == errno.EPERM
    event = only_event(fake)
    assert (event.tgid, event.pid, event.uid, event.cgroup_id, event.comm) == (
        OUTSIDER,
        OUTSIDER + 1,
        1000,
        CGROUP,
        b"curl",
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_miss_is_allowed_silently(case: Case) -> None:
    fake = make(case.policy)
    assert case.miss(fake, TGID) == 0
    assert fake.poll_events() == []
    assert fake.counters(case.hook) == counts(calls=1)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_emit_all_reports_every_governed_call(case: Case) -> None:
    policy = KernelPolicy(**{**case.policy.__dict__, "hook_flags": {case.hook: abi.HF_EMIT_ALL}})
    fake = make(policy)
    assert case.miss(fake, TGID) == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 0, Match.ALL)
    assert case.call(fake, TGID) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, case.rule_id, case.match)
    assert case.miss(fake, OUTSIDER) == 0
    assert fake.poll_events() == []
    assert fake.counters(case.hook) == counts(calls=3, denies=1, emitted=2)


def test_emit_all_is_per_hook() -> None:
    fake = make(KernelPolicy(hook_flags={CONNECT: abi.HF_EMIT_ALL}))
    assert fake.open(TGID, path="/etc/hosts") == 0
    assert fake.poll_events() == []


# ------------------------------------------------------------------ scope and configuration


def test_pid_scope_governs_only_listed_tgids_outside_governed_cgroups() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/x", 1),)))
    assert fake.open(TGID, path="/x", cgroup=5) == errno.EPERM
    assert fake.open(TGID + 1, path="/x", cgroup=5) == 0


def test_set_scope_replaces_the_governed_set() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/x", 1),)))
    fake.set_scope(pids=[TGID + 1])
    assert fake.open(TGID, path="/x") == 0
    assert fake.open(TGID, path="/x", cgroup=CGROUP) == 0
    assert fake.open(TGID + 1, path="/x") == errno.EPERM


def test_configure_replaces_modes_and_missing_hooks_are_off() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/x", 1), PathRule(EXEC, "exact", "/x", 2))))
    fake.configure({EXEC: DETECT}, agent_tgid=AGENT)
    assert fake.open(TGID, path="/x") == 0
    assert fake.exec(TGID, path="/x") == 0
    assert summary(only_event(fake)) == (Decision.WOULD_BLOCK, 2, Match.PATH)
    assert fake.counters(OPEN) == ZERO


def test_apply_replaces_every_table_and_the_flags() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/x", 1),), hook_flags={OPEN: abi.HF_EMIT_ALL}))
    fake.apply(build_tables(KernelPolicy(paths=(PathRule(OPEN, "exact", "/y", 2),))))
    assert fake.open(TGID, path="/x") == 0
    assert fake.poll_events() == []
    assert fake.open(TGID, path="/y") == errno.EPERM


def test_apply_takes_a_snapshot() -> None:
    tables = build_tables(KernelPolicy(paths=(PathRule(OPEN, "exact", "/x", 1),)))
    fake = make()
    fake.apply(tables)
    tables.paths.clear()
    assert fake.open(TGID, path="/x") == errno.EPERM


# ------------------------------------------------------------------ notify and table order


def test_notify_is_an_allowed_event_with_its_rule_and_table() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "prefix", "/home/", 40, NOTIFY),)))
    assert fake.open(TGID, path="/home/ann/.bashrc") == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 40, Match.PREFIX)
    assert fake.counters(OPEN) == counts(calls=1, emitted=1)


def test_the_first_notify_is_reported() -> None:
    policy = KernelPolicy(
        inodes=(InodeRule(OPEN, 8, 99, 30, NOTIFY),),
        paths=(PathRule(OPEN, "exact", "/srv/a", 3, NOTIFY),),
    )
    fake = make(policy)
    assert fake.open(TGID, path="/srv/a", dev=8, ino=99) == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 30, Match.INODE)


def test_a_later_deny_beats_an_earlier_notify() -> None:
    policy = KernelPolicy(
        paths=(PathRule(OPEN, "prefix", "/srv/", 1, NOTIFY), PathRule(OPEN, "contains", "secret", 50)),
    )
    fake = make(policy)
    assert fake.open(TGID, path="/srv/secret") == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 50, Match.DFA)


def test_the_first_table_with_a_deny_wins() -> None:
    policy = KernelPolicy(
        inodes=(InodeRule(EXEC, 8, 99, 60),),
        paths=(
            PathRule(EXEC, "exact", "/bin/x", 1),
            PathRule(EXEC, "prefix", "/bin/", 2),
            PathRule(EXEC, "suffix", "/x", 3),
            PathRule(EXEC, "glob", "/bin/*", 4),
        ),
    )
    fake = make(policy)
    assert fake.exec(TGID, path="/bin/x", dev=8, ino=99) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 60, Match.INODE)
    assert fake.exec(TGID, path="/bin/x") == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 1, Match.PATH)
    assert fake.exec(TGID, path="/bin/y") == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 2, Match.PREFIX)
    assert fake.exec(TGID, path="/usr/x") == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 3, Match.SUFFIX)


def test_suffix_and_dfa_matches() -> None:
    policy = KernelPolicy(
        paths=(PathRule(OPEN, "suffix", "/id_rsa", 5), PathRule(OPEN, "glob", "/proc/*/mem", 6, NOTIFY)),
    )
    fake = make(policy)
    assert fake.open(TGID, path="/root/.ssh/id_rsa") == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 5, Match.SUFFIX)
    assert fake.open(TGID, path="/root/.ssh/id_rsa.pub") == 0
    assert fake.poll_events() == []
    assert fake.open(TGID, path="/proc/1/mem") == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 6, Match.DFA)


def test_the_dfa_reports_the_rule_of_the_id_it_found() -> None:
    policy = KernelPolicy(
        paths=(
            PathRule(OPEN, "glob", "*.pem", 2, NOTIFY),
            PathRule(OPEN, "contains", "secret", 9),
            PathRule(OPEN, "contains", "/srv/", 4, NOTIFY),
        ),
    )
    fake = make(policy)
    assert fake.open(TGID, path="/etc/x.pem") == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 2, Match.DFA)
    assert fake.open(TGID, path="/srv/x.pem") == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 2, Match.DFA)
    assert fake.open(TGID, path="/srv/secret.pem") == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 9, Match.DFA)
    assert fake.open(TGID, path="/srv/y") == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 4, Match.DFA)


def test_lpm_closure_a_longer_notify_prefix_still_denies() -> None:
    fake = make(
        KernelPolicy(
            paths=(PathRule(OPEN, "prefix", "/tmp/", 5), PathRule(OPEN, "prefix", "/tmp/a/", 9, NOTIFY))
        )
    )
    assert fake.open(TGID, path="/tmp/a/x") == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 5, Match.PREFIX)
    assert fake.open(TGID, path="/tmpfile") == 0
    assert fake.poll_events() == []


def test_longest_prefix_notify_under_a_shorter_notify() -> None:
    fake = make(
        KernelPolicy(
            paths=(PathRule(OPEN, "prefix", "/a/", 8, NOTIFY), PathRule(OPEN, "prefix", "/a/b/", 9, NOTIFY))
        )
    )
    assert fake.open(TGID, path="/a/b/c") == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 8, Match.PREFIX)  # smallest id of the closed entry


def test_a_rule_for_another_hook_does_not_match() -> None:
    fake = make(KernelPolicy(paths=(PathRule(EXEC, "exact", "/bin/sh", 1),)))
    assert fake.open(TGID, path="/bin/sh") == 0
    assert fake.poll_events() == []


# ------------------------------------------------------------------ file hooks: event fields, long paths


def test_file_event_fields() -> None:
    clock = Clock(123_456_789)
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/etc/shadow", 12),)), clock=clock)
    fake.open(
        TGID,
        path="/etc/shadow",
        dev=(8 << 20) | 1,
        ino=4321,
        pid=TGID + 3,
        uid=0,
        comm=b"a-very-long-command-name",
    )
    event = only_event(fake)
    assert event.ts_ns == 123_456_789
    assert (event.dev, event.ino, event.path) == ((8 << 20) | 1, 4321, b"/etc/shadow")
    assert event.comm == b"a-very-long-com"  # TASK_COMM_LEN - 1
    assert (event.flags, event.target_tgid, event.family, event.port, bytes(event.addr)) == (
        0,
        0,
        0,
        0,
        bytes(16),
    )


def test_inode_deny_on_exec() -> None:
    fake = make(KernelPolicy(inodes=(InodeRule(EXEC, 8, 99, 70),)))
    assert fake.exec(TGID, path="/renamed/copy", dev=8, ino=99) == errno.EPERM
    event = only_event(fake)
    assert summary(event) == (Decision.DENIED, 70, Match.INODE)
    assert event.path == b"/renamed/copy"
    assert fake.exec(TGID, path="/renamed/copy", dev=9, ino=99) == 0


@pytest.mark.parametrize("hook", [EXEC, OPEN])
@pytest.mark.parametrize(
    "path", [None, "/" + "a" * 255, b"/" + b"\xff" * 300], ids=["unresolvable", "256", "300"]
)
def test_an_unavailable_path_is_reported_never_silent(hook: Hook, path: str | bytes | None) -> None:
    fake = make(KernelPolicy(paths=(PathRule(hook, "prefix", "/", 1),)))
    call = fake.exec if hook == EXEC else fake.open
    assert call(TGID, path=path) == 0
    event = only_event(fake)
    assert summary(event) == (Decision.ALLOWED, 0, Match.LONG_PATH)
    assert (event.flags, event.path) == (abi.EVF_PATH_TOO_LONG, b"")
    assert fake.counters(hook) == counts(calls=1, path_too_long=1, emitted=1)


def test_a_255_byte_path_is_still_available() -> None:
    path = "/" + "a" * 254
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", path, 2),)))
    assert fake.open(TGID, path=path) == errno.EPERM
    event = only_event(fake)
    assert summary(event) == (Decision.DENIED, 2, Match.PATH)
    assert (event.flags, event.path) == (0, path.encode())
    assert fake.counters(OPEN)[Counter.PATH_TOO_LONG] == 0


@pytest.mark.parametrize(
    ("mode", "result", "decision"),
    [(ENFORCE, errno.EPERM, Decision.DENIED), (DETECT, 0, Decision.WOULD_BLOCK)],
)
def test_long_path_deny_fails_closed(mode: ModeId, result: int, decision: Decision) -> None:
    fake = make(KernelPolicy(hook_flags={OPEN: abi.HF_LONG_PATH_DENY}), modes={OPEN: mode})
    assert fake.open(TGID, path="/" + "x" * 300) == result
    event = only_event(fake)
    assert summary(event) == (decision, 0, Match.LONG_PATH)
    assert event.flags == abi.EVF_PATH_TOO_LONG
    assert fake.open(TGID, path="/short") == 0
    assert fake.poll_events() == []


def test_long_path_deny_comes_before_a_notify_and_emit_all() -> None:
    policy = KernelPolicy(
        inodes=(InodeRule(OPEN, 8, 99, 30, NOTIFY),),
        hook_flags={OPEN: abi.HF_LONG_PATH_DENY | abi.HF_EMIT_ALL},
    )
    fake = make(policy)
    assert fake.open(TGID, path=None, dev=8, ino=99) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 0, Match.LONG_PATH)


def test_a_table_deny_on_a_long_path_keeps_its_rule_and_the_flag() -> None:
    fake = make(KernelPolicy(inodes=(InodeRule(EXEC, 8, 99, 70),), hook_flags={EXEC: abi.HF_LONG_PATH_DENY}))
    assert fake.exec(TGID, path="/" + "x" * 300, dev=8, ino=99) == errno.EPERM
    event = only_event(fake)
    assert summary(event) == (Decision.DENIED, 70, Match.INODE)
    assert event.flags == abi.EVF_PATH_TOO_LONG
    assert fake.counters(EXEC) == counts(calls=1, denies=1, path_too_long=1, emitted=1)


def test_emit_all_beats_the_long_path_report_but_keeps_the_flag() -> None:
    fake = make(KernelPolicy(hook_flags={EXEC: abi.HF_EMIT_ALL}))
    assert fake.exec(TGID, path=None) == 0
    event = only_event(fake)
    assert summary(event) == (Decision.ALLOWED, 0, Match.ALL)
    assert event.flags == abi.EVF_PATH_TOO_LONG


def test_a_notify_beats_the_long_path_report() -> None:
    fake = make(KernelPolicy(inodes=(InodeRule(OPEN, 8, 99, 30, NOTIFY),)))
    assert fake.open(TGID, path=None, dev=8, ino=99) == 0
    event = only_event(fake)
    assert summary(event) == (Decision.ALLOWED, 30, Match.INODE)
    assert event.flags == abi.EVF_PATH_TOO_LONG


def test_long_paths_out_of_scope_are_not_counted_as_too_long() -> None:
    fake = make(KernelPolicy(hook_flags={OPEN: abi.HF_LONG_PATH_DENY}))
    assert fake.open(OUTSIDER, path=None) == 0
    assert fake.counters(OPEN) == counts(calls=1)


# ------------------------------------------------------------------ dynamic verdicts


def arm(fake: FakeBackend, hook: Hook, rule_id: int, action: Action = DENY, **kw: int) -> None:
    fake.arm(DynamicVerdict(group=7, hook=hook, rule_id=rule_id, action=action, **kw))


def test_dynamic_verdict_applies_to_tracked_processes_only() -> None:
    fake = make()
    fake.track(TGID, 7)
    arm(fake, OPEN, 80)
    assert fake.open(TGID, path="/anything") == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 80, Match.DYNAMIC)
    assert fake.open(TGID, path="/anything", cgroup=CGROUP, pid=TGID + 1) == errno.EPERM
    fake.poll_events()
    fake.set_scope(cgroups=[CGROUP], pids=[TGID, TGID + 1])
    assert fake.open(TGID + 1, path="/anything") == 0
    fake.untrack(TGID)
    assert fake.open(TGID, path="/anything") == 0
    assert fake.poll_events() == []


def test_dynamic_verdict_expires_and_is_deleted() -> None:
    clock = Clock(1_000)
    fake = make(clock=clock)
    fake.track(TGID, 7)
    arm(fake, OPEN, 81, expires_ns=2_000)
    clock.now = 2_000
    assert fake.open(TGID, path="/x") == errno.EPERM
    assert len(fake.armed()) == 1
    clock.now = 2_001
    assert fake.open(TGID, path="/x") == 0
    assert fake.armed() == []
    clock.now = 1_500  # the entry is gone, not merely hidden
    assert fake.open(TGID, path="/x") == 0


def test_dynamic_verdict_without_expiry_lasts_until_disarmed() -> None:
    clock = Clock(1_000)
    fake = make(clock=clock)
    fake.track(TGID, 7)
    arm(fake, PTRACE, 82)
    clock.now = 10**18
    assert fake.ptrace(TGID, target_tgid=1) == errno.EPERM
    fake.disarm(7, PTRACE)
    assert fake.ptrace(TGID, target_tgid=1) == 0
    fake.disarm(7, PTRACE)  # absent is fine


def test_dynamic_inode_target_vs_any_target() -> None:
    fake = make()
    fake.track(TGID, 7)
    arm(fake, EXEC, 83, dev=8, ino=99)
    assert fake.exec(TGID, path="/bin/a", dev=8, ino=99) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 83, Match.DYNAMIC)
    assert fake.exec(TGID, path="/bin/a", dev=8, ino=100) == 0
    assert fake.exec(TGID, path="/bin/a") == 0
    arm(fake, EXEC, 84)  # any target
    assert fake.exec(TGID, path="/bin/b", dev=8, ino=100) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 84, Match.DYNAMIC)
    assert fake.exec(TGID, path="/bin/a", dev=8, ino=99) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 83, Match.DYNAMIC)
    fake.disarm(7, EXEC, dev=8, ino=99)
    assert fake.exec(TGID, path="/bin/a", dev=8, ino=99) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 84, Match.DYNAMIC)


def test_dynamic_target_notify_then_any_target_deny() -> None:
    fake = make()
    fake.track(TGID, 7)
    arm(fake, OPEN, 85, NOTIFY, dev=8, ino=99)
    arm(fake, OPEN, 86)
    assert fake.open(TGID, path="/f", dev=8, ino=99) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 86, Match.DYNAMIC)


def test_dynamic_notify_then_a_static_deny() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/f", 3),)))
    fake.track(TGID, 7)
    arm(fake, OPEN, 87, NOTIFY)
    assert fake.open(TGID, path="/f") == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 3, Match.PATH)
    assert fake.open(TGID, path="/g") == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 87, Match.DYNAMIC)


def test_dynamic_deny_beats_a_static_deny() -> None:
    fake = make(KernelPolicy(nets=(NetRule(ipaddress.ip_network("0.0.0.0/0"), 0, 2),)))
    fake.track(TGID, 7)
    arm(fake, CONNECT, 88)
    assert fake.connect(TGID, address="192.0.2.1", port=80) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 88, Match.DYNAMIC)


def test_arm_replaces_the_same_group_hook_and_target() -> None:
    fake = make()
    fake.track(TGID, 7)
    arm(fake, OPEN, 89)
    arm(fake, OPEN, 90, NOTIFY)
    assert len(fake.armed()) == 1
    assert fake.open(TGID, path="/x") == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 90, Match.DYNAMIC)


def test_fork_inherits_the_group_and_exit_cleans_up() -> None:
    fake = make()
    fake.set_scope(pids=[TGID, 101, 102, 103])
    fake.track(TGID, 7)
    arm(fake, OPEN, 91)
    fake.fork(TGID, 101)
    fake.fork(101, 102)
    fake.fork(500, 103)  # untracked parent
    assert fake.group_of(101) == 7
    assert fake.group_of(102) == 7
    assert fake.group_of(103) is None
    assert fake.open(102, path="/x") == errno.EPERM
    assert fake.open(103, path="/x") == 0
    fake.exit(101)
    assert fake.group_of(101) is None
    assert fake.open(101, path="/x") == 0
    assert fake.group_of(TGID) == 7


# ------------------------------------------------------------------ connect


def test_v4_mapped_ipv6_connect_hits_an_ipv4_cidr_rule() -> None:
    fake = make(KernelPolicy(nets=(NetRule(ipaddress.ip_network("203.0.113.0/24"), 0, 13),)))
    assert fake.connect(TGID, address="::ffff:203.0.113.9", port=80) == errno.EPERM
    event = only_event(fake)
    assert summary(event) == (Decision.DENIED, 13, Match.NET)
    assert (event.family, event.port) == (socket.AF_INET6, 80)
    assert bytes(event.addr) == ipaddress.IPv6Address("::ffff:203.0.113.9").packed
    assert fake.connect(TGID, address="::ffff:203.0.114.9", port=80) == 0


def test_ipv4_connect_event_carries_the_v4_mapped_address() -> None:
    fake = make(KernelPolicy(nets=(NetRule(ipaddress.ip_network("203.0.113.0/24"), 0, 13),)))
    assert fake.connect(TGID, address="203.0.113.9", port=8080) == errno.EPERM
    event = only_event(fake)
    assert (event.family, event.port) == (socket.AF_INET, 8080)
    assert bytes(event.addr) == b"\0" * 10 + b"\xff\xff" + bytes([203, 0, 113, 9])


def test_sendmsg_to_an_explicit_destination_meets_the_connect_verdicts() -> None:
    fake = make(KernelPolicy(nets=(NetRule(ipaddress.ip_network("203.0.113.0/24"), 53, 16),)))
    assert fake.connect(TGID, address="203.0.113.9", port=53, sendmsg=True) == errno.EPERM
    event = only_event(fake)
    assert summary(event) == (Decision.DENIED, 16, Match.NET)
    assert event.flags == abi.EVF_SENDMSG
    assert fake.connect(TGID, address="203.0.113.9", port=54, sendmsg=True) == 0


def test_ipv6_cidr() -> None:
    fake = make(KernelPolicy(nets=(NetRule(ipaddress.ip_network("2001:db8::/33"), 0, 15),)))
    assert fake.connect(TGID, address="2001:db8:7fff::1", port=443) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 15, Match.NET)
    assert fake.connect(TGID, address="2001:db8:8000::1", port=443) == 0  # bit 33 differs
    assert fake.connect(TGID, address="2001:db9::1", port=443) == 0
    assert fake.poll_events() == []


def test_an_ipv4_rule_does_not_match_ipv6_and_vice_versa() -> None:
    fake = make(KernelPolicy(nets=(NetRule(ipaddress.ip_network("0.0.0.0/0"), 0, 1),)))
    assert fake.connect(TGID, address="2001:db8::1", port=1) == 0
    assert fake.connect(TGID, address="10.0.0.1", port=1) == errno.EPERM


def test_port_specific_vs_any_port() -> None:
    fake = make(KernelPolicy(nets=(NetRule(ipaddress.ip_network("10.0.0.0/8"), 22, 31),)))
    assert fake.connect(TGID, address="10.1.2.3", port=22) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 31, Match.NET)
    assert fake.connect(TGID, address="10.1.2.3", port=80) == 0
    assert fake.connect(TGID, address="10.1.2.3", port=0) == 0


def test_port_specific_notify_then_any_port_deny() -> None:
    policy = KernelPolicy(
        nets=(
            NetRule(ipaddress.ip_network("10.1.0.0/16"), 443, 32, NOTIFY),
            NetRule(ipaddress.ip_network("10.0.0.0/8"), 0, 33),
        )
    )
    fake = make(policy)
    assert fake.connect(TGID, address="10.1.2.3", port=443) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 33, Match.NET)


def test_a_port_specific_deny_wins_over_an_any_port_deny() -> None:
    policy = KernelPolicy(
        nets=(
            NetRule(ipaddress.ip_network("10.1.0.0/16"), 443, 40),
            NetRule(ipaddress.ip_network("10.0.0.0/8"), 0, 30),
        ),
    )
    fake = make(policy)
    assert fake.connect(TGID, address="10.1.2.3", port=443) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 40, Match.NET)
    assert fake.connect(TGID, address="10.1.2.3", port=444) == errno.EPERM
    assert summary(only_event(fake)) == (Decision.DENIED, 30, Match.NET)


def test_any_port_notify_with_a_port_specific_notify_reports_the_port_specific() -> None:
    policy = KernelPolicy(
        nets=(
            NetRule(ipaddress.ip_network("10.0.0.0/8"), 0, 1, NOTIFY),
            NetRule(ipaddress.ip_network("10.0.0.0/8"), 53, 2, NOTIFY),
        ),
    )
    fake = make(policy)
    assert fake.connect(TGID, address="10.0.0.53", port=53) == 0
    assert summary(only_event(fake)) == (Decision.ALLOWED, 2, Match.NET)


def test_other_families_are_only_counted() -> None:
    fake = make(
        KernelPolicy(
            nets=(NetRule(ipaddress.ip_network("0.0.0.0/0"), 0, 1),), hook_flags={CONNECT: abi.HF_EMIT_ALL}
        )
    )
    fake.track(TGID, 7)
    arm(fake, CONNECT, 2)
    assert fake.connect(TGID, address="/run/x.sock", port=0, family=socket.AF_UNIX) == 0
    assert fake.poll_events() == []
    assert fake.counters(CONNECT) == counts(calls=1)


# ------------------------------------------------------------------ ptrace


def test_ptrace_read_mode_is_never_denied_but_counted() -> None:
    fake = make(KernelPolicy(ptrace=(PtraceRule(4242, 14),), hook_flags={PTRACE: abi.HF_EMIT_ALL}))
    fake.track(TGID, 7)
    arm(fake, PTRACE, 2)
    assert fake.ptrace(TGID, target_tgid=4242, mode=PTRACE_MODE_READ) == 0
    assert fake.poll_events() == []
    assert fake.counters(PTRACE) == counts(calls=1)
    assert fake.ptrace(TGID, target_tgid=4242, mode=abi.PTRACE_MODE_ATTACH | 0x08) == errno.EPERM


def test_ptrace_event_carries_the_target() -> None:
    fake = make(KernelPolicy(ptrace=(PtraceRule(4242, 14, NOTIFY),)))
    assert fake.ptrace(TGID, target_tgid=4242) == 0
    event = only_event(fake)
    assert summary(event) == (Decision.ALLOWED, 14, Match.PTRACE)
    assert (event.target_tgid, event.path, event.dev, event.ino) == (4242, b"", 0, 0)


# ------------------------------------------------------------------ ring buffer, lifecycle, protocol


def test_a_full_ring_buffer_drops_and_counts_but_still_decides() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/x", 1),)), decision_capacity=2)
    assert [fake.open(TGID, path="/x") for _ in range(3)] == [errno.EPERM] * 3
    assert fake.counters(OPEN) == counts(calls=3, denies=3, emitted=2, decision_drops=1)
    assert fake.decision_drops() == {(1, OPEN, Decision.DENIED): 1}
    assert len(fake.poll_events()) == 2
    assert fake.poll_events() == []
    assert fake.open(TGID, path="/x") == errno.EPERM
    assert len(fake.poll_events()) == 1
    assert fake.counters(OPEN)[Counter.EMITTED] == 3


def test_counters_are_a_copy() -> None:
    fake = make()
    fake.counters(OPEN)[Counter.CALLS] = 99
    assert fake.counters(OPEN) == ZERO


def test_satisfies_the_kernel_backend_protocol() -> None:
    fake = FakeBackend()
    assert isinstance(fake, KernelBackend)
    assert fake.name is BackendName.FAKE


@pytest.mark.parametrize(
    "call",
    [
        lambda f: f.configure({}, agent_tgid=1),
        lambda f: f.set_scope(pids=[1]),
        lambda f: f.apply(build_tables(KernelPolicy())),
        lambda f: f.track(1, 2),
        lambda f: f.untrack(1),
        lambda f: f.arm(DynamicVerdict(group=1, hook=OPEN, rule_id=1)),
        lambda f: f.disarm(1, OPEN),
        lambda f: f.counters(OPEN),
        lambda f: f.poll_events(),
        lambda f: f.fork(1, 2),
        lambda f: f.exit(1),
        lambda f: f.exec(1, path="/x"),
        lambda f: f.open(1, path="/x"),
        lambda f: f.connect(1, address="10.0.0.1", port=1),
        lambda f: f.ptrace(1, target_tgid=2),
    ],
)
def test_an_unloaded_backend_raises_map_error(call: Callable[[FakeBackend], object]) -> None:
    fake = FakeBackend()
    assert not fake.loaded
    with pytest.raises(MapError, match=r": the data plane is not loaded$"):
        call(fake)


def test_close_unloads_and_load_starts_empty() -> None:
    fake = make(KernelPolicy(paths=(PathRule(OPEN, "exact", "/x", 1),)))
    fake.track(TGID, 7)
    assert fake.open(TGID, path="/x") == errno.EPERM

    def loaded() -> bool:  # read afresh: a type checker would keep the asserted property narrowed
        return fake.loaded

    fake.close()
    assert not loaded()
    with pytest.raises(MapError, match=r"^file_open: the data plane is not loaded$"):
        fake.open(TGID, path="/x")
    fake.close()  # closing twice is fine
    fake.load()
    assert loaded()
    assert fake.counters(OPEN) == ZERO
    assert fake.poll_events() == []
    assert fake.group_of(TGID) is None
    assert fake.open(TGID, path="/x") == 0  # no config: off
    fake.configure({OPEN: ENFORCE}, agent_tgid=AGENT)
    fake.set_scope(pids=[TGID])
    assert fake.open(TGID, path="/x") == 0  # no tables
    assert fake.counters(OPEN) == counts(calls=1)


def test_negative_ring_buffer_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="ringbuf_capacity"):
        FakeBackend(ringbuf_capacity=-1)
