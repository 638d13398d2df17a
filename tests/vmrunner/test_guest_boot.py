"""The runner's failure paths against a real QEMU guest: it never hangs, and says what happened.

Needs QEMU and the 6.1 kernel prepared by `make setup`; runs on the host only (never nested in a guest).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from vmrun.guest import boot
from vmrun.image import Artifacts, cached_artifacts
from vmrun.matrix import load_kernels

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.environ.get("VMTEST_GUEST") == "1", reason="no nested QEMU inside a guest"),
]


@pytest.fixture(scope="module")
def kernel_61() -> tuple[Artifacts, str]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 missing: make setup installs it")
    (k,) = [k for k in load_kernels(ROOT / "vm-tests" / "kernels.toml") if k.id == "6.1"]
    art = cached_artifacts(k.id, f"{k.image}={k.version}", ROOT / ".cache" / "vm-tests")
    if art is None:
        pytest.fail("the 6.1 guest is not prepared: make setup (vm-tests/run --prepare) builds it")
    return art, k.full_cmdline


def run_job(share: Path, job: str, kernel: tuple[Artifacts, str], *, boot_s: float, run_s: float):
    share.mkdir()
    (share / "job.sh").write_text(job)
    art, cmdline = kernel
    return boot(
        art, cmdline, share, accel="tcg", memory_mb=512, cpus=1, boot_timeout_s=boot_s, run_timeout_s=run_s
    )


def test_exit_code_comes_back(tmp_path: Path, kernel_61: tuple[Artifacts, str]) -> None:
    result = run_job(tmp_path / "s", "echo hi > /run/guard-vm/out; exit 3\n", kernel_61, boot_s=120, run_s=60)
    assert (result.exit_code, result.reason) == (3, "ok")
    assert (tmp_path / "s" / "out").read_text() == "hi\n"


def test_a_job_that_hangs_is_killed_with_its_console(
    tmp_path: Path, kernel_61: tuple[Artifacts, str]
) -> None:
    result = run_job(tmp_path / "s", "echo stuck-here; sleep 600\n", kernel_61, boot_s=120, run_s=3)
    assert result.exit_code is None
    assert result.reason == "run timeout (3 s)"
    assert "stuck-here" in result.console_tail()


def test_a_guest_that_never_boots_is_a_boot_timeout(tmp_path: Path, kernel_61: tuple[Artifacts, str]) -> None:
    result = run_job(tmp_path / "s", "exit 0\n", kernel_61, boot_s=0.5, run_s=60)
    assert result.exit_code is None
    assert result.reason.startswith("boot timeout")


def test_a_guest_that_dies_mid_job_is_reported(tmp_path: Path, kernel_61: tuple[Artifacts, str]) -> None:
    result = run_job(
        tmp_path / "s", "echo b > /proc/sysrq-trigger; sleep 60\n", kernel_61, boot_s=120, run_s=60
    )
    assert result.exit_code is None
    assert result.reason == "guest stopped before the job finished"
