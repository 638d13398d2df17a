"""The policy compiler: each rule's path (with the reason when not inline) and its kernel entries."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from guard.lsm import abi
from guard.lsm.verdicts import Action, NetRule, PathRule
from guard.model import Hook
from guard.plan.compiler import CompiledPolicy, compile_policy
from guard.policy.loader import load_policy

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def compiled(tmp_path: Path, *rules: tuple[str, str, str]) -> CompiledPolicy:
    text = ""
    for rid, action, query in rules:
        text += f'[[rule]]\nid = "{rid}"\nname = "{rid}"\nseverity = "high"\naction = "{action}"\nquery = \'\'\'{query}\'\'\'\n\n'
    (tmp_path / "p.toml").write_text(text)
    return compile_policy(load_policy(tmp_path / "p.toml"))


def test_bundled_policies_take_the_documented_paths() -> None:
    c = compile_policy(load_policy(POLICIES))
    paths = {p.rule.id: (p.path, p.to_json()["hook"]) for p in c.plans}
    assert paths == {
        "block_tmp_exec": ("kernel-inline", "exec"),
        "block_shadow_read": ("kernel-inline", "file_open"),
        "block_ssh_key_read": ("kernel-inline", "file_open"),
        "block_c2_connect": ("kernel-inline", "connect"),
        "block_ptrace_protected": ("kernel-inline", "ptrace"),
        "block_download_chmod_exec": ("sequence-armed", "exec"),
        "alert_high_entropy_cmdline": ("detect-only", "exec"),
    }
    assert c.armed == frozenset({"block_download_chmod_exec"})
    assert [r.id for r in c.engine_rules] == ["alert_high_entropy_cmdline", "block_download_chmod_exec"]
    assert [(r.id, r.runtime) for r in c.engine_rules if r.runtime != "python"] == [
        ("alert_high_entropy_cmdline", "lua")
    ]
    assert [m.path.name for m in c.modules] == ["entropy.lua", "entropy.wat"]
    seq = c.plan("block_download_chmod_exec").arm
    assert seq is not None
    assert (seq.entity_of, seq.entity_key, seq.target_key) == ("parent", 0, 1)
    # interest: created files and chmods for the sequence's first steps, every exec for its last
    flags = c.kernel.hook_flags
    assert flags[Hook.FILE_OPEN] & abi.HF_EMIT_CREATED
    assert flags[Hook.FILE_OPEN] & abi.HF_EMIT_CHMOD
    assert not flags[Hook.FILE_OPEN] & abi.HF_EMIT_ALL
    assert flags[Hook.BPRM_CHECK_SECURITY] & abi.HF_EMIT_ALL
    assert "block_shadow_read" in {c.rule_ids[n] for n, _ in c.exemptions}


def test_inline_translations(tmp_path: Path) -> None:
    c = compiled(
        tmp_path,
        (
            "a",
            "block",
            'process where process.executable like ("/opt/bad/*", "*.sh") and event.type == "start"',
        ),
        ("b", "block", 'file where file.path == "/etc/secret" or file.name == "id_rsa"'),
        ("c", "kill", 'file where startsWith(file.path, "/srv/keys/")'),
        ("d", "block", "network where destination.port == 23"),
        ("e", "block", 'process where event.action == "ptrace" and target.process.pid == 1'),
    )
    assert all(p.path == "kernel-inline" for p in c.plans)
    paths = set(c.kernel.paths)
    n = c.number
    assert PathRule(Hook.BPRM_CHECK_SECURITY, "prefix", "/opt/bad/", n("a")) in paths
    assert PathRule(Hook.BPRM_CHECK_SECURITY, "suffix", ".sh", n("a")) in paths
    assert PathRule(Hook.FILE_OPEN, "exact", "/etc/secret", n("b")) in paths
    assert PathRule(Hook.FILE_OPEN, "suffix", "/id_rsa", n("b")) in paths
    assert PathRule(Hook.FILE_OPEN, "prefix", "/srv/keys/", n("c")) in paths
    assert NetRule(ipaddress.ip_network("::/0"), 23, n("d"), Action.DENY) in c.kernel.nets
    assert [t.tgid for t in c.kernel.ptrace] == [1]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('process where process.args : "-c"', "process.args is not visible to the exec hook"),
        ('file where file.path == "/a" and file.name == "b"', "a second test of the file_open hook's object"),
        ('process where process.executable regex "/tmp/.*"', "not a path test"),
        ("process where true", "it would deny every call"),
        ('file where event.type == "creation" and file.path == "/a"', "beyond what every open is"),
        ('file where event.action == "chmod"', "chmod is telemetry"),
        ("any where true", "several hooks"),
        ('network where destination.ip != "10.0.0.1"', "one destination network set"),
    ],
)
def test_not_inline_says_why(tmp_path: Path, query: str, reason: str) -> None:
    (plan,) = compiled(tmp_path, ("r", "block", query)).plans
    assert plan.path == "detect-only"
    assert reason in plan.reason


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (
            "sequence by file.path [file where true] [process where true]",
            "no join key names a process entity",
        ),
        (
            'sequence by process.entity_id [file where true] [process where process.args : "x"]',
            "the last step tests",
        ),
        (
            "sequence by process.pid [file where true] [process where true] ![network where true]",
            "trailing missing",
        ),
    ],
)
def test_sequences_that_cannot_be_armed_say_why(tmp_path: Path, query: str, reason: str) -> None:
    (plan,) = compiled(tmp_path, ("s", "block", query)).plans
    assert plan.path == "detect-only"
    assert reason in plan.reason


def test_alert_rules_are_detect_only_but_ask_for_their_events(tmp_path: Path) -> None:
    c = compiled(tmp_path, ("r", "alert", 'file where file.path == "/etc/shadow"'))
    (plan,) = c.plans
    assert plan.path == "detect-only"
    assert "never enforced" in plan.reason
    # interest push-down: a notify verdict on the path, not every open
    assert c.kernel.paths == (PathRule(Hook.FILE_OPEN, "exact", "/etc/shadow", c.number("r"), Action.NOTIFY),)
    assert not c.kernel.hook_flags.get(Hook.FILE_OPEN, 0) & abi.HF_EMIT_ALL


def test_whole_hook_arming_when_the_last_step_tests_nothing(tmp_path: Path) -> None:
    c = compiled(
        tmp_path, ("s", "block", "sequence by process.entity_id [file where true] [network where true]")
    )
    (plan,) = c.plans
    assert plan.path == "sequence-armed"
    assert plan.arm is not None
    assert plan.arm.hook is Hook.SOCKET_CONNECT
    assert plan.arm.target_key is None


def test_exemptions_are_by_the_callers_executable_on_opens_only(tmp_path: Path) -> None:
    c = compiled(
        tmp_path,
        (
            "f",
            "block",
            'file where file.path == "/etc/shadow" and not process.executable in ("/usr/bin/passwd")',
        ),
        ("x", "block", 'process where process.executable : "/opt/*" and process.executable != "/opt/ok"'),
    )
    assert c.plan("f").path == "kernel-inline"
    assert c.exemptions == ((c.number("f"), "/usr/bin/passwd"),)
    assert c.plan("x").path == "detect-only"
    assert "the new image" in c.plan("x").reason
