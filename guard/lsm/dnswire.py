"""DNS messages as the kernel hands them over (RFC 1035 wire format) → ECS ``dns.*`` fields.

The DNS programs (bpf/hooks/dns.bpf.c) copy the first bytes of each message a governed task sends
to port 53 or reads back; this parses them. Untrusted input: every length and pointer is checked,
name compression may not loop, and a message that does not parse is ``None`` (the event is not
reported as DNS). Over TCP a message is prefixed by its 2-byte length; :func:`parse` takes either.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["DnsMessage", "parse"]

HEADER: Final = 12
#: Longest name (RFC 1035 2.3.4) and the most compression pointers followed in one name.
_NAME_MAX: Final = 255
_POINTERS_MAX: Final = 32
#: Answers kept per message.
_ANSWERS_MAX: Final = 32

TYPES: Final = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
    35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS",
    99: "SPF", 255: "ANY", 257: "CAA",
}  # fmt: skip
CLASSES: Final = {1: "IN", 3: "CH", 4: "HS", 255: "ANY"}
OPCODES: Final = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}
RCODES: Final = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
    7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}  # fmt: skip
_FLAGS: Final = (("AA", 10), ("TC", 9), ("RD", 8), ("RA", 7), ("AD", 5), ("CD", 4))


class _Malformed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """One parsed message: its header, first question and (for a response) its answers."""

    id: int
    response: bool
    op_code: str
    response_code: str
    header_flags: tuple[str, ...]
    question_name: str
    question_type: str
    question_class: str
    answers: tuple[dict[str, Any], ...] = ()
    resolved_ip: tuple[str, ...] = ()
    tcp: bool = False
    #: the message was longer than the bytes kept (answers past them are missing)
    truncated: bool = False

    def to_ecs(self) -> dict[str, Any]:
        """Return the ECS ``dns`` object."""
        dns: dict[str, Any] = {
            "id": str(self.id),
            "type": "answer" if self.response else "query",
            "op_code": self.op_code,
            "header_flags": list(self.header_flags),
            "question": {
                "name": self.question_name,
                "type": self.question_type,
                "class": self.question_class,
            },
        }
        tld = self.question_name.rsplit(".", 1)[-1] if "." in self.question_name else ""
        if tld:
            dns["question"]["top_level_domain"] = tld
        if self.response:
            dns["response_code"] = self.response_code
            if self.answers:
                dns["answers"] = [dict(a) for a in self.answers]
            if self.resolved_ip:
                dns["resolved_ip"] = list(self.resolved_ip)
        return dns


def _u16(data: bytes, at: int) -> int:
    if at + 2 > len(data):
        raise _Malformed
    return int.from_bytes(data[at : at + 2], "big")


def _name(data: bytes, at: int) -> tuple[str, int]:
    """Return the name at ``at`` and the offset after it (where a pointer was, after the pointer)."""
    labels: list[str] = []
    end = -1
    pointers = total = 0
    while True:
        if at >= len(data):
            raise _Malformed
        size = data[at]
        if size == 0:
            at += 1
            break
        if size & 0xC0 == 0xC0:  # a compression pointer
            if at + 2 > len(data) or pointers >= _POINTERS_MAX:
                raise _Malformed
            if end < 0:
                end = at + 2
            at = (size & 0x3F) << 8 | data[at + 1]
            pointers += 1
            continue
        if size & 0xC0:  # 0x40, 0x80: reserved label types
            raise _Malformed
        label = data[at + 1 : at + 1 + size]
        if len(label) != size:
            raise _Malformed
        total += size + 1
        if total > _NAME_MAX:
            raise _Malformed
        labels.append(label.decode("ascii", "backslashreplace"))
        at += 1 + size
    return ".".join(labels), (end if end >= 0 else at)


def _rdata(data: bytes, at: int, rtype: int, size: int) -> str:
    raw = data[at : at + size]
    if rtype == 1 and size == 4:
        return str(ipaddress.IPv4Address(raw))
    if rtype == 28 and size == 16:
        return str(ipaddress.IPv6Address(raw))
    if rtype in (2, 5, 12):
        return _name(data, at)[0]
    if rtype == 15 and size >= 3:
        return _name(data, at + 2)[0]
    if rtype == 16:
        parts, i = [], 0
        while i < len(raw):
            n = raw[i]
            parts.append(raw[i + 1 : i + 1 + n].decode("utf-8", "backslashreplace"))
            i += 1 + n
        return "".join(parts)
    return raw.hex()


def _parse(data: bytes, *, length: int, tcp: bool) -> DnsMessage:
    if len(data) < HEADER:
        raise _Malformed
    ident, flags, qdcount, ancount = _u16(data, 0), _u16(data, 2), _u16(data, 4), _u16(data, 6)
    response = bool(flags & 0x8000)
    opcode = flags >> 11 & 0xF
    if qdcount != 1 or opcode not in OPCODES or (not response and ancount):
        raise _Malformed
    qname, at = _name(data, HEADER)
    qtype, qclass = _u16(data, at), _u16(data, at + 2)
    at += 4
    answers: list[dict[str, Any]] = []
    resolved: list[str] = []
    truncated = length > len(data)
    for _ in range(min(ancount, _ANSWERS_MAX) if response else 0):
        try:
            name, at = _name(data, at)
            rtype, rclass = _u16(data, at), _u16(data, at + 2)
            ttl = int.from_bytes(data[at + 4 : at + 8], "big")
            size = _u16(data, at + 8)
            at += 10
            if at + size > len(data):
                raise _Malformed
            value = _rdata(data, at, rtype, size)
        except _Malformed:
            truncated = True  # answers past the bytes kept
            break
        at += size
        answers.append(
            {"name": name, "type": TYPES.get(rtype, str(rtype)), "class": CLASSES.get(rclass, str(rclass)),
             "ttl": ttl, "data": value}
        )  # fmt: skip
        if rtype in (1, 28):
            resolved.append(value)
    return DnsMessage(
        id=ident,
        response=response,
        op_code=OPCODES[opcode],
        response_code=RCODES.get(flags & 0xF, str(flags & 0xF)),
        header_flags=tuple(name for name, bit in _FLAGS if flags >> bit & 1),
        question_name=qname,
        question_type=TYPES.get(qtype, str(qtype)),
        question_class=CLASSES.get(qclass, str(qclass)),
        answers=tuple(answers),
        resolved_ip=tuple(resolved),
        tcp=tcp,
        truncated=truncated,
    )


def parse(data: bytes, length: int | None = None) -> DnsMessage | None:
    """Parse a message's first bytes (``length``: its whole size); None when it is not DNS.

    A TCP message (its 2-byte length first, equal to the rest) is recognised and parsed after it.
    """
    length = len(data) if length is None else length
    if len(data) >= 2 + HEADER and _u16(data, 0) == length - 2:
        try:
            return _parse(data[2:], length=length - 2, tcp=True)
        except _Malformed:
            pass
    try:
        return _parse(data, length=length, tcp=False)
    except _Malformed:
        return None
