"""Rules that test the caller as well as the object: what compiles inline, and agreement.

A rule whose condition adds tests of the caller (``process.name``, ``process.parent.name``,
``user.id``; equality, ``in``, ``:`` without wildcards, and their negations) to a test of the
hook's object is kernel-inline: its entries deny only for callers that meet the tests. The
differential test compiles 240 generated rules, runs 12,000 random (caller, destination) calls
through the tables the kernel gets (FakeBackend, which reads them as the hooks do: one lookup per
field of the caller, bit masks per rule) and checks every decision against the user-space
evaluator on the event the kernel would report for that call.
"""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest

from guard.actions.protection import identities
from guard.lsm import abi
from guard.lsm.fake import FakeBackend
from guard.lsm.verdicts import (
    Caller,
    SubjectField,
    atom_masks,
    build_tables,
    caller_bits,
    cond_masks,
    subject_bits,
)
from guard.model import Hook
from guard.plan.compiler import DETECT, INLINE, CompiledPolicy
from guard.policy.evaluator import compile_expr
from tests.subject_rules import (
    IPS,
    NAMES,
    PARENTS,
    PORTS,
    UIDS,
    compiled_rules,
    connect_event,
    generated_rules,
)


def compiled(tmp_path: Path, *rules: tuple[str, str]) -> CompiledPolicy:
    return compiled_rules(tmp_path, list(rules))


def only_plan(tmp_path: Path, query: str) -> tuple[str, str, str]:
    plan = compiled(tmp_path, ("r", query)).plans[0]
    return plan.path, plan.reason, plan.subject


@pytest.mark.parametrize(
    ("query", "subject"),
    [
        ('network where process.name == "nc" and destination.port == 4444', "process.name in (nc)"),
        (
            'network where process.name in ("nc", "ncat") and destination.ip == "10.0.0.1"',
            "process.name in (nc, ncat)",
        ),
        ('network where process.name : "nc" and destination.port == 1', "process.name in (NC, Nc, nC, nc)"),
        ('network where process.name != "curl" and destination.port == 1', "process.name not in (curl)"),
        (
            'network where not process.name in ("curl") and destination.port == 1',
            "process.name not in (curl)",
        ),
        (
            'network where (process.name == "a" or process.name == "b") and destination.port == 1',
            "process.name in (a, b)",
        ),
        ('network where user.id == "0" and destination.port == 1', "user.id in (0)"),
        ('network where user.id == "0"', "user.id in (0)"),  # every destination, for root only
        ('file where process.name == "cat" and file.path == "/etc/shadow"', "process.name in (cat)"),
        ('file where process.parent.name == "sshd"', "process.parent.name in (sshd)"),
        (
            'process where process.parent.name == "udevadm" and process.name == "at"',
            "process.parent.name in (udevadm)",
        ),
        (
            'process where process.parent.name in ("bash", "sh") and process.executable == "/usr/bin/nc"',
            "process.parent.name in (bash, sh)",
        ),
    ],
)
def test_caller_tests_make_a_rule_inline(tmp_path: Path, query: str, subject: str) -> None:
    assert only_plan(tmp_path, query) == (INLINE, "", subject)


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ('network where process.name : "nc*" and destination.port == 1', "by equality or `in`"),
        ('process where user.id == "0" and process.name == "at"', "at exec"),
        ('process where process.name == "at" and process.args == "-f"', "a second test of the exec"),
        (
            'network where (process.name == "a" or user.id == "0") and destination.port == 1',
            "within one field of the caller",
        ),
        ('file where process.name == "cat" and file.path : "/etc/*"', "the DFA reports one rule per path"),
        ('network where user.id == "root" and destination.port == 1', "no uid"),
        ('network where process.name == "averyveryverylongname" and destination.port == 1', "comm"),
    ],
)
def test_caller_tests_the_kernel_cannot_make_are_named(tmp_path: Path, query: str, why: str) -> None:
    path, reason, _ = only_plan(tmp_path, query)
    assert path == DETECT
    assert why in reason


