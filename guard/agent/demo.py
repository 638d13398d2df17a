"""``guardctl demo``: the agent enforcing the bundled policies against a scripted attack.

The demo creates its own scope (a cgroup under the cgroup v2 root) and a work directory, starts
the agent on the real data plane with ``policies/``, and runs each attack scenario inside the scope
in enforce, detect and off. Per scenario and mode it reports the expected outcome and the actual
one, judged from what the attacking process saw (EPERM, or killed by a kill reaction, is
``blocked``) and what the agent recorded (a ``would_block`` decision of the scenario's rule is
``would-block``); anything else is ``allowed``. Nothing outside the demo's cgroup is governed.

The sequence scenario is driven step by step through one shell in the scope (download with curl
from a loopback server, ``chmod +x``, run): each step starts once the agent has consumed the
previous one's events — the attack is paced at the agent's speed, so the result shows what the
policy does, and ``guardctl bench agent`` measures the arming latency a faster attacker races.
"""

# ruff: noqa: S603, S108 - the demo runs its own attack processes and uses /tmp and /dev/shm on purpose

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from guard.agent.daemon import Agent, AgentSettings
from guard.audit.record import Kind
from guard.audit.sink import MemoryAudit
from guard.errors import ConfigError, PrivilegeError
from guard.lsm.backend import KernelBackend
from guard.model import Mode
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy

__all__ = ["DemoRow", "render_rows", "run_demo"]

_EXPECTED: Final = {Mode.ENFORCE: "blocked", Mode.DETECT: "would-block", Mode.OFF: "allowed"}

# One attack action in a child process: prints "ok" or the errno name; an exec that works prints nothing.
_CHILD: Final = r"""
import ctypes, errno, os, socket, sys
kind, arg = sys.argv[1], sys.argv[2]
try:
    if kind == "exec":
        os.execv(arg, [arg])
    elif kind == "open":
        with open(arg, "rb") as f:
            f.read(1)
    elif kind == "connect":
        host, port = arg.rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect((host, int(port)))
    elif kind == "ptrace":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        if libc.ptrace(0x4206, int(arg), None, None) != 0:  # PTRACE_SEIZE; released at exit
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
"""


@dataclass(frozen=True, slots=True)
class DemoRow:
    """One scenario under one mode."""

    scenario: str
    mode: str
    expected: str
    actual: str
    rule: str
    detail: str

    @property
    def ok(self) -> bool:
        """Whether the actual outcome is the expected one."""
        return self.expected == self.actual

    def to_json(self) -> dict[str, object]:
        """Return the row as JSON-ready data."""
        return {
            "scenario": self.scenario,
            "mode": self.mode,
            "expected": self.expected,
            "actual": self.actual,
            "rule": self.rule,
            "detail": self.detail,
            "ok": self.ok,
        }


@dataclass(frozen=True, slots=True)
class _Scenario:
    name: str
    rule: str
    run: Callable[[Mode], tuple[str, str]]  # -> (what the process saw: blocked | ran, detail)
    #: why this backend cannot enforce the scenario ("" = it can): then "allowed" is what to expect
    unenforceable: str = ""


