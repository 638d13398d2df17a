"""guard.lsm.dnswire: DNS messages from the kernel's bytes, and bytes that are not DNS or are hostile."""

from __future__ import annotations

import struct

import pytest

from guard.lsm import dnswire
from tests.privileged.resolver import ANSWER_IP, answer


def question(name: str, qtype: int = 1) -> bytes:
    return (
        b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", qtype, 1)
    )


def query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    """A query as glibc sends one (recursion desired)."""
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question(name, qtype)


def test_a_query() -> None:
    message = dnswire.parse(query("pool.supportxmr.com"))
    assert message is not None
    assert not message.response
    assert not message.tcp
    assert not message.truncated
    assert message.to_ecs() == {
        "id": "4660",
        "type": "query",
        "op_code": "QUERY",
        "header_flags": ["RD"],
        "question": {"name": "pool.supportxmr.com", "type": "A", "class": "IN", "top_level_domain": "com"},
    }


def test_an_answer_with_a_cname_chain_and_addresses() -> None:
    body = question("www.example.xyz")
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 300, 6) + b"\x03cdn\xc0\x10"  # CNAME cdn.example.xyz
    rr += b"\xc0\x2d" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([198, 51, 100, 7])
    rr += (
        b"\xc0\x2d" + struct.pack(">HHIH", 28, 1, 60, 16) + bytes.fromhex("20010db8000000000000000000000001")
    )
    message = dnswire.parse(struct.pack(">HHHHHH", 7, 0x8180, 1, 3, 0, 0) + body + rr)
    assert message is not None
    ecs = message.to_ecs()
    assert ecs["type"] == "answer"
    assert ecs["response_code"] == "NOERROR"
    assert ecs["header_flags"] == ["RD", "RA"]
    assert [a["data"] for a in ecs["answers"]] == ["cdn.example.xyz", "198.51.100.7", "2001:db8::1"]
    assert [a["type"] for a in ecs["answers"]] == ["CNAME", "A", "AAAA"]
    assert ecs["resolved_ip"] == ["198.51.100.7", "2001:db8::1"]


def test_the_test_resolver_s_answers_parse() -> None:
    message = dnswire.parse(answer(query("c2.example.top")) or b"")
    assert message is not None
    assert message.resolved_ip == (ANSWER_IP,)
    empty = dnswire.parse(answer(query("c2.example.top", qtype=28)) or b"")
    assert empty is not None
    assert empty.response
    assert empty.answers == ()
    assert empty.question_type == "AAAA"


def test_nxdomain() -> None:
    message = dnswire.parse(struct.pack(">HHHHHH", 1, 0x8183, 1, 0, 1, 0) + question("nope.invalid"))
    assert message is not None
    assert message.response_code == "NXDOMAIN"
    assert message.answers == ()


def test_a_tcp_message_is_read_after_its_length() -> None:
    body = query("example.org", qtype=16)
    message = dnswire.parse(struct.pack(">H", len(body)) + body)
    assert message is not None
    assert message.tcp
    assert message.question_name == "example.org"
    assert message.question_type == "TXT"


def test_answers_past_the_bytes_kept_are_named_as_cut() -> None:
    body = question("big.example.com")
    rrs = b"".join(b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, n]) for n in range(40))
    whole = struct.pack(">HHHHHH", 2, 0x8180, 1, 40, 0, 0) + body + rrs
    message = dnswire.parse(whole[:512], len(whole))
    assert message is not None
    assert message.truncated
    assert 0 < len(message.answers) < 40
    assert dnswire.parse(whole[:512]) is not None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0" * 11,  # shorter than a header
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",  # not DNS
        struct.pack(">HHHHHH", 1, 0x0100, 2, 0, 0, 0) + question("a.b") * 2,  # two questions
        struct.pack(">HHHHHH", 1, 0x0100, 1, 1, 0, 0) + question("a.b"),  # a query with answers
        struct.pack(">HHHHHH", 1, 0x7900, 1, 0, 0, 0) + question("a.b"),  # opcode 15
        struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + b"\0\1\0\1",  # a pointer to itself
        struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\xff",  # a pointer past the end
        struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x40abc\0\0\1\0\1",  # a reserved label type
        struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x3fabc",  # a label longer than the data
        struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 5 + b"\0\0\1\0\1",  # > 255
    ],
)
def test_what_is_not_a_dns_message_is_none(data: bytes) -> None:
    assert dnswire.parse(data) is None


def test_compression_loops_end() -> None:
    # two pointers to each other in an answer's name: the answers stop, the question stays
    body = question("loop.example.com")
    at = 12 + len(body)
    rr = struct.pack(">H", 0xC000 | (at + 2)) + struct.pack(">H", 0xC000 | at)
    message = dnswire.parse(struct.pack(">HHHHHH", 3, 0x8180, 1, 1, 0, 0) + body + rr)
    assert message is not None
    assert message.answers == ()
    assert message.truncated
