"""The compat plane's per-rule modes, event lineage and created flag, and PinnedControl on its pins.

On this kernel (the host): everything is scoped to a cgroup each test creates. Network denies are
inline (EPERM), file denies a kill reaction; a rule's own mode switches either (here for datagrams;
for each hook's call in tests/hook_scenarios.py, run by test_hook_scenarios.py).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

from guard.lsm import abi
from guard.lsm.abi import Decision, Match, ModeId
from guard.lsm.bcc_backend import CompatBackend
from guard.lsm.btf import Btf
from guard.lsm.pinned import PinnedControl
from guard.lsm.verdicts import KernelPolicy, NetRule, build_tables
from guard.model import Hook
from tests.privileged.lineage import assert_lineage, start_ticks
from tests.privileged.scoping import PausedChild, sendto_in

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("cgroup_sock_addr"),
    pytest.mark.requires_feature("raw_tracepoint"),
    pytest.mark.requires_feature("send_signal"),
    pytest.mark.requires_feature("bcc"),
    pytest.mark.skipif(
        os.environ.get("VMTEST_GUEST") == "1",
        reason="the compat backend is tested on the host (no guest time)",
    ),
]

EPERM = 1
NET_RULE = 61
OPEN, CONNECT = Hook.FILE_OPEN, Hook.SOCKET_CONNECT


def govern(plane: CompatBackend, scope: Path, policy: KernelPolicy, modes: dict[Hook, ModeId]) -> None:
    plane.set_scope(cgroups=[scope.stat().st_ino])
    plane.apply(build_tables(policy))
    plane.configure(modes, agent_tgid=os.getpid())


def _net(port: int = 9) -> KernelPolicy:
    return KernelPolicy(nets=(NetRule(ipaddress.ip_network("127.0.0.0/8"), port, NET_RULE),))


def _decisions(plane: CompatBackend, hook: Hook) -> list[tuple[int, int, int]]:
    return [(e.decision, e.rule_id, e.match) for e in plane.poll_events(100) if e.hook == hook.abi]


def test_a_rule_override_flips_an_inline_deny_to_would_block_and_back(
    compat: CompatBackend, scope: Path
) -> None:
    govern(compat, scope, _net(), {CONNECT: ModeId.ENFORCE})
    assert sendto_in(scope, "127.0.0.1", 9) == EPERM
    compat.set_rule_modes({NET_RULE: ModeId.DETECT})
    assert sendto_in(scope, "127.0.0.1", 9) == 0
    compat.set_rule_modes({})
    assert sendto_in(scope, "127.0.0.1", 9) == EPERM
    compat.set_rule_modes({NET_RULE: ModeId.OFF})
    assert sendto_in(scope, "127.0.0.1", 9) == 0
    assert sendto_in(None, "127.0.0.1", 9) == 0
    assert _decisions(compat, CONNECT) == [
        (Decision.DENIED, NET_RULE, Match.NET),
        (Decision.WOULD_BLOCK, NET_RULE, Match.NET),
        (Decision.DENIED, NET_RULE, Match.NET),
    ]
    # enforce on the rule while its hook detects
    govern(compat, scope, _net(), {CONNECT: ModeId.DETECT})
    compat.set_rule_modes({NET_RULE: ModeId.ENFORCE})
    assert sendto_in(scope, "127.0.0.1", 9) == EPERM
    assert _decisions(compat, CONNECT) == [(Decision.DENIED, NET_RULE, Match.NET)]


def test_events_carry_the_lineage_and_the_created_flag(
    compat: CompatBackend, scope: Path, tmp_path: Path
) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    old.write_text("x")

    def create(path: Path) -> None:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))

    govern(compat, scope, KernelPolicy(hook_flags={OPEN: abi.HF_EMIT_CREATED}), {OPEN: ModeId.DETECT})
    creator = PausedChild(scope, lambda: create(new))
    creator_ticks = start_ticks(creator.pid)
    assert creator.release() == 0
    assert PausedChild(scope, lambda: create(old)).release() == 0  # exists: not created, not reported
    events = [e for e in compat.poll_events(100) if e.hook == OPEN.abi]
    assert [(e.ino, e.tgid) for e in events] == [(new.stat().st_ino, creator.pid)]
    event = events[0]
    assert event.flags & abi.EVF_CREATED
    assert event.flags & abi.EVF_WRITE
    assert event.mode == new.stat().st_mode
    assert os.fsdecode(event.path) == os.path.realpath(new)
    assert_lineage(event, creator_ticks, parent=os.getpid())


def test_network_events_carry_the_lineage(compat: CompatBackend, scope: Path) -> None:
    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"x", ("127.0.0.1", 9))

    govern(compat, scope, _net(), {CONNECT: ModeId.DETECT})
    child = PausedChild(scope, send)
    child_ticks = start_ticks(child.pid)
    assert child.release() == 0
    events = [e for e in compat.poll_events(100) if e.hook == CONNECT.abi]
    assert [(e.tgid, e.decision) for e in events] == [(child.pid, Decision.WOULD_BLOCK)]
    if "network_lineage" in compat.unavailable:
        assert (events[0].ppid, events[0].start_ns) == (0, 0)
        pytest.skip(compat.unavailable["network_lineage"])
    assert_lineage(events[0], child_ticks, parent=os.getpid())


def test_a_chrooted_task_sees_paths_from_its_own_root(
    compat: CompatBackend, scope: Path, tmp_path: Path
) -> None:
    jail = tmp_path / "jail"
    (jail / "etc").mkdir(parents=True)
    (jail / "etc" / "shadow").write_text("x")

    def open_in_jail() -> None:
        os.chroot(jail)
        os.close(os.open("/etc/shadow", os.O_RDONLY))

    govern(compat, scope, KernelPolicy(hook_flags={OPEN: abi.HF_EMIT_ALL}), {OPEN: ModeId.DETECT})
    child = PausedChild(scope, open_in_jail)
    assert child.release() == 0
    ino = (jail / "etc" / "shadow").stat().st_ino
    paths = [os.fsdecode(e.path) for e in compat.poll_events(100) if e.tgid == child.pid and e.ino == ino]
    assert paths == ["/etc/shadow"]  # what bpf_d_path gives: the path from the task's root


def test_the_compat_plane_reports_that_it_has_no_chmod_events(compat: CompatBackend) -> None:
    assert not compat.chmod_events
    assert "chmod" in compat.unavailable["chmod_events"]


# ----------------------------------------------------------------------------- PinnedControl


def test_pinned_control_switches_a_pinned_plane_without_loading_one(
    scope: Path, pin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    plane = CompatBackend(Btf.from_file(), tmp_path_factory.mktemp("bcc-pinned"), pin_dir=pin_dir)
    plane.load()
    try:
        govern(plane, scope, _net(), {CONNECT: ModeId.DETECT})
        assert sendto_in(scope, "127.0.0.1", 9) == 0
        with PinnedControl.from_pin_dir(pin_dir) as control:
            assert control.layout_dir == plane.pinned
            assert control.modes()[CONNECT] == ModeId.DETECT
            control.set_modes({CONNECT: ModeId.ENFORCE})
            assert sendto_in(scope, "127.0.0.1", 9) == EPERM
            assert sendto_in(None, "127.0.0.1", 9) == 0
            control.set_rule_mode(NET_RULE, ModeId.DETECT)
            assert control.rule_modes() == {NET_RULE: ModeId.DETECT}
            assert sendto_in(scope, "127.0.0.1", 9) == 0
            control.set_rule_mode(NET_RULE, None)
            assert sendto_in(scope, "127.0.0.1", 9) == EPERM
            control.set_modes({CONNECT: ModeId.OFF})
            assert sendto_in(scope, "127.0.0.1", 9) == 0
            assert control.modes()[CONNECT] == ModeId.OFF
        decided = [e.decision for e in plane.poll_events(100) if e.hook == CONNECT.abi]
        assert decided == [Decision.WOULD_BLOCK, Decision.DENIED, Decision.WOULD_BLOCK, Decision.DENIED]
    finally:
        plane.close()
