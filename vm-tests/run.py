"""vm-tests/run: boot the kernel matrix in QEMU and run the privileged suite inside each guest.

usage: vm-tests/run [--kernel ID ... | --all] [--json] [--jobs N] [--accel auto|tcg|kvm] [--prepare]
                    [--guardctl 'ARGS'] [-- PYTEST-ARGS]

For each kernel: fetch its packages from Debian's archive (private apt config, cached), build an
initramfs, boot it (KVM when it works, TCG otherwise) with the host root shared read-only, run
`guardctl probe --json` and `pytest --run-privileged tests/privileged tests/adversarial/kernel tests/reenact` with
the project's venv, and write vm-tests/results/<kernel>.json. Prints a table (or, with --json, the list of summaries); a run of
the whole matrix regenerates COMPATIBILITY.md. Exit status 0 only when every selected kernel ran its tests with no
failure. A guest that never reports a result is booted once more (early TCG crashes happen).

With --guardctl 'ARGS' each guest runs `guardctl ARGS` instead of the tests (e.g. `bench kernel --json`
where the host lacks BPF-LSM): its stdout is printed as it is, and the exit status is guardctl's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vmrun.archive import ArchiveError, PrivateApt  # noqa: E402
from vmrun.guest import BootResult, boot, kvm_usable  # noqa: E402
from vmrun.image import Artifacts, ImageError, build_artifacts, cached_artifacts  # noqa: E402
from vmrun.matrix import Kernel, MatrixError, load_kernels, load_skips  # noqa: E402
from vmrun.report import render_compatibility, render_table, summarize, write_results  # noqa: E402

PROJECT = HERE.parent
CACHE = PROJECT / ".cache" / "vm-tests"
RESULTS = HERE / "results"
DEFAULT_TESTS = ["tests/privileged", "tests/adversarial/kernel", "tests/reenact"]
_print_lock = threading.Lock()


def say(kernel: str, message: str, *, quiet: bool = False) -> None:
    """Progress on stderr (stdout stays clean for --json)."""
    if quiet:
        return
    with _print_lock:
        print(f"[{kernel}] {message}", file=sys.stderr, flush=True)


def job_script(kernel: Kernel, pytest_args: list[str], guardctl: list[str] | None = None) -> str:
    """The script the guest runs from the results share."""
    venv = PROJECT / ".venv" / "bin"
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "VMTEST_GUEST": "1",
        "VMTEST_KERNEL": kernel.id,
        "VMTEST_SKIPS": "/run/guard-vm/skips.json",
        "VMTEST_RESULTS": "/run/guard-vm/tests.json",
        "PYTHONPATH": str(HERE),
        "PYTHONDONTWRITEBYTECODE": "1",
        "NO_COLOR": "1",
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    args = " ".join(shlex.quote(a) for a in pytest_args)
    head = f"""set -u
