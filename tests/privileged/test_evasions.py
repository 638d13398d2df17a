"""Evasion cases against the kernel's verdicts, and the in-kernel DFA against the user-space matcher.

Path verdicts see bpf_d_path's answer: the kernel-resolved absolute path, so symlinks, relative and
``./`` spellings, ``//`` and ``..`` all meet the rule written for the real path; a hard link or a
renamed file meets an inode rule. Over-long paths are counted and reported, never silently allowed,
and denied when the hook is told to fail closed. Networks: v4-mapped IPv6 meets the IPv4 rule.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.lsm import abi
from guard.lsm.abi import Counter, Decision, Match, ModeId
from guard.lsm.bcc_backend import LsmBackend
from guard.lsm.verdicts import Action, InodeRule, KernelPolicy, NetRule, PathRule, build_tables, kernel_dev
from guard.model import Hook
from tests.privileged.kit import decisions, delta, govern, install, tmpfs
from tests.privileged.scoping import connect_in, exec_in, loopback_listeners, loopback_up, open_in, sendto_in

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs") as d:
        yield d


def test_path_spellings_meet_the_real_path(plane: LsmBackend, scope: Path, root: Path) -> None:
    tool = install(root / "tool")
    (root / "sub").mkdir()
    os.symlink(tool, root / "link")
    rules = (
        PathRule(Hook.BPRM_CHECK_SECURITY, "exact", str(tool), 5),
        PathRule(Hook.FILE_OPEN, "exact", str(tool), 6),
    )
    govern(plane, scope, KernelPolicy(paths=rules), Hook.BPRM_CHECK_SECURITY, ModeId.ENFORCE)
    spellings = [str(tool), f"{root}//tool", f"{root}/sub/../tool", "./tool", "tool", str(root / "link")]
    for spelling in spellings[:4] + spellings[5:]:
        assert exec_in(scope, spelling, cwd=root) == errno.EPERM, spelling
    plane.configure({Hook.FILE_OPEN: ModeId.ENFORCE}, agent_tgid=os.getpid())
    for spelling in spellings:
        assert open_in(scope, spelling, cwd=root) == errno.EPERM, spelling
    events = decisions(plane, Hook.BPRM_CHECK_SECURITY) + decisions(plane, Hook.FILE_OPEN)
    assert {(e.path.decode(), e.match) for e in events} == {(str(tool), Match.PATH)}


def test_hard_link_and_rename_meet_the_inode_rule(plane: LsmBackend, scope: Path, root: Path) -> None:
    tool = install(root / "tool")
    st = tool.stat()
    policy = KernelPolicy(inodes=(InodeRule(Hook.BPRM_CHECK_SECURITY, kernel_dev(st.st_dev), st.st_ino, 9),))
    govern(plane, scope, policy, Hook.BPRM_CHECK_SECURITY, ModeId.ENFORCE)
    os.link(tool, root / "hardlink")
    os.rename(root / "hardlink", root / "renamed")
    assert exec_in(scope, str(root / "renamed")) == errno.EPERM
    assert exec_in(scope, str(tool)) == errno.EPERM
    copy = install(root / "copy")  # a copy is a new file: an inode rule does not follow it
    assert exec_in(scope, str(copy)) == 0


def test_prefix_suffix_and_dfa_on_file_open(plane: LsmBackend, scope: Path, root: Path) -> None:
    for name in ("private/key", "notes.pem", "x/.ssh/id_rsa", "ok.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    rules = (
        PathRule(Hook.FILE_OPEN, "prefix", f"{root}/private/", 21),
        PathRule(Hook.FILE_OPEN, "suffix", ".pem", 22),
        PathRule(Hook.FILE_OPEN, "glob", "*/.ssh/id_*", 23),
        PathRule(Hook.FILE_OPEN, "contains", "ok.t", 24, Action.NOTIFY),
    )
    govern(plane, scope, KernelPolicy(paths=rules), Hook.FILE_OPEN, ModeId.ENFORCE)
    assert open_in(scope, root / "private/key") == errno.EPERM
    assert open_in(scope, root / "notes.pem") == errno.EPERM
    assert open_in(scope, root / "x/.ssh/id_rsa") == errno.EPERM
    assert open_in(scope, root / "ok.txt") == 0
    got = [(e.rule_id, e.match, e.decision) for e in decisions(plane, Hook.FILE_OPEN)]
    assert got == [
        (21, Match.PREFIX, Decision.DENIED),
        (22, Match.SUFFIX, Decision.DENIED),
        (23, Match.DFA, Decision.DENIED),
        (24, Match.DFA, Decision.ALLOWED),
    ]


def test_prefix_suffix_and_dfa_on_exec(plane: LsmBackend, scope: Path, root: Path) -> None:
    (root / "staging").mkdir()
    (root / "bin").mkdir()
    staged = install(root / "staging/tool")
    dotted = install(root / "bin/update.sh")
    dropped = install(root / "bin/x-dropper-2")
    plain = install(root / "bin/plain")
    rules = (
        PathRule(Hook.BPRM_CHECK_SECURITY, "prefix", f"{root}/staging/", 61),
        PathRule(Hook.BPRM_CHECK_SECURITY, "suffix", ".sh", 62),
        PathRule(Hook.BPRM_CHECK_SECURITY, "glob", "*/bin/?-DROPPER-*", 63, case_insensitive=True),
        PathRule(Hook.BPRM_CHECK_SECURITY, "contains", "/pla", 64, Action.NOTIFY),
    )
    govern(plane, scope, KernelPolicy(paths=rules), Hook.BPRM_CHECK_SECURITY, ModeId.ENFORCE)
    assert exec_in(scope, str(staged)) == errno.EPERM
    assert exec_in(scope, str(dotted)) == errno.EPERM
    assert exec_in(scope, str(dropped)) == errno.EPERM
    assert exec_in(scope, str(plain)) == 0
    got = [(e.rule_id, e.match, e.decision) for e in decisions(plane, Hook.BPRM_CHECK_SECURITY)]
    assert got == [
        (61, Match.PREFIX, Decision.DENIED),
        (62, Match.SUFFIX, Decision.DENIED),
        (63, Match.DFA, Decision.DENIED),
        (64, Match.DFA, Decision.ALLOWED),
    ]


def test_over_long_paths_are_reported_and_can_fail_closed(plane: LsmBackend, scope: Path, root: Path) -> None:
    deep = root
    while len(str(deep)) < 300:
        deep = deep / ("d" * 40)
    deep.mkdir(parents=True)
    target = deep / "secret"
    target.write_text("x")
    assert len(os.fsencode(str(target))) >= abi.PATH_MAX
    govern(plane, scope, KernelPolicy(), Hook.FILE_OPEN, ModeId.ENFORCE)
    before = plane.counters(Hook.FILE_OPEN)
    assert open_in(scope, target) == 0
    events = decisions(plane, Hook.FILE_OPEN)
    assert [(e.match, e.decision, e.flags & abi.EVF_PATH_TOO_LONG) for e in events] == [
        (Match.LONG_PATH, Decision.ALLOWED, abi.EVF_PATH_TOO_LONG)
    ]
    assert delta(before, plane.counters(Hook.FILE_OPEN))[Counter.PATH_TOO_LONG] == 1
    fail_closed = KernelPolicy(hook_flags={Hook.FILE_OPEN: abi.HF_LONG_PATH_DENY})
    govern(plane, scope, fail_closed, Hook.FILE_OPEN, ModeId.ENFORCE)
    assert open_in(scope, target) == errno.EPERM
    assert open_in(scope, root / ("d" * 40)) == 0  # short paths are unaffected


def test_v4_mapped_ipv6_and_ipv6_cidr(plane: LsmBackend, scope: Path) -> None:
    with loopback_listeners() as port:
        rules = (
            NetRule(ipaddress.ip_network("127.0.0.0/8"), 0, 31),
            NetRule(ipaddress.ip_network("::1/128"), port, 32),
        )
        govern(plane, scope, KernelPolicy(nets=rules), Hook.SOCKET_CONNECT, ModeId.ENFORCE)
        assert connect_in(scope, "::ffff:127.0.0.1", port) == errno.EPERM
        assert connect_in(scope, "127.0.0.1", port) == errno.EPERM
        assert connect_in(scope, "127.0.0.1", 9, udp=True) == errno.EPERM
        assert connect_in(scope, "::1", port) == errno.EPERM
        assert connect_in(scope, "::1", port + 1 if port < 65535 else port - 1) == errno.ECONNREFUSED
    got = [(e.rule_id, e.port) for e in decisions(plane, Hook.SOCKET_CONNECT)]
    assert got == [(31, port), (31, port), (31, 9), (32, port)]


def test_udp_sendto_an_explicit_destination_meets_the_network_rule(plane: LsmBackend, scope: Path) -> None:
    loopback_up()
    rules = (
        NetRule(ipaddress.ip_network("127.0.0.0/8"), 9, 33),
        NetRule(ipaddress.ip_network("::1/128"), 9, 34),
    )
    govern(plane, scope, KernelPolicy(nets=rules), Hook.SOCKET_CONNECT, ModeId.ENFORCE)
    assert sendto_in(scope, "127.0.0.1", 9) == errno.EPERM
    assert sendto_in(scope, "::ffff:127.0.0.1", 9) == errno.EPERM
    assert sendto_in(scope, "::1", 9) == errno.EPERM
    assert sendto_in(scope, "127.0.0.1", 10) == 0
    assert sendto_in(None, "127.0.0.1", 9) == 0  # out of scope
    events = decisions(plane, Hook.SOCKET_CONNECT)
    assert [(e.rule_id, e.port, e.flags & abi.EVF_SENDMSG) for e in events] == [
        (33, 9, abi.EVF_SENDMSG),
        (33, 9, abi.EVF_SENDMSG),
        (34, 9, abi.EVF_SENDMSG),
    ]
    emit_all = KernelPolicy(nets=rules[1:], hook_flags={Hook.SOCKET_CONNECT: abi.HF_EMIT_ALL})
    plane.apply(build_tables(emit_all))
    assert sendto_in(scope, "127.0.0.1", 9, connect_first=True) == 0
    events = decisions(
        plane, Hook.SOCKET_CONNECT
    )  # the connect alone: a send without a destination returns at once
    assert [(e.decision, e.match, e.flags) for e in events] == [(Decision.ALLOWED, Match.ALL, 0)]
