"""The control plane under attack: stalling, flooding and garbage clients; an agent that does not answer.

An unprivileged user must not be able to hold the control socket so that root's mode change or
bundle deploy misses the running agent, and ``guardctl`` must never act in the agent's place
(pinned maps, bundle store, a second audit writer) while the agent runs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from guard.agent import service
from guard.agent.control import ControlServer, Peer, request
from guard.agent.daemon import Agent
from guard.agent.processes import proc_start_ticks
from guard.audit.record import Kind
from guard.audit.sink import MemoryAudit
from guard.bundles.deploy import bundle_store
from guard.config import GuardConfig, apply_overrides
from guard.errors import GuardError, exit_code_for
from guard.lsm.fake import FakeBackend
from guard.model import Mode
from guard.signing import generate_keypair
from tests.unit.agent.test_deploy import CG, V1, V2, make_bundle, start

#: connections one unprivileged uid holds open while root asks (below the per-uid limit of 8)
STALLED = 6
#: a hang becomes a failure: the longest any client here waits for an answer
WATCHDOG_S = 30.0
#: the exit code documented for "the agent runs but did not answer"
EXIT_UNAVAILABLE = 6

Served = tuple[GuardConfig, Path, Agent, FakeBackend, MemoryAudit]


def _short_dir(prefix: str) -> Path:
    """Return a fresh directory any user may traverse, short enough for a socket path (107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[GuardConfig, Path]]:
    run = _short_dir("kg-ctl-")
    _key, pub, _ = generate_keypair(tmp_path / "keys", "ops")  # make_bundle signs with keys/ops.key
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.move(str(pub), trust / pub.name)
    cfg = apply_overrides(
        GuardConfig(),
        {
            "agent": {
                "run_dir": str(run),
                "state_dir": str(tmp_path / "state"),
                "trust_dir": str(trust),
                "pin_dir": str(tmp_path / "pins"),
                "keep_bundles": 3,
            },
            "audit": {
                "path": str(tmp_path / "log" / "audit.jsonl"),
                "key_path": str(tmp_path / "k" / "a.key"),
            },
        },
    )
    yield cfg, tmp_path
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def served(env: tuple[GuardConfig, Path]) -> Iterator[Served]:
    """A running agent (FakeBackend, bundle v1) behind the real control server and handler."""
    cfg, base = env
    agent, fake, audit = start(cfg, base, make_bundle(base, 1, V1))
    server = ControlServer(service.socket_path(cfg), service._handler(cfg, agent))
    server.start()
    yield cfg, base, agent, fake, audit
    server.stop()
    agent.stop("stopped")


@contextlib.contextmanager
def stalled_clients(path: Path, n: int) -> Iterator[None]:
    """Hold ``n`` connections that never finish a request, one of them trickling a byte at a time."""
    socks: list[socket.socket] = []
    done = threading.Event()

    def trickle(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not done.wait(0.2):
                sock.sendall(b" ")

    try:
        for i in range(n):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(path))
            if i % 2:
                sock.sendall(b'{"op": "mode", "mode": "of')  # a line that never ends
            socks.append(sock)
        trickler = threading.Thread(target=trickle, args=(socks[0],), daemon=True)
        trickler.start()
        yield
    finally:
        done.set()
        for sock in socks:
            sock.close()


