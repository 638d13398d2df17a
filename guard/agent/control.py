"""The control socket: JSON-line requests to the running agent, authorised by peer credentials.

The agent listens on a Unix stream socket (``<run_dir>/control.sock``, mode 0666: anyone may ask,
the agent decides). Each connection carries one request line ``{"op": ..., ...}`` and gets one
response line ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. The caller's uid and gid
come from ``SO_PEERCRED`` (the kernel's word, not the request's): read-only operations
(:data:`READ_OPS`) are open to every local user; every other operation needs uid 0 or membership
of the configured control group, and anyone else gets a refusal before anything is touched.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from guard.errors import ConfigError, GuardError, PrivilegeError

__all__ = ["READ_OPS", "ControlServer", "Peer", "authorise", "request"]

READ_OPS: Final = frozenset({"status", "ping"})
_MAX_REQUEST: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of a connection (from SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


def peer_of(conn: socket.socket) -> Peer:
    """Return the connecting process's credentials as the kernel recorded them."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def _groups_of(peer: Peer) -> set[int]:
    """Return the peer's groups (from /proc: the kernel's view of the live process)."""
    groups = {peer.gid}
    try:
        for line in Path(f"/proc/{peer.pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                groups.update(int(g) for g in line.split()[1:])
    except OSError:
        pass
    return groups


def authorise(op: str, peer: Peer, control_group: str) -> str | None:
    """Return why ``peer`` may not run ``op`` (None: allowed)."""
    if op in READ_OPS or peer.uid == 0:
        return None
    if control_group:
        try:
            gid = grp.getgrnam(control_group).gr_gid
        except KeyError:
            return f"refused: uid {peer.uid} is not root and control group {control_group!r} does not exist"
        if gid in _groups_of(peer):
            return None
        return f"refused: {op} needs root or membership of group {control_group!r} (uid {peer.uid})"
    return f"refused: {op} needs root (uid {peer.uid}; no control group is configured)"


Handler = Callable[[Mapping[str, Any], Peer], Mapping[str, Any]]


class ControlServer:
    """Serve control requests on a Unix socket in a background thread."""

    def __init__(self, path: Path, handler: Handler, *, control_group: str = "") -> None:
        self.path = path
        self.handler = handler
        self.control_group = control_group
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Bind (replacing a stale socket file) and serve until :meth:`stop`."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o666)  # noqa: S103 - anyone may ask; peer credentials decide
        sock.listen(16)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="guard-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and remove the socket file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self._one(conn)
                except OSError:
                    continue

    def _one(self, conn: socket.socket) -> None:
        peer = peer_of(conn)
        data = b""
        while b"\n" not in data and len(data) <= _MAX_REQUEST:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        response: Mapping[str, Any]
        try:
            req = json.loads(data.split(b"\n", 1)[0] or b"null")
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise ValueError("a request is a JSON object with an 'op' string")
        except ValueError as exc:
            response = {"ok": False, "error": f"bad request: {exc}"}
        else:
            refusal = authorise(req["op"], peer, self.control_group)
            if refusal is not None:
                response = {"ok": False, "error": refusal, "refused": True}
            else:
                try:
                    response = {"ok": True, **self.handler(req, peer)}
                except GuardError as exc:
                    response = {"ok": False, "error": str(exc), "kind": type(exc).__name__}
        conn.sendall(json.dumps(response).encode() + b"\n")


def request(path: Path, req: Mapping[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to the agent and return its response; raise GuardError when nobody answers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except FileNotFoundError:
        raise ConfigError(f"{path}: no agent is listening (not running?)") from None
    except ConnectionRefusedError:
        raise ConfigError(f"{path}: no agent is listening (stale socket)") from None
    except PermissionError:
        raise PrivilegeError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        response = json.loads(data)
    except ValueError:
        raise ConfigError(f"{path}: the agent sent no valid response") from None
    if not isinstance(response, dict):
        raise ConfigError(f"{path}: the agent sent no valid response")
    return response
