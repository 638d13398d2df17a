"""The control socket: JSON-line requests to the running agent, authorised by peer credentials.

The agent listens on a Unix stream socket (``<run_dir>/control.sock``, mode 0666: anyone may ask,
the agent decides). Each connection carries one request line ``{"op": ..., ...}`` and gets one
response line ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. The caller's uid and gid
come from ``SO_PEERCRED`` (the kernel's word, not the request's): read-only operations
(:data:`READ_OPS`) are open to every local user; every other operation needs uid 0 or membership
of the configured control group, and anyone else gets a refusal before anything is touched.

Clients are served concurrently, one thread per connection, under :class:`ControlLimits`: at most
``max_clients`` connections of non-root peers at once and ``max_per_uid`` per peer uid (root's
connections count only against the latter, so unprivileged clients cannot fill root's slots); a
request line of at most ``max_request`` bytes that must arrive whole within ``deadline_s`` (a
deadline for the whole line, not per read, so trickling bytes does not extend it). A connection
over a limit gets ``{"ok": false, "busy": true, ...}`` at once and is closed; an oversized,
late or malformed request gets a ``bad request`` reply. Handlers of state-changing operations run
one at a time (and take the agent's lock inside), as they did when one connection was served at a
time; read-only operations do not wait for them.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from guard.errors import AgentUnavailableError, ConfigError, GuardError, PrivilegeError

__all__ = ["READ_OPS", "ControlLimits", "ControlServer", "Peer", "authorise", "request"]

log = structlog.get_logger(__name__)

READ_OPS: Final = frozenset({"status", "ping"})
#: how deep a request's JSON may nest (a request is flat: this only stops a parser bomb)
_MAX_DEPTH: Final = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlLimits:
    """What one client may take of the control server."""

    max_clients: int = 32
    max_per_uid: int = 8
    max_request: int = 64 * 1024
    deadline_s: float = 5.0


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


def _depth(data: bytes) -> int:
    """Return how deep brackets nest in ``data`` (an upper bound: brackets inside strings count too)."""
    depth = deepest = 0
    for byte in data:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def _parse(line: bytes) -> dict[str, Any]:
    """Return the request a line carries; raise ValueError naming what is wrong with it."""
    if _depth(line) > _MAX_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_DEPTH}")
    req = json.loads(line or b"null")
    if not isinstance(req, dict) or not isinstance(req.get("op"), str):
        raise ValueError("a request is a JSON object with an 'op' string")
    return req


Handler = Callable[[Mapping[str, Any], Peer], Mapping[str, Any]]


class ControlServer:
    """Serve control requests on a Unix socket: one thread per client, within :class:`ControlLimits`."""

    def __init__(
        self, path: Path, handler: Handler, *, control_group: str = "", limits: ControlLimits | None = None
    ) -> None:
        self.path = path
        self.handler = handler
        self.control_group = control_group
        self.limits = limits or ControlLimits()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the counts and the client set
        self._changes = threading.Lock()  # state-changing handlers run one at a time
        self._per_uid: Counter[int] = Counter()
        self._unprivileged = 0
        self._clients: dict[socket.socket, threading.Thread] = {}
        self.busy = 0  # connections turned away at a limit

    def start(self) -> None:
        """Bind (replacing a stale socket file) and serve until :meth:`stop`."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o666)  # noqa: S103 - anyone may ask; peer credentials decide
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="guard-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: no new client, pending reads cut short, the socket file removed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            clients = list(self._clients.items())
        for conn, _ in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)
        for _, thread in clients:
            thread.join(timeout=self.limits.deadline_s)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def connections(self) -> int:
        """Return how many clients are connected now."""
        with self._lock:
            return len(self._clients)

    def _accept_loop(self) -> None:
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
            try:
                self._admit(conn)
            except OSError:
                conn.close()

    def _admit(self, conn: socket.socket) -> None:
        """Give ``conn`` a thread of its own, or turn it away at once when a limit is reached."""
        peer = peer_of(conn)
        limits = self.limits
        with self._lock:
            if self._per_uid[peer.uid] >= limits.max_per_uid:
                full = f"uid {peer.uid} already holds {limits.max_per_uid} connections"
            elif peer.uid != 0 and self._unprivileged >= limits.max_clients:
                full = f"{limits.max_clients} clients are connected"
            else:
                full = ""
                self._per_uid[peer.uid] += 1
                self._unprivileged += peer.uid != 0
                thread = threading.Thread(
                    target=self._serve_client, args=(conn, peer), name="guard-control-client", daemon=True
                )
                self._clients[conn] = thread
        if full:
            self.busy += 1
            with conn:
                conn.setblocking(False)  # never wait on a client we turn away
                reply = {"ok": False, "busy": True, "error": f"busy: {full}; try again"}
                with contextlib.suppress(OSError):
                    conn.send(json.dumps(reply).encode() + b"\n")
            return
        thread.start()

    def _serve_client(self, conn: socket.socket, peer: Peer) -> None:
        try:
            with conn:
                self._one(conn, peer)
        except OSError:
            pass
        finally:
            with self._lock:
                self._clients.pop(conn, None)
                self._per_uid[peer.uid] -= 1
                if not self._per_uid[peer.uid]:
                    del self._per_uid[peer.uid]
                self._unprivileged -= peer.uid != 0

    def _read_line(self, conn: socket.socket) -> bytes:
        """Return one request line; raise ValueError when it is too long or late."""
        limit = self.limits.max_request
        deadline = time.monotonic() + self.limits.deadline_s
        data = b""
        while b"\n" not in data:
            if len(data) > limit:
                raise ValueError(f"longer than {limit} bytes")
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                raise ValueError(f"no complete line within {self.limits.deadline_s:g} s")
            conn.settimeout(left)
            try:
                chunk = conn.recv(min(65536, limit + 1 - len(data)))
            except TimeoutError:
                raise ValueError(f"no complete line within {self.limits.deadline_s:g} s") from None
            if not chunk:
                break
            data += chunk
        line = data.split(b"\n", 1)[0]
        if len(line) > limit:
            raise ValueError(f"longer than {limit} bytes")
        return line

    def _one(self, conn: socket.socket, peer: Peer) -> None:
        response: Mapping[str, Any]
        try:
            req = _parse(self._read_line(conn))
        except ValueError as exc:
            response = {"ok": False, "error": f"bad request: {exc}"}
        else:
            response = self._answer(req, peer)
        conn.settimeout(self.limits.deadline_s)  # a client that does not read its reply is dropped
        conn.sendall(json.dumps(response).encode() + b"\n")

    def _answer(self, req: dict[str, Any], peer: Peer) -> Mapping[str, Any]:
        op = req["op"]
        refusal = authorise(op, peer, self.control_group)
        if refusal is not None:
            return {"ok": False, "error": refusal, "refused": True}
        serial = contextlib.nullcontext() if op in READ_OPS else self._changes
        try:
            with serial:
                return {"ok": True, **self.handler(req, peer)}
        except GuardError as exc:
            return {"ok": False, "error": str(exc), "kind": type(exc).__name__}
        except Exception as exc:  # a handler's bug must not end the server: the client gets one line
            log.exception("control_request_failed", op=op, uid=peer.uid)
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}


def request(path: Path, req: Mapping[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to the agent and return its response.

    Raise :class:`ConfigError` when nobody listens (no socket, or a stale one),
    :class:`PrivilegeError` when the socket cannot be opened, and
    :class:`AgentUnavailableError` when something listens but gives no valid answer in time.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b""
    try:
        sock.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(json.dumps(req).encode() + b"\n")  # a busy server answers and closes at once
        while not data.endswith(b"\n"):
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
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
    except TimeoutError:
        raise AgentUnavailableError(f"{path}: the agent did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise AgentUnavailableError(f"{path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        response = json.loads(data)
    except ValueError:
        raise AgentUnavailableError(f"{path}: the agent sent no valid response") from None
    if not isinstance(response, dict):
        raise AgentUnavailableError(f"{path}: the agent sent no valid response")
    return response
