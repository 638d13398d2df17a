"""`guardctl bench kernel` runs end to end in the kernel (figures are the benchmark's business, not a test's)."""

from __future__ import annotations

import json

import pytest

from guard.cli import main

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]


def test_bench_kernel_json_measures_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "kernel", "--iterations", "200", "--rules", "1000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rules"]["file_open"] == 1000
    assert result["rules"]["socket_connect"] == 1000
    if result["degraded"]:  # no path verdicts on this kernel: inode rules stand in
        assert result["rules"]["file_kinds"] == {"inode": 1000}
    else:
        assert sum(result["rules"]["file_kinds"].values()) == 1000
        assert result["dfa_states"] > 100
    for hook in ("file_open", "socket_connect"):
        per = result["results"][hook]
        assert set(per) == {"off", "bare_scope", "enforce_rules"}
        for setting, row in per.items():
            assert row["loop_ops"] == 200 * result["rounds"]
            assert row["hook_calls"] >= row["loop_ops"], (hook, setting, row)  # the loop reached the hook
            assert row["denied"] == 0, (hook, setting)  # the benchmark's rules match nothing it does
            assert row["hook_ns_per_call"] > 0
            assert row["loop_ns_per_op"] > 0
    assert all(value is not None and value > 0 for value in result["ratios"].values()), result["ratios"]