def _no_local_action(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace guardctl's own (no agent) actions by recorders; return what was attempted."""
    attempted: list[str] = []

    def recorder(name: str) -> Callable[..., dict[str, Any]]:
        def record(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
            attempted.append(name)
            return {}

        return record

    monkeypatch.setattr(service, "_pinned_switch", recorder("pinned_switch"))
    monkeypatch.setattr(service, "deploy", recorder("store_deploy"))
    monkeypatch.setattr(service, "rollback", recorder("store_rollback"))
    return attempted


# ---------------------------------------------------------------- (a) stalled clients do not block root


def test_a_mode_change_reaches_the_agent_while_clients_stall(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, _base, agent, fake, audit = served
    monkeypatch.setattr(service, "ASK_TIMEOUT_S", WATCHDOG_S, raising=False)
    attempted = _no_local_action(monkeypatch)  # the agent's own handler does no deploy here
    with stalled_clients(service.socket_path(cfg), STALLED):
        response = service.change_mode(cfg, Mode.DETECT, rule=None, reason="incident 7", confirm_within=None)
    assert response["mode"] == "detect"
    assert agent.mode is Mode.DETECT
    assert attempted == []  # guardctl never wrote the pins behind the agent's back
    changes = [d for d in audit.decisions if d.kind is Kind.MODE_CHANGE]
    assert changes[-1].reason == "incident 7"
    assert not Path(cfg.audit.path).exists()  # one writer: guardctl opened no trail of its own
    assert fake.exec(20, path="/tmp/x", cgroup=CG) == 0  # detect: the agent's kernel state changed


def test_a_deploy_reaches_the_agent_while_clients_stall(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, base, _agent, fake, audit = served
    monkeypatch.setattr(service, "DEPLOY_TIMEOUT_S", WATCHDOG_S, raising=False)
    v2 = make_bundle(base, 2, V2)
    with stalled_clients(service.socket_path(cfg), STALLED):
        result = service.deploy_bundle(cfg, v2, reason="release 2")
    assert result["version"] == 2
    assert fake.exec(11, path="/opt/bad/y", cgroup=CG) == errno.EPERM  # the agent enforces v2
    assert fake.exec(12, path="/tmp/x", cgroup=CG) == 0
    deployed = [d for d in audit.decisions if d.kind is Kind.BUNDLE_DEPLOYED]
    assert [d.detail["version"] for d in deployed] == [1, 2]
    assert not Path(cfg.audit.path).exists()


# ---------------------------------------------------------------- (b) an agent that does not answer


@pytest.fixture(params=["silent_server", "pid_file_only"])
def unanswering(
    request: pytest.FixtureRequest, env: tuple[GuardConfig, Path]
) -> Iterator[tuple[GuardConfig, Path]]:
    """An agent that does not answer: a socket that accepts and never replies, or a live pid and no socket."""
    cfg, base = env
    make_bundle(base, 1, V1)  # a bundle in hand for deploy; the store stays empty
    if request.param == "pid_file_only":
        pid = os.getpid()  # this process is alive with this start time: "the agent runs"
        (Path(cfg.agent.run_dir) / "agent.pid").write_text(
            json.dumps({"pid": pid, "start_ticks": proc_start_ticks(pid)})
        )
        yield cfg, base
        return
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(service.socket_path(cfg)))
    listener.listen(8)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept_and_hold() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept_and_hold, daemon=True)
    thread.start()
    try:
        yield cfg, base
    finally:
        done.set()
        thread.join(timeout=WATCHDOG_S)
        for sock in held:
            sock.close()
        listener.close()


@pytest.mark.parametrize("op", ["mode", "deploy", "rollback", "status", "confirm"])
def test_an_agent_that_does_not_answer_is_an_error_never_a_fallback(
    unanswering: tuple[GuardConfig, Path], monkeypatch: pytest.MonkeyPatch, op: str
) -> None:
    cfg, base = unanswering
    monkeypatch.setattr(service, "ASK_TIMEOUT_S", 0.5, raising=False)
    monkeypatch.setattr(service, "DEPLOY_TIMEOUT_S", 0.5, raising=False)
    attempted = _no_local_action(monkeypatch)
    ask: dict[str, Callable[[], object]] = {
        "mode": lambda: service.change_mode(cfg, Mode.OFF, rule=None, reason="x", confirm_within=None),
        "deploy": lambda: service.deploy_bundle(cfg, base / "v1.bundle", reason="x"),
        "rollback": lambda: service.rollback_bundle(cfg, None, reason="x"),
        "status": lambda: service.status(cfg),
        "confirm": lambda: service.confirm(cfg, reason="x"),
    }
    with pytest.raises(GuardError) as info:
        ask[op]()
    error = info.value
    assert type(error).__name__ == "AgentUnavailableError", f"{type(error).__name__}: {error}"
    assert exit_code_for(error) == EXIT_UNAVAILABLE
    assert "\n" not in str(error)
    assert "changed nothing" in str(error)
    assert attempted == []  # neither the pinned maps nor the store were touched
    assert not Path(cfg.audit.path).exists()  # and no second writer opened the trail
    assert bundle_store(cfg).active() is None


def test_a_stale_pid_file_is_no_agent(env: tuple[GuardConfig, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A pid file whose process is gone (or whose pid was reused) does not stop guardctl acting alone."""
    cfg, _base = env
    pid = os.getpid()
    (Path(cfg.agent.run_dir) / "agent.pid").write_text(
        json.dumps({"pid": pid, "start_ticks": (proc_start_ticks(pid) or 0) + 1})  # another process's start
    )
    attempted = _no_local_action(monkeypatch)
    service.change_mode(cfg, Mode.DETECT, rule=None, reason="no agent", confirm_within=None)
    assert attempted == ["pinned_switch"]


# ---------------------------------------------------------------- (c) garbage and floods harm no one else


@pytest.fixture
def echo() -> Iterator[tuple[Path, list[tuple[Mapping[str, Any], Peer]], ControlServer]]:
    """A control server whose handler echoes the operation (and records every request it got)."""
    seen: list[tuple[Mapping[str, Any], Peer]] = []

    def handler(req: Mapping[str, Any], peer: Peer) -> Mapping[str, Any]:
        seen.append((req, peer))
        return {"echo": req["op"]}

    directory = _short_dir("kg-echo-")
    path = directory / "control.sock"
    server = ControlServer(path, handler)
    server.start()
    yield path, seen, server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


GARBAGE = {
    "oversized": b"x" * (256 * 1024),
    "deeply_nested": b"[" * 100_000 + b"\n",
    "deeply_nested_object": b'{"op": "status", "x": ' + b"[" * 100_000 + b"\n",
    "not_utf8": b"\xff\xfe\xfd\n",
    "not_an_object": b"[1, 2]\n",
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_is_refused_and_the_next_client_is_served(
    echo: tuple[Path, list[Any], ControlServer], kind: str
) -> None:
    path, seen, _server = echo
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WATCHDOG_S)
        sock.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(GARBAGE[kind])  # the server may stop reading once it has seen enough
        reply = json.loads(sock.makefile("rb").readline() or b"null")
    assert isinstance(reply, dict), reply
    assert reply["ok"] is False
    assert reply["error"].startswith("bad request"), reply
    assert request(path, {"op": "status"}, timeout=WATCHDOG_S) == {"ok": True, "echo": "status"}
    assert [req["op"] for req, _ in seen] == ["status"]


def _wait_for(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` a bounded number of times; fail when it never holds."""
    for _ in range(int(WATCHDOG_S / 0.01)):
        if condition():
            return
        time.sleep(0.01)
    pytest.fail("condition never held")


def test_a_client_over_its_limit_is_turned_away_at_once_and_served_later(tmp_path: Path) -> None:
    from guard.agent.control import ControlLimits

    directory = _short_dir("kg-lim-")
    path = directory / "control.sock"
    server = ControlServer(path, lambda req, peer: {"echo": req["op"]}, limits=ControlLimits(max_per_uid=2))
    server.start()
    try:
        with stalled_clients(path, 2):
            _wait_for(lambda: server.connections() == 2)
            busy = request(path, {"op": "status"}, timeout=WATCHDOG_S)
            assert busy["ok"] is False
            assert busy["busy"] is True
            assert f"uid {os.getuid()}" in busy["error"]
        _wait_for(lambda: server.connections() == 0)
        assert request(path, {"op": "status"}, timeout=WATCHDOG_S) == {"ok": True, "echo": "status"}
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------- root among unprivileged clients

NOBODY = 65534


def _as_nobody(path: Path, *, report: int, hold: int, close: tuple[int, ...], expect_reply: bool) -> int:
    """Fork a client running as nobody that connects, reports ('held', or the reply it waited for), then holds."""
    with warnings.catch_warnings():
        # fork in a threaded process (a warning from 3.12 on): the child only makes system calls
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for fd in close:  # the test's ends of the pipes: EOF on ``hold`` must reach this child
            os.close(fd)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(WATCHDOG_S)
        sock.connect(str(path))
        line = sock.recv(4096) if expect_reply else b"held\n"
        os.write(report, line.splitlines()[0] + b"\n" if line else b"eof\n")
        os.read(hold, 1)  # until the test lets go
        code = 0
    except BaseException as exc:  # never leave the test waiting for a line
        os.write(report, f"error {exc!r}\n".encode())
    finally:
        os._exit(code)


def _connections(server: ControlServer, n: int) -> Callable[[], bool]:
    return lambda: server.connections() == n


@pytest.mark.privileged
def test_root_is_served_while_unprivileged_clients_hold_every_slot() -> None:
    from guard.agent.control import ControlLimits

    directory = _short_dir("kg-root-")
    path = directory / "control.sock"
    seen: list[int] = []

    def handler(req: Mapping[str, Any], peer: Peer) -> Mapping[str, Any]:
        seen.append(peer.uid)
        return {"echo": req["op"]}

    server = ControlServer(path, handler, limits=ControlLimits(max_clients=3, max_per_uid=3))
    server.start()
    report_r, report_w = os.pipe()
    hold_r, hold_w = os.pipe()
    children: list[int] = []
    try:
        lines = []
        with os.fdopen(report_r, "rb", closefd=False) as reports:
            for i in range(4):  # three fill every unprivileged slot, the fourth is turned away
                children.append(
                    _as_nobody(
                        path, report=report_w, hold=hold_r, close=(report_r, hold_w), expect_reply=i == 3
                    )
                )
                lines.append(reports.readline().strip())
                _wait_for(_connections(server, min(i + 1, 3)))
        assert lines[:3] == [b"held"] * 3
        assert json.loads(lines[3])["busy"] is True
        assert server.connections() == 3
        reply = request(path, {"op": "mode", "mode": "detect"}, timeout=WATCHDOG_S)
        assert reply == {"ok": True, "echo": "mode"}
        assert seen == [0]  # root's request was served; nobody's never reached the handler
    finally:
        os.close(hold_w)  # the children read EOF and exit
        for child in children:
            os.waitpid(child, 0)
        for fd in (report_r, report_w, hold_r):
            os.close(fd)
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
