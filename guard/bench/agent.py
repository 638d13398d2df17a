"""``guardctl bench agent``: arming latency, from the arming event entering the ring buffer to the map.

The agent runs on the real data plane with one sequence rule whose first step arms its last
(``sequence by process.entity_id [file where file.name == "arm-a"] [network where true]``): every
open of a file named ``arm-a`` by the load process reaches the ring buffer, the engine matches the
first step and the agent arms a connect verdict for that process. The latency of one arming is the
time from the event's kernel timestamp (``bpf_ktime_get_ns`` when it entered the ring buffer) to the
return of the map update (``CLOCK_MONOTONIC``, the same clock).

A load process in a cgroup this benchmark creates opens files at a target rate: ``noise`` files
(a notify verdict sends each through the ring buffer and the engine, as interest events do) and,
every ``arm_every`` opens, an ``arm-a`` file. Two phases are measured in the same run: ``idle``
(arming events alone, ~``idle_rate`` per second) and ``loaded`` (``rate`` events per second in
total); p50/p99/max of each and the loaded/idle ratio are reported, with the events/s the agent
actually consumed and the ring-buffer drops. Nothing outside the benchmark's cgroup is governed,
and the armed verdict (deny connect) is never exercised.
"""

# ruff: noqa: S603 - the load generator is this benchmark's own child

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from guard.agent.daemon import Agent, AgentSettings
from guard.audit.record import Kind
from guard.audit.sink import MemoryAudit
from guard.errors import PrivilegeError
from guard.lsm.abi import Counter
from guard.lsm.backend import KernelBackend
from guard.model import Hook, Mode
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy

__all__ = ["render_agent_benchmark", "run_agent_benchmark"]

_POLICY: Final = """
[[rule]]
id = "bench_arm"
name = "arming benchmark"
severity = "low"
action = "block"
query = '''
sequence by process.entity_id with maxspan=5m
  [file where file.name == "arm-a"]
  [network where true]
'''

[[rule]]
id = "bench_noise"
name = "interest events"
severity = "low"
action = "alert"
query = '''file where file.name == "noise"'''
"""

# The load: open files at a target rate for a duration; every `arm_every`-th open is arm-a.
_LOAD: Final = r"""
import os, sys, time
work, rate, seconds, arm_every = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
noise, arm = os.path.join(work, "noise"), os.path.join(work, "arm-a")
start = time.monotonic()
n = 0
while True:
    now = time.monotonic() - start
    if now >= seconds:
        break
    due = int(now * rate) + 1
    while n < due:
        n += 1
        os.close(os.open(arm if n % arm_every == 0 else noise, os.O_RDONLY))
    time.sleep(0.0005)
print(n, flush=True)
sys.stdin.read()  # stay alive (the armed entity) until the agent has caught up
"""


def _drops(agent: Agent) -> int:
    """Return the file_open records either ring had no room for (telemetry and decisions alike)."""
    counters = agent.backend.counters(Hook.FILE_OPEN)
    return counters.get(Counter.RINGBUF_DROPS, 0) + counters.get(Counter.DECISION_DROPS, 0)


def _percentile(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))])


def _phase(
    agent: Agent, cgroup: Path, work: Path, *, rate: float, seconds: float, arm_every: int
) -> dict[str, Any]:
    def join() -> None:
        with open(cgroup / "cgroup.procs", "w") as f:
            f.write("0")

    first = len(agent.arm_latencies_ns)
    audit = agent.audit
    records0 = len(audit.decisions) if isinstance(audit, MemoryAudit) else 0
    drops0 = _drops(agent)
    events0 = agent.events_seen
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOAD, str(work), str(rate), str(seconds), str(arm_every)],
        preexec_fn=join,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.stdout is None or proc.stdin is None:  # pragma: no cover - both are pipes
        raise OSError("the load process has no pipes")
    opens = int(proc.stdout.readline().strip() or 0)
    # the load is done: let the agent drain the ring buffer (a turn that read nothing) before it exits
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = agent.events_seen
        agent.wait_turns(2, timeout=30)
        if agent.events_seen == seen:
            break
    elapsed = time.monotonic() - t0
    proc.stdin.close()
    proc.stdout.close()
    proc.wait(timeout=30)
    lat = agent.arm_latencies_ns[first:]
    skipped = 0
    if isinstance(audit, MemoryAudit):
        skipped = sum(1 for d in audit.decisions[records0:] if d.kind is Kind.ARM and d.outcome == "skipped")
    return {
        "target_rate": rate,
        "opens": opens,
        "offered_per_s": round(opens / seconds, 1),
        "consumed_per_s": round((agent.events_seen - events0) / elapsed, 1),
        "armings": len(lat),
        "arm_skipped": skipped,
        "p50_us": round(_percentile(lat, 0.50) / 1000, 1),
        "p99_us": round(_percentile(lat, 0.99) / 1000, 1),
        "max_us": round(max(lat, default=0) / 1000, 1),
        "mean_us": round(statistics.fmean(lat) / 1000, 1) if lat else 0.0,
        "ringbuf_drops": _drops(agent) - drops0,
    }


