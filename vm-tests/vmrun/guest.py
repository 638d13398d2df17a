"""Boot one QEMU guest: the host root shared read-only, a results share read-write, a job script.

A guest that never reaches its job (boot hang) or overruns its run time is killed, and the result
carries the console tail; the runner never hangs on a guest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmrun.image import Artifacts

QEMU = "qemu-system-x86_64"
JOB_START = "guard-vm: job start"
JOB_EXIT = "guard-vm: job exit"


@dataclass(frozen=True)
class BootResult:
    """How one boot ended."""

    exit_code: int | None  # the job's exit code; None when it never finished
    reason: str  # "ok", "boot timeout", "run timeout", "qemu exited", ...
    wall_s: float
    console: str

    def console_tail(self, lines: int = 40) -> str:
        """The last lines of the serial console."""
        return "\n".join(self.console.splitlines()[-lines:])


def qemu_command(
    art: Artifacts, cmdline: str, results: Path, *, accel: str, memory_mb: int, cpus: int
) -> list[str]:
    """The QEMU command line for a guest."""
    accel_opt = "tcg,thread=multi" if accel == "tcg" else accel
    return [
        QEMU,
        "-nodefaults", "-no-user-config", "-no-reboot",
        "-machine", "pc", "-accel", accel_opt, "-cpu", "max" if accel == "tcg" else "host",
        "-smp", str(cpus), "-m", str(memory_mb),
        "-display", "none", "-serial", "stdio", "-monitor", "none",
        "-kernel", str(art.vmlinuz), "-initrd", str(art.initrd), "-append", cmdline,
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={results},mount_tag=results,security_model=none,multidevs=remap",
        "-device", "virtio-rng-pci",
    ]  # fmt: skip


def boot(
    art: Artifacts,
    cmdline: str,
    results: Path,
    *,
    accel: str,
    memory_mb: int,
    cpus: int,
    boot_timeout_s: float,
    run_timeout_s: float,
    on_line: Callable[[str], None] = lambda line: None,
) -> BootResult:
    """Boot, run ``results/job.sh`` in the guest, and return how it ended."""
    if shutil.which(QEMU) is None:
        return BootResult(None, f"{QEMU} not installed (make setup)", 0.0, "")
    exit_file = results / "exit-code"
    exit_file.unlink(missing_ok=True)
    console_path = results / "console.log"
    cmd = qemu_command(art, cmdline, results, accel=accel, memory_mb=memory_mb, cpus=cpus)
    start = time.monotonic()
    reason = "ok"
    with console_path.open("wb") as console, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(cmd, stdin=devnull, stdout=console, stderr=subprocess.STDOUT)
        seen = 0
        started: float | None = None  # when the job started
        try:
            while proc.poll() is None:
                time.sleep(0.25)
                text = console_path.read_bytes().decode(errors="replace")
                for line in text[seen:].splitlines(keepends=True):
                    if not line.endswith("\n"):
                        break
                    seen += len(line)
                    stripped = line.strip()
                    if stripped.startswith("guard-vm:"):
                        on_line(stripped)
                    if JOB_START in stripped and started is None:
                        started = time.monotonic()
                now = time.monotonic()
                if started is None and now - start > boot_timeout_s:
                    reason = f"boot timeout ({boot_timeout_s:g} s without reaching the job)"
                    break
                if started is not None and now - started > run_timeout_s:
                    reason = f"run timeout ({run_timeout_s:g} s)"
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    wall = time.monotonic() - start
    console_text = console_path.read_bytes().decode(errors="replace")
    exit_code: int | None = None
    if exit_file.exists():
        try:
            exit_code = int(exit_file.read_text().strip())
        except ValueError:
            exit_code = None
    if exit_code is None and reason == "ok":
        reason = (
            "guest stopped before the job finished" if started is not None else "guest stopped during boot"
        )
    return BootResult(exit_code, reason, wall, console_text)


def kvm_usable(art: Artifacts, cmdline: str, scratch: Path, timeout_s: float = 30.0) -> tuple[bool, str]:
    """Boot a trivial job under KVM once per host kernel and QEMU; KVM counts only if it finishes in time."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    scratch.mkdir(parents=True, exist_ok=True)
    qemu_version = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    key = f"{os.uname().release} {qemu_version}"
    verdict = scratch / "verdict"
    if verdict.exists():
        cached_key, _, cached = verdict.read_text().partition("\n")
        if cached_key == key:
            flag, _, why = cached.partition(" ")
            return flag == "1", f"{why} (cached)"
    ok, why = _kvm_boot(art, cmdline, scratch, timeout_s)
    verdict.write_text(f"{key}\n{int(ok)} {why}")
    return ok, why


def _kvm_boot(art: Artifacts, cmdline: str, scratch: Path, timeout_s: float) -> tuple[bool, str]:
    (scratch / "job.sh").write_text("exit 0\n")
    result = boot(
        art, cmdline, scratch, accel="kvm", memory_mb=512, cpus=1,
        boot_timeout_s=timeout_s, run_timeout_s=timeout_s,
    )  # fmt: skip
    if result.exit_code == 0:
        return True, f"KVM boots ({result.wall_s:.1f} s)"
    return False, f"KVM probe failed: {result.reason}"