class _Demo:
    def __init__(self, agent: Agent, audit: MemoryAudit, cgroup: Path, work: Path) -> None:
        self.agent = agent
        self.audit = audit
        self.cgroup = cgroup
        self.work = work

    # ---- processes in the scope
    def _join(self) -> None:  # runs in the child between fork and exec
        with open(self.cgroup / "cgroup.procs", "w") as f:
            f.write("0")

    @property
    def child_script(self) -> Path:
        return self.work / "attack.py"

    def child(self, kind: str, arg: str) -> tuple[str, str]:
        proc = subprocess.run(
            [sys.executable, str(self.child_script), kind, arg],
            preexec_fn=self._join,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return _seen(proc.returncode, proc.stdout.strip())

    def settle(self) -> None:
        """Wait until the agent has finished two turns that started after now (it has read our events)."""
        self.agent.wait_turns(2, timeout=20.0)

    def judge(self, scenario: _Scenario, mode: Mode) -> DemoRow:
        start = len(self.audit.decisions)
        seen, detail = scenario.run(mode)
        self.settle()
        mine = [d for d in self.audit.decisions[start:] if d.rule_id == scenario.rule]
        kinds = {d.kind for d in mine}
        arms = [d for d in mine if d.kind is Kind.ARM]
        if arms:
            detail += f" [arm: {arms[-1].outcome}: {arms[-1].reason}]"
        elif scenario.rule in self.agent.compiled.armed:
            detail += " [never armed]"
        if seen == "blocked":
            actual = "blocked"
        elif Kind.WOULD_BLOCK in kinds:
            actual = "would-block"
        elif seen == "ran":
            actual = "allowed"
        else:
            actual = seen
        if seen == "blocked" and not kinds & {Kind.DENY, Kind.KILL}:
            detail += " (no audit record of the rule)"
        expected = _EXPECTED[mode]
        if scenario.unenforceable:
            expected, detail = "allowed", f"{scenario.unenforceable}; {detail}"
        return DemoRow(scenario.name, str(mode), expected, actual, scenario.rule, detail)


def _seen(returncode: int, out: str) -> tuple[str, str]:
    if returncode == -9:
        return "blocked", "killed by the kernel (SIGKILL)"
    if out == "EPERM":
        return "blocked", "EPERM"
    if out in ("ok", "") and returncode == 0:
        return "ran", "succeeded"
    if out == "ECONNREFUSED":
        return "ran", "reached the destination (connection refused: nothing listens)"
    return f"error: {out or returncode}", out or f"exit {returncode}"


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def _http_server(root: Path) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Files, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, name="demo-http", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class _Shell:
    """One shell in the scope: the sequence's steps share it as their parent (the entity)."""

    def __init__(self, demo: _Demo) -> None:
        self.proc: subprocess.Popen[str] = subprocess.Popen(
            ["/bin/sh", "-s"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=demo._join,
        )

    def run(self, command: str) -> str:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        if stdin is None or stdout is None:  # pragma: no cover - both are pipes
            raise ConfigError("demo shell: no pipes")
        stdin.write(f"{command}; echo __done__\n")
        stdin.flush()
        lines = []
        for line in stdout:
            if line.strip() == "__done__":
                break
            lines.append(line.strip())
        return "\n".join(lines).strip()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _lo_up() -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname="lo")
        if idx:
            ipr.link("set", index=idx[0], state="up")


def _scenarios(demo: _Demo, port: int, vault_pid: int, scratch: list[Path]) -> list[_Scenario]:
    work = demo.work
    demo.child_script.write_text(_CHILD)
    true = shutil.which("true") or "/bin/true"
    tmp_dir = Path(tempfile.mkdtemp(prefix="kestrel-demo-", dir="/tmp"))
    scratch.append(tmp_dir)
    shm = Path("/dev/shm")
    shm.mkdir(exist_ok=True)
    shm_dir = Path(tempfile.mkdtemp(prefix="kestrel-demo-", dir=str(shm)))
    scratch.append(shm_dir)
    for d in (tmp_dir, shm_dir):
        shutil.copy(true, d / "dropper")
        os.chmod(d / "dropper", 0o755)  # noqa: S103 - an executable for the exec scenarios
    key = work / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n(demo key)\n-----END OPENSSH PRIVATE KEY-----\n")
    shutil.copy(true, work / "www" / "payload")
    curl = shutil.which("curl")

    def sequence(mode: Mode) -> tuple[str, str]:
        if curl is None:
            return "error: curl is not installed", "the download step needs curl"
        target = work / f"payload-{mode}"
        shell = _Shell(demo)
        try:
            out = shell.run(f"{curl} -sS -o {target} http://127.0.0.1:{port}/payload; echo rc=$?")
            if "rc=0" not in out:
                return f"error: download failed: {out}", out
            demo.settle()
            shell.run(f"chmod +x {target}")
            demo.settle()
            result = shell.run(f"{sys.executable} {demo.child_script} exec {target}; echo rc=$?")
        finally:
            shell.close()
        out, _, code = result.rpartition("rc=")
        rc = int(code.strip()) if code.strip().isdigit() else 1
        seen, detail = _seen(-9 if rc == 137 else rc, out.strip())  # sh reports a SIGKILL as 137
        return seen, f"curl -o {target.name}; chmod +x; exec: {detail}"

    return [
        _Scenario("exec from /tmp", "block_tmp_exec", lambda m: demo.child("exec", str(tmp_dir / "dropper"))),
        _Scenario(
            "exec from /dev/shm", "block_tmp_exec", lambda m: demo.child("exec", str(shm_dir / "dropper"))
        ),
        _Scenario("read ~/.ssh private key", "block_ssh_key_read", lambda m: demo.child("open", str(key))),
        _Scenario("read /etc/shadow", "block_shadow_read", lambda m: demo.child("open", "/etc/shadow")),
        _Scenario(
            "connect to blocked CIDR and port",
            "block_c2_connect",
            lambda m: demo.child("connect", "127.66.0.1:4444"),
        ),
        _Scenario(
            "ptrace of a protected process",
            "block_ptrace_protected",
            lambda m: demo.child("ptrace", str(vault_pid)),
        ),
        _Scenario(
            "sequence: download -> chmod +x -> exec",
            "block_download_chmod_exec",
            sequence,
            ""
            if getattr(demo.agent.backend, "chmod_events", True)
            else "this backend reports no chmod events",
        ),
    ]


def run_demo(
    policy_dir: Path,
    make_backend: Callable[[], KernelBackend],
    *,
    log: Callable[[str], None] = lambda _m: None,
) -> list[DemoRow]:
    """Run every scenario in enforce, detect and off; return the rows."""
    if os.geteuid() != 0:
        raise PrivilegeError("guardctl demo: needs root (it loads BPF programs and creates a cgroup)")
    from guard.lsm.pinned import cgroup2_root

    policy = load_policy(policy_dir)
    compiled = compile_policy(policy)
    root = cgroup2_root()
    cgroup = root / f"kestrel-demo-{os.getpid()}"
    cgroup.mkdir()
    work = Path(tempfile.mkdtemp(prefix="kestrel-demo-", dir="/var/tmp"))
    audit = MemoryAudit()
    settings = AgentSettings(mode=Mode.ENFORCE, scope_cgroups=(os.stat(cgroup).st_ino,), storm_threshold=1000)
    agent = Agent(compiled, make_backend(), audit, settings, alerts=io.StringIO())
    stop = threading.Event()
    vault: subprocess.Popen[bytes] | None = None
    rows: list[DemoRow] = []
    scratch: list[Path] = []
    try:
        _lo_up()
        shutil.copy(shutil.which("sleep") or "/bin/sleep", work / "kestrel-vault")
        vault = subprocess.Popen([str(work / "kestrel-vault"), "600"])
        log(f"agent: backend {agent.backend.name}, scope cgroup {cgroup}")
        agent.start()
        thread = threading.Thread(target=agent.run, args=(stop,), kwargs={"timeout_ms": 50}, daemon=True)
        thread.start()
        (work / "www").mkdir()
        with _http_server(work / "www") as port:
            demo = _Demo(agent, audit, cgroup, work)
            scenarios = _scenarios(demo, port, vault.pid, scratch)
            agent.refresh_targets()
            for mode in (Mode.ENFORCE, Mode.DETECT, Mode.OFF):
                agent.set_mode(mode, uid=0, reason=f"demo: {mode}")
                demo.settle()
                for scenario in scenarios:
                    row = demo.judge(scenario, mode)
                    log(f"{row.mode:<8} {row.scenario:<42} expected {row.expected:<12} actual {row.actual}")
                    rows.append(row)
        stop.set()
        thread.join(timeout=30)
    finally:
        stop.set()
        agent.stop("demo finished")
        if vault is not None:
            vault.kill()
            vault.wait()
        with contextlib.suppress(OSError):
            cgroup.rmdir()
        for d in (work, *scratch):
            shutil.rmtree(d, ignore_errors=True)
    if not rows:
        raise ConfigError("guardctl demo: no scenario ran")
    return rows


def render_rows(rows: list[DemoRow]) -> str:
    """Return the demo's table: scenario, mode, expected, actual, and a verdict per row."""
    lines = [f"{'scenario':<42} {'mode':<8} {'expected':<12} {'actual':<12}"]
    for r in rows:
        mark = "ok" if r.ok else "MISMATCH"
        lines.append(f"{r.scenario:<42} {r.mode:<8} {r.expected:<12} {r.actual:<12} {mark}  {r.detail}")
    good = sum(r.ok for r in rows)
    lines.append(f"{good}/{len(rows)} as expected")
    return "\n".join(lines)
