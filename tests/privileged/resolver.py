"""A DNS server on a loopback address, port 53, for tests and re-enactments that resolve names.

It runs in the test's own process (outside any scope the test governs) and answers as a recursive
resolver does: the question echoed, an A query answered with one address (the name compressed),
any other type with no answer. Real resolvers (glibc's, via a resolv.conf naming :data:`ADDRESS`)
and hand-made queries alike get their answer at once, and no packet leaves the machine.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["ADDRESS", "ANSWER_IP", "loopback_resolver"]

#: where it listens (a loopback address no system resolver uses)
ADDRESS: Final = "127.77.0.53"
#: the address every A query resolves to (TEST-NET-1: never routed)
ANSWER_IP: Final = "192.0.2.10"
_TTL: Final = 60


def answer(query: bytes) -> bytes | None:
    """The response to ``query`` (None: not a query this server answers)."""
    if len(query) < 12 or query[2] & 0x80:
        return None
    try:
        end = query.index(b"\0", 12) + 5  # the question: its name, type and class
    except ValueError:
        return None
    qtype = int.from_bytes(query[end - 4 : end - 2], "big")
    rd = query[2] & 0x01
    ancount = 1 if qtype == 1 else 0
    out = query[:2] + bytes([0x80 | rd, 0x80]) + struct.pack(">HHHH", 1, ancount, 0, 0) + query[12:end]
    if ancount:
        out += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, _TTL, 4) + socket.inet_aton(ANSWER_IP)
    return out


@contextmanager
def loopback_resolver() -> Iterator[str]:
    """Serve on :data:`ADDRESS` port 53 (UDP) while the block runs; yield the address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ADDRESS, 53))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            response = answer(query)
            if response is not None:
                sock.sendto(response, peer)

    thread = threading.Thread(target=serve, name="loopback-resolver", daemon=True)
    thread.start()
    try:
        yield ADDRESS
    finally:
        stop.set()
        thread.join()
        sock.close()
