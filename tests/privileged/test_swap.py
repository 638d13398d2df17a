"""A policy swap (a bundle deploy) leaves no instant where neither the old nor the new policy applies.

Two policies deny the same calls through different table entries: a connect to 127.77.0.1:4444
(an exact /32 entry, then a /24 entry of another rule) and, where BPF-LSM decides opens inline, an
open of one file (an exact path, then a DFA glob of another rule). A process in the test's cgroup
makes those calls in a loop while the agent swaps between the two policies; every call made while
a swap was in progress, and every call at all, must have been refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from guard.agent.daemon import Agent, AgentSettings
from guard.agent.service import make_backend
from guard.audit.sink import MemoryAudit
from guard.config import GuardConfig
from guard.lsm.backend import KernelBackend
from guard.lsm.probe import probe_kernel
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy
from tests.privileged.scoping import cgroup2_root, loopback_up

pytestmark = [pytest.mark.privileged, pytest.mark.requires_feature("bcc")]

_HAMMER = r"""
import errno, os, socket, sys, time
stop, secret, log, do_open, ready = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5]
out = []
while not os.path.exists(stop):
    if len(out) == 2:
        open(ready, "w").close()
    t = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.connect(("127.77.0.1", 4444))
            r = "ok"
        except OSError as e:
            r = errno.errorcode.get(e.errno, str(e.errno))
    out.append((t, "connect", r))
    if do_open:
        t = time.monotonic()
        try:
            os.close(os.open(secret, os.O_RDONLY))
            r = "ok"
        except OSError as e:
            r = errno.errorcode.get(e.errno, str(e.errno))
        out.append((t, "open", r))
with open(log, "w") as f:
    import json
    json.dump(out, f)
"""


def _path_verdicts(plane: KernelBackend) -> bool:
    """Whether the plane can hold path verdicts (loaded once to find out, then released)."""
    plane.load()
    try:
        return bool(getattr(plane, "path_verdicts", True))
    finally:
        plane.close()


def _policy(directory: Path, rules: str) -> Path:
    directory.mkdir()
    (directory / "p.guard").write_text(rules)
    return directory


def _rule(rid: str, query: str) -> str:
    return f'[[rule]]\nid = "{rid}"\nname = "{rid}"\nseverity = "high"\naction = "block"\nquery = \'\'\'{query}\'\'\'\n'


def test_no_instant_without_a_policy_during_swaps(tmp_path: Path) -> None:
    backend = probe_kernel().backend.value
    if backend == "fake":
        pytest.skip("no BPF data plane on this kernel (guardctl probe chose fake)")
    loopback_up()
    work = Path(tempfile.mkdtemp(prefix="guard-swap-", dir="/var/tmp"))
    secret = work / "secret"
    secret.write_text("x")
    plane = make_backend(backend, GuardConfig(), tmp_path / "bcc", pin=False)
    # compat's open is a kill reaction (the loop would end at the first); 5.10's BPF-LSM has no
    # path verdicts (no bpf_d_path): there the swap is checked on connect alone
    do_open = backend == "lsm" and _path_verdicts(plane)
    a_rules = _rule("swap_a_net", 'network where destination.ip == "127.77.0.1" and destination.port == 4444')
    b_rules = _rule(
        "swap_b_net", 'network where cidrMatch(destination.ip, "127.77.0.0/24") and destination.port == 4444'
    )
    if do_open:
        a_rules += _rule("swap_a_file", f'file where file.path == "{secret}"')
        b_rules += _rule("swap_b_file", f'file where file.path : "{work}/sec*"')
    a = compile_policy(load_policy(_policy(tmp_path / "a", a_rules)))
    b = compile_policy(load_policy(_policy(tmp_path / "b", b_rules)))
    cgroup = cgroup2_root() / f"guard-swap-test-{os.getpid()}"
    cgroup.mkdir()
    agent = Agent(
        a,
        plane,
        MemoryAudit(),
        AgentSettings(scope_cgroups=(os.stat(cgroup).st_ino,), self_protect=False, storm_threshold=10**9),
    )
    stop, log, ready = work / "stop", work / "log.json", work / "ready"

    def join() -> None:
        with open(cgroup / "cgroup.procs", "w") as f:
            f.write("0")

    windows: list[tuple[float, float]] = []
    try:
        agent.start()
        hammer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _HAMMER,
                str(stop),
                str(secret),
                str(log),
                "1" if do_open else "0",
                str(ready),
            ],
            preexec_fn=join,
        )
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline:  # the loop runs (slow to start in TCG)
            time.sleep(0.05)
        assert ready.exists(), "the calling process never started its loop"
        first = time.monotonic()
        i = 0
        while i < 12 or time.monotonic() - first < 3.0:  # back to back: most of the time is inside a swap
            start = time.monotonic()
            agent.swap(b if i % 2 == 0 else a)
            windows.append((start, time.monotonic()))
            agent.step(timeout_ms=0)  # drain the ring buffer
            i += 1
        time.sleep(0.2)
        stop.write_text("")
        assert hammer.wait(timeout=120) == 0
        calls = json.loads(log.read_text())
    finally:
        agent.stop("test finished")
        cgroup.rmdir()
        shutil.rmtree(work, ignore_errors=True)
    kinds = ("connect", "open") if do_open else ("connect",)
    for kind in kinds:
        results = [r for _t, k, r in calls if k == kind]
        during = [r for t, k, r in calls if k == kind and any(s <= t <= e for s, e in windows)]
        assert results, kind
        assert during, f"no {kind} call landed inside a swap: the test proves nothing"
        assert set(results) == {"EPERM"}, (kind, {r: results.count(r) for r in set(results)})
