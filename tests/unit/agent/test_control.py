"""The control socket: one JSON request per connection, authorised by SO_PEERCRED."""

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