def run_agent_benchmark(
    make_backend: Callable[[], KernelBackend],
    *,
    rate: float = 10_000,
    seconds: float = 5.0,
    idle_rate: float = 100,
) -> dict[str, Any]:
    """Measure arming latency idle and under load in one run; return the figures and the ratio."""
    if os.geteuid() != 0:
        raise PrivilegeError("guardctl bench agent: needs root (it loads BPF programs and creates a cgroup)")
    from guard.lsm.pinned import cgroup2_root

    work = Path(tempfile.mkdtemp(prefix="guard-bench-agent-", dir="/var/tmp"))
    (work / "policy.toml").write_text(_POLICY)
    for name in ("noise", "arm-a"):
        (work / name).write_text("x")
    cgroup = cgroup2_root() / f"guard-bench-agent-{os.getpid()}"
    cgroup.mkdir()
    compiled = compile_policy(load_policy(work / "policy.toml"))
    settings = AgentSettings(mode=Mode.ENFORCE, scope_cgroups=(os.stat(cgroup).st_ino,), self_protect=False)
    agent = Agent(compiled, make_backend(), MemoryAudit(), settings)
    stop = threading.Event()
    try:
        agent.start()
        thread = threading.Thread(target=agent.run, args=(stop,), kwargs={"timeout_ms": 20}, daemon=True)
        thread.start()
        idle = _phase(agent, cgroup, work, rate=idle_rate, seconds=seconds, arm_every=1)
        loaded = _phase(
            agent, cgroup, work, rate=rate, seconds=seconds, arm_every=max(1, int(rate // idle_rate))
        )
        stop.set()
        thread.join(timeout=30)
        backend = str(agent.backend.name)
    finally:
        stop.set()
        agent.stop("benchmark finished")
        with contextlib.suppress(OSError):
            cgroup.rmdir()
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    ratio = round(loaded["p99_us"] / idle["p99_us"], 2) if idle["p99_us"] and loaded["armings"] else None
    return {
        "benchmark": "agent arming latency",
        "backend": backend,
        "kernel": os.uname().release,
        "idle": idle,
        "loaded": loaded,
        "ratios": {"p99_loaded_vs_idle": ratio},
        "target": {
            "p99_us": 1000,
            "rate_per_s": rate,
            "met": bool(loaded["armings"]) and loaded["p99_us"] <= 1000 and not loaded["ringbuf_drops"],
        },
    }


def render_agent_benchmark(result: dict[str, Any]) -> str:
    """Return the benchmark as a table."""
    lines = [
        f"agent arming latency ({result['backend']}, kernel {result['kernel']}): "
        "ring-buffer entry -> armed verdict in the map",
        f"{'PHASE':<8} {'TARGET/s':>9} {'OFFERED/s':>10} {'CONSUMED/s':>11} {'ARMINGS':>8} "
        f"{'P50 us':>10} {'P99 us':>10} {'MAX us':>10} {'DROPS':>6} {'SKIPPED':>7}",
    ]
    for name in ("idle", "loaded"):
        p = result[name]
        lines.append(
            f"{name:<8} {p['target_rate']:>9g} {p['offered_per_s']:>10g} {p['consumed_per_s']:>11g} "
            f"{p['armings']:>8} {p['p50_us']:>10.1f} {p['p99_us']:>10.1f} {p['max_us']:>10.1f} "
            f"{p['ringbuf_drops']:>6} {p['arm_skipped']:>7}"
        )
    t = result["target"]
    ratio = result["ratios"]["p99_loaded_vs_idle"]
    lines.append(
        f"p99 loaded vs idle: {'-' if ratio is None else f'{ratio}x'}; "
        f"target p99 <= {t['p99_us']} us at {t['rate_per_s']:g}/s without drops: "
        f"{'met' if t['met'] else 'NOT met'}"
    )
    return "\n".join(lines)
