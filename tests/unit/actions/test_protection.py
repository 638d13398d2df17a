"""Policy paths resolved to what the kernel also matches them by: inodes, subtrees, protected names.

The bundled rules are compiled as the agent compiles them; the resolver is a table, so each case
says exactly which identity a path gets. The FakeBackend then shows the decision that follows: a
file reached by another name (a hard link: same inode; a bind mount or chroot: same parent
directories) meets the rule written for its real path.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from guard.actions.protection import Protection, identities, subtree_of
from guard.lsm import abi
from guard.lsm.abi import Decision, Match, ModeId
from guard.lsm.fake import FakeBackend
from guard.lsm.verdicts import Action, PathRule
from guard.model import Hook
from guard.plan.compiler import CompiledPolicy, compile_policy
from guard.policy.loader import load_policy

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def compiled(name: str) -> CompiledPolicy:
    return compile_policy(load_policy(POLICIES / name))


@pytest.mark.parametrize(
    ("kind", "pattern", "directory"),
    [
        ("prefix", "/tmp/", "/tmp"),
        ("prefix", "/", "/"),
        ("glob", "/dev/shm/*", "/dev/shm"),
        ("glob", "/tmp/*", "/tmp"),
        ("prefix", "/tmp/x", None),  # a name starting with /tmp/x: not a directory
        ("glob", "/tmp/*.sh", None),
        ("glob", "*/.ssh/id_rsa", None),
        ("glob", "/home/*/x/*", None),
        ("suffix", "/tmp/", None),
        ("exact", "/tmp", None),
    ],
)
def test_subtree_of_names_only_whole_directories(kind: str, pattern: str, directory: str | None) -> None:
    assert subtree_of(PathRule(Hook.BPRM_CHECK_SECURITY, kind, pattern, 1)) == directory  # type: ignore[arg-type]


def test_bundled_rules_resolve_to_inodes_subtrees_and_protected_names() -> None:
    known = {"/etc/shadow": (1, 10), "/etc/gshadow": (1, 11), "/tmp": (2, 1), "/dev/shm": (3, 1)}
    tmp = compiled("exec/block_tmp_exec.guard")
    shadow = compiled("file/block_shadow_read.guard")
    ptrace = compiled("process/block_ptrace_protected.guard")

    found = identities(tmp, known.get)
    assert found.inodes == {}
    assert {key: value.deny[Hook.BPRM_CHECK_SECURITY.abi] for key, value in found.subtrees.items()} == {
        (2, 1): tmp.number("block_tmp_exec"),
        (3, 1): tmp.number("block_tmp_exec"),
    }  # "/memfd:*" names no directory: it stays a path verdict only

    found = identities(shadow, known.get)
    assert {key: value.deny[Hook.FILE_OPEN.abi] for key, value in found.inodes.items()} == {
        (1, 10): shadow.number("block_shadow_read"),
        (1, 11): shadow.number("block_shadow_read"),
    }
    assert found.subtrees == {}

    found = identities(ptrace, known.get)
    names = {
        key.rstrip(b"\0"): value.deny[Hook.PTRACE_ACCESS_CHECK.abi]
        for key, value in found.protect_names.items()
    }
    number = ptrace.number("block_ptrace_protected")
    assert names == {b"sshd": number, b"ssh-agent": number, b"gpg-agent": number, b"kestrel-vault": number}
    assert all(len(key) == abi.COMM_LEN for key in found.protect_names)


def test_a_path_that_does_not_exist_keeps_only_its_path_verdict() -> None:
    found = identities(compiled("file/block_shadow_read.guard"), lambda _path: None)
    assert (found.inodes, found.subtrees) == ({}, {})


def _agent_view(
    backend: FakeBackend, policy: CompiledPolicy, known: dict[str, tuple[int, int]]
) -> Protection:
    protection = Protection(
        backend, policy,
        agent_tgid=1, self_protect=False, refresh_s=60.0, monotonic=time.monotonic,
        exe_identity=known.get, list_processes=list,
    )  # fmt: skip
    backend.set_scope(pids=[100])
    protection.refresh(force=True)
    backend.configure({hook: ModeId.ENFORCE for hook in Hook}, agent_tgid=1)
    return protection


def test_a_hard_link_meets_the_rule_of_the_real_path() -> None:
    backend = FakeBackend()
    backend.load()
    _agent_view(backend, compiled("file/block_shadow_read.guard"), {"/etc/shadow": (1, 10)})
    assert backend.open(100, path="/var/tmp/innocent", dev=1, ino=10) == errno.EPERM
    assert backend.open(100, path="/var/tmp/other", dev=1, ino=12) == 0
    (event,) = [e for e in backend.poll_events(0) if e.decision == Decision.DENIED]
    assert (event.match, event.path) == (Match.INODE, b"/var/tmp/innocent")


def test_a_file_below_a_blocked_directory_by_any_path() -> None:
    backend = FakeBackend()
    backend.load()
    _agent_view(backend, compiled("exec/block_tmp_exec.guard"), {"/tmp": (2, 1)})
    # a bind mount or a chroot: the path says /mnt/x or /x, the parent directories are /tmp's
    assert backend.exec(100, path="/mnt/view/x", dev=2, ino=50, parents=[7, 1]) == errno.EPERM
    assert backend.exec(100, path="/x", dev=2, ino=51, parents=[1]) == errno.EPERM
    assert backend.exec(100, path="/usr/bin/true", dev=4, ino=52, parents=[9, 1]) == 0  # another device
    assert backend.exec(100, path="/x", dev=2, ino=53, parents=[5] * abi.SUBTREE_DEPTH + [1]) == 0  # too deep
    matches = [e.match for e in backend.poll_events(0) if e.decision == Decision.DENIED]
    assert matches == [Match.SUBTREE, Match.SUBTREE]


def test_exemptions_still_apply_to_the_inode_verdict() -> None:
    backend = FakeBackend()
    backend.load()
    known = {"/etc/shadow": (1, 10), "/usr/bin/passwd": (1, 40)}
    _agent_view(backend, compiled("file/block_shadow_read.guard"), known)
    assert backend.open(100, path="/elsewhere", dev=1, ino=10, exe_dev=1, exe_ino=40) == 0
    assert backend.open(100, path="/elsewhere", dev=1, ino=10, exe_dev=1, exe_ino=41) == errno.EPERM


def test_notify_rules_resolve_too() -> None:
    policy = compiled("exec/block_tmp_exec.guard")
    rule = PathRule(Hook.FILE_OPEN, "prefix", "/srv/drop/", 77, Action.NOTIFY)
    policy = CompiledPolicy(
        plans=policy.plans,
        kernel=type(policy.kernel)(paths=(*policy.kernel.paths, rule)),
        targets=policy.targets,
    )
    found = identities(policy, {"/srv/drop": (5, 2)}.get)
    assert found.subtrees[(5, 2)].notify[Hook.FILE_OPEN.abi] == 77
