"""The kernel probe against the running kernel (root). Runs on the host and inside the VM guests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guard.lsm.probe import COMPAT_NEEDS, FEATURES, LSM_NEEDS, ProbeReport, parse_mountinfo, probe_kernel
from guard.model import HOOKS, BackendName

pytestmark = pytest.mark.privileged


def test_report_covers_every_feature_and_hook(probe_report: ProbeReport) -> None:
    assert [f.name for f in probe_report.features] == list(FEATURES)
    assert [h.hook for h in probe_report.hooks] == list(HOOKS)
    assert probe_report.feature("btf").available
    for hook in probe_report.hooks:
        assert hook.prototype.startswith(f"int {hook.hook.lsm_function}("), hook


def test_backend_choice_follows_the_features(probe_report: ProbeReport) -> None:
    lsm_ok = all(probe_report.feature(n).available for n in LSM_NEEDS)
    compat_ok = all(probe_report.feature(n).available for n in COMPAT_NEEDS)
    expected = BackendName.LSM if lsm_ok else BackendName.COMPAT if compat_ok else BackendName.FAKE
    assert probe_report.backend is expected
    assert probe_report.reasons


def test_a_refused_lsm_program_is_reported_with_the_kernels_errno(probe_report: ProbeReport) -> None:
    lsm = probe_report.feature("lsm_program")
    if lsm.available:
        assert "loads and attaches" in lsm.detail
        return
    assert "BPF_PROG_LOAD(LSM" in lsm.detail
    assert any(
        name in lsm.detail for name in ("EPERM", "EINVAL", "ENOTSUPP", "EOPNOTSUPP", "E2BIG", "EACCES")
    )
    assert "super-user" not in lsm.detail.lower()
    assert any(r.startswith("lsm unusable: lsm_program:") for r in probe_report.reasons)


def test_lsm_program_agrees_with_hooks(probe_report: ProbeReport) -> None:
    file_open = next(h for h in probe_report.hooks if h.hook.value == "file_open")
    assert file_open.lsm_program == probe_report.feature("lsm_program").available


def _leftovers() -> tuple[set[str], int]:
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    cgroups: set[str] = set()
    for m in mounts:
        if m.fstype == "cgroup2":
            cgroups |= {p.name for p in Path(m.mount_point).glob("guard-probe-*")}
    return cgroups, sum(1 for m in mounts if m.fstype == "securityfs")


def _bpf_prog_names() -> list[str]:
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True, check=True)
    return [p.get("name", "") for p in json.loads(out.stdout or "[]")]


def test_probe_leaves_nothing_behind() -> None:
    before = _leftovers()
    probe_kernel()
    assert _leftovers() == before
    # Closed programs are freed after an RCU grace period: wait for it, boundedly.
    deadline = time.monotonic() + 10
    while "guard_probe" in _bpf_prog_names() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "guard_probe" not in _bpf_prog_names()


def test_guardctl_probe_json() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "guard.cli", "probe", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("GUARD_")},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["backend"] in {"lsm", "compat", "fake"}
    assert isinstance(data["reasons"], list)
    assert data["reasons"]
    assert set(data["features"]) == set(FEATURES)
    for feature in data["features"].values():
        assert set(feature) == {"available", "detail"}


def test_bcc_shim_imports_debians_bcc() -> None:
    code = (
        "import bcc, bcc.version, json;"
        "print(json.dumps({'file': bcc.__file__, 'version': bcc.version.__version__,"
        " 'lsm': hasattr(bcc.BPF, 'support_lsm')}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert "/dist-packages/bcc/" in os.path.realpath(data["file"])
    assert tuple(int(x) for x in data["version"].split(".")[:2]) >= (0, 26)
    assert data["lsm"]
