"""Kernel events as audit records: denies, would-blocks and kills; allowed events are not decisions."""

from __future__ import annotations

import ctypes
import ipaddress

import pytest

from guard.actions.decisions import kernel_decision
from guard.audit.record import Kind
from guard.lsm import abi
from guard.lsm.abi import Decision, Match
from guard.model import Hook


def _event(hook: Hook, decision: Decision, **fields: object) -> abi.Event:
    ev = abi.Event()
    ev.ts_ns, ev.hook, ev.decision, ev.rule_id, ev.match = 5_000, hook.abi, decision, 7, Match.INODE
    ev.pid, ev.tgid, ev.uid, ev.comm = 101, 100, 1000, b"tool"
    for name, value in fields.items():
        setattr(ev, name, value)
    return ev


def test_a_kill_reaction_becomes_a_kill_record_with_the_policy_rule_id() -> None:
    ev = _event(Hook.BPRM_CHECK_SECURITY, Decision.KILLED, path=b"/tmp/x", dev=3, ino=44)
    d = kernel_decision(ev, backend="compat", boot_offset_ns=1_000_000, rule_ids={7: "no-tmp-exec"})
    assert d is not None
    assert (d.kind, d.rule_id, d.hook, d.verdict, d.outcome) == (
        Kind.KILL, "no-tmp-exec", "bprm_check_security", "kill", "killed",
    )  # fmt: skip
    assert d.process is not None
    assert (d.process.pid, d.process.exe, d.process.uid, d.process.comm) == (100, "/tmp/x", 1000, "tool")
    assert d.detail["inode"] == 44
    assert d.detail["backend"] == "compat"
    assert d.detail["thread_id"] == 101
    assert d.ts == 1_005_000
    assert "SIGKILL" in d.reason


@pytest.mark.parametrize(
    ("decision", "kind", "verdict"),
    [(Decision.DENIED, Kind.DENY, "deny"), (Decision.WOULD_BLOCK, Kind.WOULD_BLOCK, "allow")],
)
def test_denies_and_would_blocks(decision: Decision, kind: Kind, verdict: str) -> None:
    addr = ipaddress.IPv6Address("::ffff:10.1.2.3").packed
    ev = _event(
        Hook.SOCKET_CONNECT, decision, port=443, addr=(ctypes.c_uint8 * 16)(*addr), flags=abi.EVF_SENDMSG
    )
    d = kernel_decision(ev, backend="lsm", boot_offset_ns=0)
    assert d is not None
    assert (d.kind, d.verdict, d.hook) == (kind, verdict, "socket_connect")
    assert d.detail["destination_ip"] == "10.1.2.3"
    assert d.detail["destination_port"] == 443
    assert d.detail["sendmsg"] is True
    assert d.rule_id == "#7"  # an unknown number is kept, never dropped


def test_allowed_events_are_not_decisions_and_rule_zero_is_no_rule() -> None:
    assert kernel_decision(_event(Hook.FILE_OPEN, Decision.ALLOWED), backend="lsm", boot_offset_ns=0) is None
    ev = _event(
        Hook.PTRACE_ACCESS_CHECK, Decision.DENIED, rule_id=0, target_tgid=9, flags=abi.EVF_PATH_TOO_LONG
    )
    d = kernel_decision(ev, backend="lsm", boot_offset_ns=0)
    assert d is not None
    assert d.rule_id is None
    assert d.detail["target_pid"] == 9
    assert d.detail["path_too_long"] is True


def test_a_call_the_kernel_could_not_judge_by_path_is_recorded_as_unjudged() -> None:
    """An over-long path passes the path tables unjudged: recorded, never only a counter."""
    ev = _event(
        Hook.BPRM_CHECK_SECURITY,
        Decision.ALLOWED,
        rule_id=0,
        match=Match.LONG_PATH,
        flags=abi.EVF_PATH_TOO_LONG,
    )
    d = kernel_decision(ev, backend="compat", boot_offset_ns=0)
    assert d is not None
    assert (d.kind, d.verdict, d.outcome, d.rule_id) == (Kind.UNJUDGED, "allow", "unjudged", None)
    assert d.detail["path_too_long"] is True
    assert "without a path verdict" in d.reason


@pytest.mark.parametrize(
    ("flag", "action"), [(abi.EVF_MMAP, "mmap"), (abi.EVF_LINK, "link"), (abi.EVF_RENAME, "rename")]
)
def test_another_way_to_the_file_is_named_in_the_record(flag: int, action: str) -> None:
    hook = Hook.BPRM_CHECK_SECURITY if flag == abi.EVF_MMAP else Hook.FILE_OPEN
    ev = _event(hook, Decision.DENIED, flags=flag)
    ev.path = b"/tmp/x"
    d = kernel_decision(ev, backend="lsm", boot_offset_ns=0)
    assert d is not None
    assert d.detail["action"] == action
    assert d.process is not None
    assert d.process.exe == ""  # a mapped or renamed file is not the caller's executable
