"""The kernel's decisions on rules that test the caller equal the evaluator's, on 12,000 real calls.

240 generated rules (``tests/subject_rules.py``: tests of the caller's name, its parent's name and
its uid in every form the compiler makes kernel-inline, with a destination port and sometimes an
address) are compiled and loaded into a plane. Then real processes connect: for each (parent name,
uid) pair a process names itself after the parent (``prctl(PR_SET_NAME)``) and forks a worker that
joins the test's cgroup, takes the uid, and for each of its calls names itself (the caller's name)
and connects to a loopback address and port where nothing listens. The kernel's answer is EPERM
(denied) or ECONNREFUSED (allowed); it must equal what the user-space evaluator says of the event
the hook reports for that call. Only the test's cgroup is governed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
import socket
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from guard.lsm import abi
from guard.lsm.abi import Decision, ModeId
from guard.lsm.bcc_backend import CompatBackend, LsmBackend
from guard.lsm.verdicts import build_tables
from guard.model import Hook
from guard.plan.compiler import INLINE
from guard.policy.evaluator import compile_expr
from guard.policy.semantics import Event
from tests.privileged.kit import on_the_compat_plane
from tests.privileged.scoping import loopback_up
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

CALLS = 12_000
PR_SET_NAME = 15
Call = tuple[str, str, int]  # caller's name, address, port


def _set_comm(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NAME, name.encode(), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")


def _worker(cg: Path, uid: int, calls: list[Call], out: int) -> None:
    (cg / "cgroup.procs").write_text(str(os.getpid()))
    if uid:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    seen = bytearray()
    for name, ip, port in calls:
        _set_comm(name)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect((ip, port))
            seen += b"C"
        except OSError as exc:
            seen += {errno.EPERM: b"D", errno.ECONNREFUSED: b"A"}.get(exc.errno or 0, b"X")
        finally:
            s.close()
    os.write(out, bytes(seen))


def run_calls(cg: Path, parent: str, uid: int, calls: list[Call]) -> bytes:
    """Run the calls from a worker whose parent is named ``parent``; one byte per call back."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the parent of the worker: named, then waits for it
        code = 1
        try:
            os.close(r)
            _set_comm(parent)
            child = os.fork()
            if child == 0:
                try:
                    _worker(cg, uid, calls, w)
                    os._exit(0)
                finally:
                    os._exit(1)
            _, status = os.waitpid(child, 0)
            code = os.waitstatus_to_exitcode(status)
        finally:
            os._exit(code)
    os.close(w)
    got = b""
    while chunk := os.read(r, 65536):
        got += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(got) == len(calls)
    return got


def check(plane: LsmBackend | CompatBackend, scope: Path, tmp_path: Path) -> None:
    rng = random.Random(21)  # noqa: S311 - a reproducible stream, not a secret
    compiled = compiled_rules(tmp_path, generated_rules(rng))
    inline = [p for p in compiled.plans if p.path == INLINE]
    assert len(inline) == len(compiled.plans) == 240
    # every generated rule tests its own port: only that port's rules can match a call to it
    on_port: dict[int, set[int]] = defaultdict(set)
    for net in compiled.kernel.nets:
        on_port[net.port].add(net.rule_id)
    conditions: dict[int, list[Callable[[Event], object]]] = defaultdict(list)
    for p in inline:
        (port,) = {net.port for net in compiled.kernel.nets if net.rule_id == p.number}
        conditions[port].append(compile_expr(p.rule.ir.steps[0].condition))
    plane.set_scope(cgroups=[scope.stat().st_ino])
    plane.apply(build_tables(compiled.kernel))
    plane.configure({hook: ModeId.ENFORCE for hook in Hook}, agent_tgid=os.getpid())
    loopback_up()
    groups: dict[tuple[str, int], list[Call]] = defaultdict(list)
    for _ in range(CALLS):
        groups[(rng.choice(PARENTS), rng.choice(UIDS))].append(
            (rng.choice(NAMES), rng.choice(IPS), rng.choice(PORTS))
        )
    denied = wrong = 0
    events = []
    before = plane.counters(Hook.SOCKET_CONNECT)[abi.Counter.DENIES]  # the session's plane counts on
    for (parent, uid), calls in sorted(groups.items()):
        got = run_calls(scope, parent, uid, calls)
        events += plane.poll_events(0)
        for (name, ip, port), answer in zip(calls, got, strict=True):
            doc = connect_event(name, parent, uid, ip, port)
            expected = any(cond(doc) is True for cond in conditions[port])
            assert answer in b"DA", (name, parent, uid, ip, port, chr(answer))
            denied += answer == ord("D")
            wrong += (answer == ord("D")) != expected
    assert wrong == 0
    assert 1_000 < denied < CALLS - 1_000  # both answers are exercised
    decided = [e for e in events if e.hook == Hook.SOCKET_CONNECT.abi and e.decision == Decision.DENIED]
    assert decided  # (the decision ring may drop some under this flood: they are counted, not checked)
    for e in decided:
        assert e.rule_id in on_port[e.port], (e.rule_id, e.port)  # the deny names a rule of that port
    assert plane.counters(Hook.SOCKET_CONNECT)[abi.Counter.DENIES] - before == denied


@pytest.mark.privileged
@pytest.mark.requires_feature("lsm_program")
@pytest.mark.requires_feature("bcc")
def test_the_lsm_plane_agrees_with_the_evaluator(plane: LsmBackend, scope: Path, tmp_path: Path) -> None:
    check(plane, scope, tmp_path)


@on_the_compat_plane
def test_the_compat_plane_agrees_with_the_evaluator(
    compat: CompatBackend, scope: Path, tmp_path: Path
) -> None:
    if "subject_conditions" in compat.unavailable:
        pytest.skip(compat.unavailable["subject_conditions"])
    check(compat, scope, tmp_path)
