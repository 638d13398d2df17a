"""The control socket: one JSON request per connection, authorised by SO_PEERCRED; who counts as the running agent."""

from __future__ import annotations

import grp
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from guard.agent.control import ControlServer, Peer, authorise, request
from guard.errors import ConfigError


def test_authorise_by_uid_and_group() -> None:
    assert authorise("status", Peer(1, 1000, 1000), "") is None
    assert authorise("mode", Peer(1, 0, 0), "") is None
    refusal = authorise("mode", Peer(1, 1000, 1000), "")
    assert refusal is not None
    assert "needs root" in refusal
    assert "uid 1000" in refusal
    missing = authorise("mode", Peer(1, 1000, 1000), "no-such-group-kestrel")
    assert missing is not None
    assert "does not exist" in missing
    # membership by the peer's primary gid
    gid = os.getgid()
    name = grp.getgrgid(gid).gr_name
    assert authorise("mode", Peer(os.getpid(), 1000, gid), name) is None


@pytest.fixture
def server() -> Iterator[tuple[Path, list[tuple[Mapping[str, Any], Peer]]]]:
    seen: list[tuple[Mapping[str, Any], Peer]] = []

    def handler(req: Mapping[str, Any], peer: Peer) -> Mapping[str, Any]:
        seen.append((req, peer))
        if req["op"] == "boom":
            raise ConfigError("boom: refused by the handler")
        return {"echo": req["op"]}

    directory = Path(tempfile.mkdtemp(prefix="guard-control-"))
    directory.chmod(0o755)  # any user may reach the socket (mode 0666): the peer credentials decide
    path = directory / "control.sock"
    srv = ControlServer(path, handler)
    srv.start()
    yield path, seen
    srv.stop()
    assert not path.exists()
    directory.rmdir()


def test_requests_carry_the_kernel_peer_credentials(server: tuple[Path, list[Any]]) -> None:
    path, seen = server
    assert request(path, {"op": "status"}) == {"ok": True, "echo": "status"}
    assert seen[-1][1].pid == os.getpid()
    assert seen[-1][1].uid == os.getuid()
    bad = request(path, {"op": "boom"})
    assert bad == {"ok": False, "error": "boom: refused by the handler", "kind": "ConfigError"}


def test_bad_requests_get_a_clear_error(server: tuple[Path, list[Any]]) -> None:
    import socket

    path, seen = server
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(b"not json\n")
        reply = json.loads(s.makefile().readline())
    assert reply["ok"] is False
    assert reply["error"].startswith("bad request")
    assert seen == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another uid")
def test_an_unprivileged_peer_is_refused_before_the_handler(server: tuple[Path, list[Any]]) -> None:
    path, seen = server
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the client: drop to nobody, then ask
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            reply = request(path, {"op": "mode", "mode": "off"})
            os.write(write_fd, json.dumps(reply).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        data = f.read()
    os.waitpid(pid, 0)
    reply = json.loads(data)
    assert reply["ok"] is False
    assert reply["refused"] is True
    assert "needs root" in reply["error"]
    assert "uid 65534" in reply["error"]
    assert seen == []  # the handler never ran: nothing changed


def test_no_agent_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no agent is listening"):
        request(tmp_path / "absent.sock", {"op": "status"})


def test_a_connection_error_after_connecting_is_no_agent_unavailable(tmp_path: Path) -> None:
    """Something listening that does not answer is not "no agent": the caller must not act alone."""
    import socket

    from guard.errors import AgentUnavailableError

    path = tmp_path / "c.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(1)  # never accepted: the request waits in the backlog
        with pytest.raises(AgentUnavailableError, match=r"did not answer within 0\.2 s"):
            request(path, {"op": "status"}, timeout=0.2)


def _cfg(run_dir: Path) -> Any:
    from guard.config import GuardConfig, apply_overrides

    return apply_overrides(GuardConfig(), {"agent": {"run_dir": str(run_dir)}})


def test_the_running_agent_is_its_pid_alive_with_its_start_time(tmp_path: Path) -> None:
    from guard.agent.processes import proc_start_ticks
    from guard.agent.service import pid_path, running_agent

    cfg = _cfg(tmp_path)
    assert running_agent(cfg) is None  # no pid file
    start = proc_start_ticks(os.getpid())
    assert start is not None
    for record, expected in [
        ({"pid": os.getpid(), "start_ticks": start}, os.getpid()),
        ({"pid": os.getpid(), "start_ticks": start + 1}, None),  # the pid now names another process
        ({"pid": os.getpid()}, None),  # no start time: never trusted
        ({"pid": "x", "start_ticks": start}, None),
        ([], None),
    ]:
        pid_path(cfg).write_text(json.dumps(record))
        assert running_agent(cfg) == expected, record
    pid_path(cfg).write_text("{not json")
    assert running_agent(cfg) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="agent run needs root")
def test_a_second_agent_is_refused_before_it_opens_the_trail(tmp_path: Path) -> None:
    import subprocess
    import sys

    from guard.agent.processes import proc_start_ticks
    from guard.agent.service import pid_path, run_agent
    from guard.config import GuardConfig, apply_overrides

    cfg = apply_overrides(
        GuardConfig(),
        {"agent": {"run_dir": str(tmp_path / "run")}, "audit": {"path": str(tmp_path / "audit.jsonl")}},
    )
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        pid_path(cfg).parent.mkdir()
        pid_path(cfg).write_text(json.dumps({"pid": other.pid, "start_ticks": proc_start_ticks(other.pid)}))
        with pytest.raises(ConfigError, match=f"an agent already runs \\(pid {other.pid}"):
            run_agent(
                cfg, policy=None, backend="fake", mode=None, cgroups=[], pids=[other.pid],
                cache_dir=tmp_path, alerts=None,
            )  # fmt: skip
        assert not (tmp_path / "audit.jsonl").exists()
    finally:
        other.communicate(b"")