export {exports}
cd {shlex.quote(str(PROJECT))} || exit 90
ip link set lo up 2>/dev/null || echo "guard-vm: cannot bring lo up"
"""
    if guardctl is not None:
        command = " ".join(shlex.quote(a) for a in guardctl)
        return (
            head
            + f"""echo "guard-vm: guardctl {command}"
{venv}/guardctl {command} > /run/guard-vm/guardctl.out 2> /run/guard-vm/guardctl.err
"""
        )
    return (
        head
        + f"""echo "guard-vm: probe"
{venv}/guardctl probe --json > /run/guard-vm/probe.json 2> /run/guard-vm/probe.err || echo "guard-vm: probe failed"
echo "guard-vm: pytest"
{venv}/python -m pytest -p vmresults -p no:cacheprovider --run-privileged -q --color=no -ra {args}
"""
    )


def rows_for(kernel_id: str, skips: list[dict[str, str]]) -> list[dict[str, str]]:
    """The skip.toml rows that apply to a kernel."""
    return [row for row in skips if re.search(row["kernel"], kernel_id)]


def prepare(kernel: Kernel, apt: PrivateApt, quiet: bool) -> tuple[Artifacts, str]:
    """Fetch and build what QEMU boots for one kernel (the pinned version, or the series' newest)."""
    image, version = kernel.image, kernel.version
    if version not in apt.versions(image):
        newest = apt.newest_in_series(kernel.id, kernel.suite)
        if newest is None:
            raise ArchiveError(f"{image}={version} left {kernel.suite} and no {kernel.id} image replaces it")
        image, version = newest
        say(kernel.id, f"note: pinned {kernel.image}={kernel.version} left the archive; using {image}={version} "
                       "(update vm-tests/kernels.toml)", quiet=quiet)  # fmt: skip
    say(kernel.id, f"fetching {image}={version} ({kernel.suite})", quiet=quiet)
    abi = image.removeprefix("linux-image-")
    fetched = apt.fetch_kernel(image, version, abi)
    for name in fetched.missing:
        say(kernel.id, f"note: {name} is not in the archive; continuing without it", quiet=quiet)
    say(kernel.id, "building initramfs", quiet=quiet)
    spec = f"{image}={version}"
    art = build_artifacts(kernel.id, spec, fetched.debs, CACHE)
    return art, spec


def read_json(path: Path) -> dict[str, Any] | None:
    """Parse a JSON file the guest wrote, or None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def share_dir(kernel: Kernel) -> Path:
    """The results share of a kernel's guest (the job script, and what the guest writes back).

    One per run of this script: two runs of the same kernel at once must not read each other's job
    or results.
    """
    return CACHE / "run" / f"{kernel.id}-{os.getpid()}"


def boot_job(
    kernel: Kernel, art: Artifacts, accel: str, script: str, quiet: bool, **files: str
) -> BootResult:
    """Boot one kernel on a fresh results share holding ``script`` (and ``files``); progress on stderr."""
    share = share_dir(kernel)
    for stale in share.parent.glob(f"{kernel.id}-*"):  # shares of runs that have ended
        owner = stale.name.rpartition("-")[2]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(share, ignore_errors=True)
    share.mkdir(parents=True)
    (share / "job.sh").write_text(script)
    for name, text in files.items():
        (share / name).write_text(text)
    started = time.monotonic()

    def on_line(line: str) -> None:
        say(kernel.id, f"{line.removeprefix('guard-vm: ')} (+{time.monotonic() - started:.0f}s)", quiet=quiet)

    return boot(
        art, kernel.full_cmdline, share, accel=accel, memory_mb=kernel.memory_mb, cpus=kernel.cpus,
        boot_timeout_s=kernel.boot_timeout_s, run_timeout_s=kernel.run_timeout_s, on_line=on_line,
    )  # fmt: skip


def run_kernel(
    kernel: Kernel,
    art: Artifacts,
    package: str,
    accel: str,
    pytest_args: list[str],
    skips: list[dict[str, str]],
    quiet: bool,
) -> dict[str, Any]:
    """Boot one kernel (twice at most) and summarize."""
    attempts = 0
    result: BootResult | None = None
    tests_json: dict[str, Any] | None = None
    probe_json: dict[str, Any] | None = None
    while attempts < 2:
        attempts += 1
        say(kernel.id, f"booting {art.release} ({accel}, attempt {attempts})", quiet=quiet)
        script = job_script(kernel, pytest_args)
        result = boot_job(kernel, art, accel, script, quiet, **{"skips.json": json.dumps(skips)})
        tests_json = read_json(share_dir(kernel) / "tests.json")
        probe_json = read_json(share_dir(kernel) / "probe.json")
        if result.exit_code is not None or tests_json is not None:
            break
        say(kernel.id, f"no result ({result.reason}); console tail:\n{result.console_tail(15)}", quiet=quiet)
    assert result is not None
    return summarize(
        kernel.id, release=art.release, package=package, accel=accel, wall_s=result.wall_s, attempts=attempts,
        exit_code=result.exit_code, reason=result.reason, tests_json=tests_json, probe_json=probe_json,
        console_tail=result.console_tail(), skip_rows=rows_for(kernel.id, skips),
    )  # fmt: skip


def failed_record(kernel: Kernel, why: str) -> dict[str, Any]:
    """A kernel that could not even be booted is a reported failure."""
    return summarize(
        kernel.id, release="", package=f"{kernel.image}={kernel.version}", accel="-", wall_s=0.0, attempts=0,
        exit_code=None, reason=why, tests_json=None, probe_json=None, console_tail="", skip_rows=[],
    )  # fmt: skip


def run_guardctl(kernel: Kernel, art: Artifacts, accel: str, command: list[str], quiet: bool) -> int:
    """Boot one kernel, run ``guardctl COMMAND`` in it, relay its output; return its exit status."""
    say(kernel.id, f"booting {art.release} ({accel}) for guardctl {' '.join(command)}", quiet=quiet)
    result = boot_job(kernel, art, accel, job_script(kernel, [], command), quiet)
    for name, stream in (("guardctl.err", sys.stderr), ("guardctl.out", sys.stdout)):
        output = share_dir(kernel) / name
        if output.exists():
            stream.write(output.read_text())
            stream.flush()
    if result.exit_code is None:
        say(kernel.id, f"guardctl never finished ({result.reason}); console tail:\n{result.console_tail(15)}")
        return 1
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    """Run the selected kernels; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, pytest_args = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(prog="vm-tests/run", description=__doc__.split("\n\n")[0])
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument(
        "--kernel", action="append", metavar="ID", help="kernel id from kernels.toml (repeatable)"
    )
    pick.add_argument("--all", action="store_true", help="every kernel of the matrix (the default)")
    parser.add_argument("--json", action="store_true", help="print the list of summaries as JSON")
    parser.add_argument("--jobs", type=int, default=2, help="guests run at once (default: %(default)s)")
    parser.add_argument(
        "--accel", choices=["auto", "tcg", "kvm"], default="auto", help="default: %(default)s"
    )
    parser.add_argument(
        "--prepare", action="store_true", help="only fetch the kernels and build the initramfs"
    )
    parser.add_argument(
        "--guardctl", metavar="'ARGS'", help="run `guardctl ARGS` in each guest instead of the tests"
    )
    args = parser.parse_args(argv)
    quiet = False
    try:
        kernels = load_kernels(HERE / "kernels.toml")
        skip_rules = load_skips(HERE / "skip.toml")
    except MatrixError as exc:
        print(f"vm-tests/run: error: {exc}", file=sys.stderr)
        return 2
    known = {k.id: k for k in kernels}
    if args.kernel:
        unknown = [k for k in args.kernel if k not in known]
        if unknown:
            print(f"vm-tests/run: error: unknown kernel {unknown}; known: {list(known)}", file=sys.stderr)
            return 2
        selected = [known[k] for k in args.kernel]
    else:
        selected = kernels
    for row in skip_rules:
        say("vm", f"skip.toml: {row.test} on kernels /{row.kernel}/: {row.reason}", quiet=quiet)
    skips = [asdict(r) for r in skip_rules]
    tests = pytest_args or DEFAULT_TESTS
    CACHE.mkdir(parents=True, exist_ok=True)

    apt = PrivateApt(CACHE / "apt", [k.suite for k in kernels])
    records: dict[str, dict[str, Any]] = {}
    prepared: dict[str, tuple[Artifacts, str]] = {}
    for k in selected:  # built before from the pinned packages: no archive access needed
        spec = f"{k.image}={k.version}"
        cached = cached_artifacts(k.id, spec, CACHE)
        if cached is not None:
            prepared[k.id] = (cached, spec)
    if len(prepared) < len(selected):
        try:
            say("vm", "updating private package lists", quiet=quiet)
            apt.update()
        except ArchiveError as exc:
            for k in selected:
                if k.id not in prepared:
                    records[k.id] = failed_record(k, f"fetch failed: {exc}")
    for k in selected:
        if k.id in prepared:
            continue
        if k.id in records:
            continue
        try:
            prepared[k.id] = prepare(k, apt, quiet)
        except (ArchiveError, ImageError, OSError) as exc:
            say(k.id, f"cannot prepare: {exc}", quiet=quiet)
            records[k.id] = failed_record(k, f"prepare failed: {exc}")

    if args.prepare:
        for kid, (art, package) in prepared.items():
            say(kid, f"ready: {package} -> {art.release}", quiet=quiet)
        return 0 if len(prepared) == len(selected) else 1

    accel = args.accel
    if accel == "auto":
        accel = "tcg"
        if prepared:
            first = next(iter(prepared))
            ok, why = kvm_usable(prepared[first][0], known[first].full_cmdline, CACHE / "kvm-probe")
            accel = "kvm" if ok else "tcg"
            say("vm", f"accelerator: {accel} ({why})", quiet=quiet)

    if args.guardctl is not None:
        status = 0
        for kid in prepared:
            status = max(
                status, run_guardctl(known[kid], prepared[kid][0], accel, shlex.split(args.guardctl), quiet)
            )
        return status if len(prepared) == len(selected) else 1

    def one(kernel_id: str) -> None:
        art, package = prepared[kernel_id]
        records[kernel_id] = run_kernel(known[kernel_id], art, package, accel, tests, skips, quiet)
        r = records[kernel_id]
        say(kernel_id, f"done: {r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped "
                       f"in {r['wall_s']:.0f}s ({r['outcome']})", quiet=quiet)  # fmt: skip

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, list(prepared)))

    ordered = [records[k.id] for k in selected]
    for record in ordered:
        write_results(RESULTS, record)
    if len(selected) == len(kernels):  # only a full-matrix run speaks for COMPATIBILITY.md
        (PROJECT / "COMPATIBILITY.md").write_text(render_compatibility(ordered))
    if args.json:
        summary_keys = (
            "kernel",
            "release",
            "bpf_lsm",
            "passed",
            "failed",
            "skipped",
            "wall_s",
            "ok",
            "outcome",
        )
        print(
            json.dumps(
                [{key: r[key] for key in summary_keys} | {"tests": r["tests"]} for r in ordered], indent=2
            )
        )
    else:
        print(render_table(ordered))
        for r in ordered:
            if not r["ok"] and r.get("console_tail"):
                print(f"\n--- {r['kernel']}: {r['outcome']}; console tail:\n{r['console_tail']}")
            for t in r["tests"]:
                if t["outcome"] in ("failed", "error", "xpassed"):
                    print(f"  {r['kernel']}: {t['outcome'].upper()} {t['nodeid']}: {t.get('reason', '')}")
        totals = [sum(r[key] for r in ordered) for key in ("passed", "failed", "skipped")]
        print(f"vm-tests: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 0 if all(r["ok"] for r in ordered) else 1


if __name__ == "__main__":
    sys.exit(main())
