"""Kernel data-plane cost: per-hook run time (bpf_stats) and syscall loops, as ratios in one run.

For file_open and socket_connect, a child process runs a loop of ``open()`` + ``close()`` of an
allowed file (or ``connect()`` of a UDP socket to an allowed loopback port) under three settings,
measured back to back in the same run:

- ``off``: every hook's mode is off (the program returns before anything else);
- ``bare_scope``: enforce, no rules, the caller outside the scope (mode, counter, scope lookup);
- ``enforce_rules``: enforce with the rule set loaded (``rules`` per hook: exact, prefix, suffix,
  contains and glob paths; CIDR + port networks), the caller in scope, the object matching
  nothing, so every table is searched.

The hook's cost per call comes from the kernel's own statistics (``BPF_ENABLE_STATS``): the
program's run time over its run count during each loop round; the median over rounds is reported.
``hook_calls_per_op`` shows how often the hook ran per loop call: an open on overlayfs runs
file_open twice (the overlay file, then the real one).
Ratios compare settings of the same run, never figures from elsewhere. The scope is a cgroup this
benchmark creates and removes; nothing outside it is ever denied (and its rules match nothing).
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from guard.errors import KernelError
from guard.lsm import bpfsys
from guard.lsm.abi import Counter, HookId, ModeId
from guard.lsm.bcc_backend import LsmBackend
from guard.lsm.btf import Btf
from guard.lsm.probe import parse_mountinfo
from guard.lsm.verdicts import (
    InodeRule,
    KernelPolicy,
    NetRule,
    PathKind,
    PathRule,
    VerdictTables,
    build_tables,
)
from guard.model import HOOKS

__all__ = ["bench_policy", "run_kernel_benchmark"]

ROUNDS = 5
SETTINGS = ("off", "bare_scope", "enforce_rules")


def bench_policy(rules: int, *, path_verdicts: bool = True) -> KernelPolicy:
    """``rules`` file_open rules and ``rules`` connect rules, none matching the benchmark's objects.

    File rules: half exact paths, a fifth prefixes, a tenth suffixes, the rest contains patterns and
    a few globs (the DFA's share); network rules: /24s of 10.0.0.0/8 on a spread of ports. Where the
    kernel offers no path verdicts (5.10) the file rules are (device, inode) rules instead.
    """
    nets = tuple(
        NetRule(ipaddress.ip_network(f"10.{i // 256}.{i % 256}.0/24"), (0, 22, 443, 8080)[i % 4], 100_000 + i)
        for i in range(rules)
    )
    if not path_verdicts:
        inodes = tuple(InodeRule(HookId.FILE_OPEN, 0xFFFFF, 1_000_000 + i, i + 1) for i in range(rules))
        return KernelPolicy(inodes=inodes, nets=nets)
    exact = rules // 2
    prefix = rules // 5
    suffix = rules // 10
    globs = min(20, rules - exact - prefix - suffix)
    contains = rules - exact - prefix - suffix - globs
    kinds: tuple[tuple[PathKind, int, str], ...] = (
        ("exact", exact, "/srv/denied/area{m}/file-{i}.bin"),
        ("prefix", prefix, "/opt/blocked-{i}/"),
        ("suffix", suffix, ".blocked{i}"),
        ("contains", contains, "/forbidden-{i}/"),
        ("glob", globs, "*/cache-{i}/??.tmp"),
    )
    paths: list[PathRule] = []
    for kind, count, template in kinds:
        for i in range(count):
            paths.append(PathRule(HookId.FILE_OPEN, kind, template.format(i=i, m=i % 37), len(paths) + 1))
    return KernelPolicy(paths=tuple(paths), nets=nets)


@contextmanager
def _bench_cgroup() -> Iterator[Path]:
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    roots = [m.mount_point for m in mounts if m.fstype == "cgroup2"]
    if not roots:
        raise KernelError("no cgroup v2 mount: the benchmark scopes itself to a cgroup it creates")
    cg = Path(roots[0]) / f"guard-bench-{os.getpid()}"
    cg.mkdir()
    try:
        yield cg
    finally:
        with contextlib.suppress(OSError):
            cg.rmdir()


Loop = Callable[[int], None]
#: What a failed child writes instead of a round's 8-byte report, followed by the error.
_FAILED = b"\xff" * 8


class _Child:
    """A forked child that runs a loop round on each go byte and reports its ns per iteration.

    A round's report is 8 bytes (the elapsed ns); a failure is ``_FAILED`` followed by the error.
    """

    def __init__(self, cg: Path | None, loop: Loop, iterations: int) -> None:
        go_r, self._go_w = os.pipe()
        self._res_r, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(self._go_w)
                os.close(self._res_r)
                if cg is not None:
                    (cg / "cgroup.procs").write_text("0")
                loop(min(iterations, 100))  # warm up (caches, the dentry of the path)
                while os.read(go_r, 1) == b"g":
                    start = time.perf_counter_ns()
                    loop(iterations)
                    elapsed = time.perf_counter_ns() - start
                    os.write(res_w, elapsed.to_bytes(8, "little"))
            except BaseException as exc:  # reported to the parent, which raises it as one line
                os.write(res_w, _FAILED + f"{type(exc).__name__}: {exc}".encode()[:400])
            finally:
                os._exit(0)
        os.close(go_r)
        os.close(res_w)

    def round(self) -> int:
        os.write(self._go_w, b"g")
        data = os.read(self._res_r, 8)
        if data == _FAILED:
            raise KernelError(f"benchmark loop failed: {os.read(self._res_r, 512).decode(errors='replace')}")
        if len(data) != 8:
            raise KernelError("benchmark child died during a round")
        return int.from_bytes(data, "little")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._go_w)
        os.close(self._res_r)
        os.waitpid(self.pid, 0)


def _measure(plane: LsmBackend, hook: HookId, cg: Path | None, loop: Loop, iterations: int) -> dict[str, Any]:
    prog = plane.program_fd(hook)
    child = _Child(cg, loop, iterations)
    loop_ns: list[float] = []
    hook_ns: list[float] = []
    calls = 0
    try:
        for _ in range(ROUNDS):
            before = bpfsys.prog_stats(prog)
            elapsed = child.round()
            after = bpfsys.prog_stats(prog)
            runs = after.run_cnt - before.run_cnt
            calls += runs
            loop_ns.append(elapsed / iterations)
            if runs:
                hook_ns.append((after.run_time_ns - before.run_time_ns) / runs)
    finally:
        child.close()
    return {
        "loop_ns_per_op": round(statistics.median(loop_ns), 1),
        "hook_ns_per_call": round(statistics.median(hook_ns), 1) if hook_ns else None,
        "hook_calls": calls,
        "loop_ops": ROUNDS * iterations,
        "hook_calls_per_op": round(calls / (ROUNDS * iterations), 2),
    }


def _open_loop(path: str) -> Loop:
    def loop(n: int) -> None:
        for _ in range(n):
            os.close(os.open(path, os.O_RDONLY))

    return loop


def _connect_loop(port: int) -> Loop:
    def loop(n: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(n):
                sock.connect(("127.0.0.1", port))

    return loop


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _run_settings(
    plane: LsmBackend, cg: Path, tables: VerdictTables, loops: dict[HookId, Loop], iterations: int
) -> dict[str, dict[str, Any]]:
    """Measure every hook in every setting; the plane is left off, unscoped and empty."""
    results: dict[str, dict[str, Any]] = {}
    empty = build_tables(KernelPolicy())
    plane.set_scope(cgroups=[cg.stat().st_ino])
    try:
        for hook, loop in loops.items():
            per: dict[str, Any] = {}
            for setting in SETTINGS:
                plane.apply(tables if setting == "enforce_rules" else empty)
                mode = ModeId.OFF if setting == "off" else ModeId.ENFORCE
                plane.configure({h: mode for h in HookId}, agent_tgid=os.getpid())
                before = plane.counters(hook)
                where = None if setting == "bare_scope" else cg  # bare: outside the scope
                per[setting] = _measure(plane, hook, where, loop, iterations)
                after = plane.counters(hook)
                per[setting]["denied"] = after[Counter.DENIES] - before[Counter.DENIES]
                plane.poll_events(0)
            results[HOOKS[hook].value] = per
    finally:
        plane.configure({}, agent_tgid=os.getpid())
        plane.set_scope()
        plane.apply(empty)
    return results


def run_kernel_benchmark(*, iterations: int = 20_000, rules: int = 1_000, cache_dir: Path) -> dict[str, Any]:
    """Load the data plane, run every setting for both hooks and return figures and ratios."""
    if iterations < 1 or rules < 1:
        raise ValueError("iterations and rules must be positive")
    plane = LsmBackend(Btf.from_file(), cache_dir)
    try:
        plane.load()
        policy = bench_policy(rules, path_verdicts=plane.path_verdicts)
        tables = build_tables(policy)
        stats_fd = bpfsys.enable_stats()
        with (
            contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as recv,
            tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp,
            _bench_cgroup() as cg,
        ):
            recv.bind(("127.0.0.1", 0))
            target = Path(tmp) / "var" / "lib" / "app" / "data" / "allowed-file.txt"
            target.parent.mkdir(parents=True)
            target.write_text("x")
            port = recv.getsockname()[1]
            loops = {HookId.FILE_OPEN: _open_loop(str(target)), HookId.CONNECT: _connect_loop(port)}
            try:
                results = _run_settings(plane, cg, tables, loops, iterations)
            finally:
                bpfsys.close_fd(stats_fd)
    finally:
        plane.close()
    ratios: dict[str, float | None] = {}
    for name, per in results.items():
        hook_ns = {setting: per[setting]["hook_ns_per_call"] for setting in SETTINGS}
        loop_ns = {setting: per[setting]["loop_ns_per_op"] for setting in SETTINGS}
        ratios[f"{name}_hook_enforce_vs_bare_scope"] = _ratio(hook_ns["enforce_rules"], hook_ns["bare_scope"])
        ratios[f"{name}_hook_bare_scope_vs_off"] = _ratio(hook_ns["bare_scope"], hook_ns["off"])
        ratios[f"{name}_loop_enforce_vs_off"] = _ratio(loop_ns["enforce_rules"], loop_ns["off"])
        ratios[f"{name}_loop_bare_scope_vs_off"] = _ratio(loop_ns["bare_scope"], loop_ns["off"])
    dfa = tables.dfas.get(HookId.FILE_OPEN)
    kinds = collections.Counter([r.kind for r in policy.paths] + ["inode"] * len(policy.inodes))
    return {
        "kernel": os.uname().release,
        "backend": plane.name.value,
        "iterations_per_round": iterations,
        "rounds": ROUNDS,
        "degraded": plane.degraded,
        "rules": {
            "file_open": len(policy.paths) + len(policy.inodes),
            "socket_connect": len(policy.nets),
            "file_kinds": dict(kinds),
        },
        "dfa_states": dfa.tables.num_states if dfa else 0,
        "target_path": str(target),
        "results": results,
        "ratios": ratios,
        "target": "file_open hook <= 100 ns median run time with 1,000 rules on real hardware; "
        "under emulation (TCG) the ratio to the bare scope check is the figure",
    }