def test_a_key_holds_two_conditioned_rules_and_a_third_is_refused_by_name(tmp_path: Path) -> None:
    rules = [(f"r{i}", f'network where process.name == "n{i}" and destination.port == 7') for i in range(3)]
    c = compiled(tmp_path, *rules[:2])
    build_tables(c.kernel)
    c = compiled(tmp_path, *rules)
    with pytest.raises(Exception, match=r"3 rules with tests of the caller on one connect key"):
        build_tables(c.kernel)


def test_the_callers_bits_are_one_lookup_per_field(tmp_path: Path) -> None:
    c = compiled(
        tmp_path,
        ("a", 'network where process.name in ("nc", "ncat") and destination.port == 1'),
        (
            "b",
            'network where not process.name in ("nc") and process.parent.name == "bash" and destination.port == 2',
        ),
        ("c", 'network where user.id in ("0", "1000") and destination.port == 3'),
    )
    subjects = {s.rule_id: s for s in c.kernel.subjects}
    bits = subject_bits(subjects)
    atoms = atom_masks(subjects, bits)
    masks = cond_masks(subjects, bits)
    assert len(bits) == 4  # {nc, ncat}, {nc}, {bash}, {0, 1000}
    assert {f for f, _ in atoms} == {SubjectField.NAME, SubjectField.PARENT_NAME, SubjectField.UID}
    for caller in [
        Caller(b"nc", b"bash", 0),
        Caller(b"ncat", b"bash", 1000),
        Caller(b"curl", b"zsh", 5),
        Caller(b"nc", b"sh", 1000),
    ]:
        who = caller_bits(atoms, caller)
        for rule, subject in subjects.items():
            need, forbid = masks[rule]
            assert (who & need == need and not who & forbid) == subject.holds(caller), (caller, rule)


def test_kernel_tables_agree_with_the_evaluator_on_random_calls(tmp_path: Path) -> None:
    rng = random.Random(4444)  # noqa: S311 - a reproducible stream, not a secret
    rules = generated_rules(rng)
    c = compiled_rules(tmp_path, rules)
    inline = [p for p in c.plans if p.path == INLINE]
    assert len(inline) == len(rules)  # every generated form is one the kernel decides whole
    plane = FakeBackend()
    plane.load()
    plane.set_scope(cgroups=[7])
    plane.apply(build_tables(c.kernel))
    plane.configure({hook: abi.ModeId.ENFORCE for hook in Hook}, agent_tgid=1)
    conditions = [(p.number, compile_expr(p.rule.ir.steps[0].condition)) for p in inline]
    denied = 0
    for _ in range(12_000):
        name, parent, uid = rng.choice(NAMES), rng.choice(PARENTS), rng.choice(UIDS)
        port, ip = rng.choice(PORTS), rng.choice(IPS)
        doc = connect_event(name, parent, uid, ip, port)
        expected = [n for n, cond in conditions if cond(doc) is True]
        got = plane.connect(
            100, address=ip, port=port, cgroup=7, comm=name.encode(), parent_name=parent.encode(), uid=uid
        )
        assert (got == errno.EPERM) == bool(expected), (doc, expected)
        if expected:
            denied += 1
            (event,) = [e for e in plane.poll_events(10) if e.decision == abi.Decision.DENIED]
            assert event.rule_id in expected
    assert 1_000 < denied < 11_000  # both answers are exercised


def test_a_conditioned_file_rule_follows_the_file_by_inode_but_not_by_directory(tmp_path: Path) -> None:
    c = compiled(
        tmp_path,
        ("exact", 'file where process.name == "cat" and file.path == "/etc/shadow"'),
        ("dir", 'file where process.name == "cat" and file.path like "/srv/secret/*"'),
    )
    found = identities(c, lambda path: (8, len(path)))
    numbers = {p.rule.id: p.number for p in c.plans}
    (inode,) = found.inodes.values()
    assert inode.cond[Hook.FILE_OPEN.abi] == (numbers["exact"],)  # a hard link is judged the same
    assert inode.deny == [0] * abi.HOOK_COUNT
    assert found.subtrees == {}  # the directory is matched by path only (subtree walks test no caller)
