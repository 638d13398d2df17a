"""`guardctl bench kernel` runs end to end in the kernel (figures are the benchmark's business, not a test's)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from guard.cli import main

pytestmark = [pytest.mark.privileged, pytest.mark.requires_feature("bcc")]

SETTINGS = {"off", "bare_scope", "enforce_rules"}


def bench(capsys: pytest.CaptureFixture[str], backend: str, iterations: int, rules: int) -> dict[str, Any]:
    argv = ["bench", "kernel", "--backend", backend, "--iterations", str(iterations), "--rules", str(rules)]
    assert main([*argv, "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert result["backend"] == backend
    assert result["rules"]["file_open"] == rules
    assert result["rules"]["socket_connect"] == rules
    for hook in ("file_open", "socket_connect"):
        per = result["results"][hook]
        assert set(per) == SETTINGS
        for setting, row in per.items():
            assert row["loop_ops"] == iterations * result["rounds"]
            assert row["hook_calls"] >= row["loop_ops"], (hook, setting, row)  # the loop reached the program
            assert row["denied"] == 0, (hook, setting)  # the benchmark's rules match nothing it does
            assert row["hook_ns_per_call"] > 0
            assert row["hook_ns_per_op"] > 0
            assert row["loop_ns_per_op"] > 0
        assert per["off"]["counted"] == 0, hook  # off returns before the call counter
        assert per["enforce_rules"]["counted"] >= per["enforce_rules"]["loop_ops"], hook
    assert all(value is not None and value > 0 for value in result["ratios"].values()), result["ratios"]
    return result


@pytest.mark.requires_feature("lsm_program")
def test_bench_kernel_json_measures_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    result = bench(capsys, "lsm", 200, 1000)
    if result["degraded"]:  # no path verdicts on this kernel: inode rules stand in
        assert result["rules"]["file_kinds"] == {"inode": 1000}
    else:
        assert sum(result["rules"]["file_kinds"].values()) == 1000
        assert result["dfa_states"] > 100
        assert result["scope_check"]["file_open"]["outcome"] == "EPERM"
        assert result["scope_check"]["file_open"]["denied"] == 1
    # enforce_rules ran in scope with the rules live: the set's own network was refused there
    assert result["scope_check"]["socket_connect"] == {
        "call": "connect udp 10.0.0.1:9",
        "outcome": "EPERM",
        "denied": 1,
    }


@pytest.mark.requires_feature("cgroup_sock_addr")
@pytest.mark.requires_feature("raw_tracepoint")
@pytest.mark.requires_feature("send_signal")
@pytest.mark.skipif(os.environ.get("VMTEST_GUEST") == "1", reason="the compat backend is tested on the host")
def test_bench_kernel_json_measures_the_compat_plane(capsys: pytest.CaptureFixture[str]) -> None:
    result = bench(capsys, "compat", 100, 50)
    assert result["degraded"] == []
    assert sum(result["rules"]["file_kinds"].values()) == 50
    assert set(result["programs"]) == {"file_open", "socket_connect"}
    # the sys_exit tracepoint runs on every syscall exit: the loop's close() at least doubles its runs
    for row in result["results"]["file_open"].values():
        assert row["hook_calls_per_op"] >= 2, row
    assert any("every syscall exit" in note.lower() for note in result["notes"])
    # the inherited connect4 program ran in the child cgroup outside the scope, and counted the calls
    bare = result["results"]["socket_connect"]["bare_scope"]
    assert bare["counted"] >= bare["loop_ops"]
    # enforce_rules ran in scope with the rules live: the set's own objects were refused there
    checks = result["scope_check"]
    assert checks["socket_connect"]["outcome"] == "EPERM"
    assert checks["file_open"]["outcome"] == "killed (SIGKILL)"  # compat's file deny is a kill reaction
    assert checks["socket_connect"]["denied"] == checks["file_open"]["denied"] == 1
