"""guard.lsm.events: ring-buffer records as ECS documents that agree with the policy schema."""

from __future__ import annotations

import errno
import ipaddress
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from guard.errors import KernelError
from guard.lsm import abi, events
from guard.lsm.abi import Decision, Match, ModeId
from guard.lsm.events import EventReader, boot_offset_ns, to_ecs
from guard.lsm.fake import FakeBackend
from guard.lsm.verdicts import Action, InodeRule, KernelPolicy, NetRule, PathRule, PtraceRule, build_tables
from guard.model import Hook
from guard.policy.schema import ECS, Kind
from guard.policy.semantics import timestamp_ms

TGID = 100
#: 2023-11-14T22:13:20Z in epoch ns, minus a boot time: events then land on readable instants.
OFFSET = 1_700_000_000_000_000_000 - 5_000_000_000
CLOCK_NS = 5_000_000_000 + 123_456_789  # -> 2023-11-14T22:13:20.123456Z


def backend(policy: KernelPolicy, mode: ModeId = ModeId.ENFORCE) -> FakeBackend:
    fake = FakeBackend(clock=lambda: CLOCK_NS)
    fake.load()
    fake.configure(dict.fromkeys(Hook, mode), agent_tgid=1)
    fake.set_scope(pids=[TGID])
    fake.apply(build_tables(policy))
    return fake


def one_doc(fake: FakeBackend) -> dict[str, Any]:
    docs = EventReader(fake, offset_ns=OFFSET).read()
    assert len(docs) == 1
    return docs[0]


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_exec_document() -> None:
    fake = backend(KernelPolicy(paths=(PathRule(Hook.BPRM_CHECK_SECURITY, "exact", "/usr/bin/nc", 11),)))
    assert (
        fake.exec(
            TGID,
            path="/usr/bin/nc",
            dev=2049,
            ino=77,
            pid=101,
            uid=1000,
            cgroup=0,
            comm=b"bash",
            mode=0o100755,
            ppid=90,
            start_ns=7_000_000,
            parent_start_ns=6_000_000,
        )
        == errno.EPERM
    )
    assert one_doc(fake) == {
        "@timestamp": "2023-11-14T22:13:20.123456Z",
        "event": {
            "kind": "event",
            "category": ["process"],
            "type": ["start"],
            "action": "exec",
            "outcome": "failure",
        },
        "process": {
            "pid": TGID,
            "entity_id": "100-7000000",
            "thread": {"id": 101},
            "name": "nc",
            "executable": "/usr/bin/nc",
            "parent": {"pid": 90, "entity_id": "90-6000000"},
        },
        "user": {"id": "1000"},
        "file": {
            "path": "/usr/bin/nc",
            "name": "nc",
            "directory": "/usr/bin",
            "inode": 77,
            "device": 2049,
            "mode": "0755",
        },
        "kestrel": {
            "hook": "exec",
            "decision": "denied",
            "rule_id": 11,
            "match": "path",
            "cgroup_id": 0,
            "path_too_long": False,
            "truncated": [],
        },
    }


def test_file_open_document() -> None:
    fake = backend(KernelPolicy(paths=(PathRule(Hook.FILE_OPEN, "prefix", "/home/", 40, Action.NOTIFY),)))
    fake.set_scope(cgroups=[4321])
    assert fake.open(555, path="/home/ann/.bashrc", dev=9, ino=12, cgroup=4321, comm=b"cat") == 0
    assert one_doc(fake) == {
        "@timestamp": "2023-11-14T22:13:20.123456Z",
        "event": {
            "kind": "event",
            "category": ["file"],
            "type": ["access"],
            "action": "open",
            "outcome": "success",
        },
        "process": {"pid": 555, "entity_id": "555-0", "thread": {"id": 555}, "name": "cat"},
        "user": {"id": "0"},
        "file": {
            "path": "/home/ann/.bashrc",
            "name": ".bashrc",
            "directory": "/home/ann",
            "inode": 12,
            "device": 9,
        },
        "cgroup": {"id": 4321},
        "kestrel": {
            "hook": "file_open",
            "decision": "allowed",
            "rule_id": 40,
            "match": "prefix",
            "cgroup_id": 4321,
            "path_too_long": False,
            "truncated": [],
            "write": False,
        },
    }


def test_connect_document_ipv4() -> None:
    fake = backend(
        KernelPolicy(nets=(NetRule(ipaddress.ip_network("203.0.113.0/24"), 0, 13),)), ModeId.DETECT
    )
    assert fake.connect(TGID, address="203.0.113.9", port=443, comm=b"curl") == 0
    assert one_doc(fake) == {
        "@timestamp": "2023-11-14T22:13:20.123456Z",
        "event": {
            "kind": "event",
            "category": ["network"],
            "type": ["start"],
            "action": "connection_attempted",
            "outcome": "success",
        },
        "process": {"pid": TGID, "entity_id": "100-0", "thread": {"id": TGID}, "name": "curl"},
        "user": {"id": "0"},
        "destination": {"ip": "203.0.113.9", "port": 443},
        "network": {"type": "ipv4", "direction": "egress"},
        "kestrel": {
            "hook": "connect",
            "decision": "would_block",
            "rule_id": 13,
            "match": "net",
            "cgroup_id": 0,
            "path_too_long": False,
            "truncated": [],
            "sendmsg": False,
        },
    }


def test_v4_mapped_ipv6_connect_is_reported_as_ipv4() -> None:
    fake = backend(KernelPolicy(nets=(NetRule(ipaddress.ip_network("203.0.113.0/24"), 0, 13),)))
    assert fake.connect(TGID, address="::ffff:203.0.113.9", port=80, family=socket.AF_INET6) == errno.EPERM
    doc = one_doc(fake)
    assert doc["destination"] == {"ip": "203.0.113.9", "port": 80}
    assert doc["network"] == {"type": "ipv4", "direction": "egress"}


def test_ipv6_connect() -> None:
    fake = backend(KernelPolicy(nets=(NetRule(ipaddress.ip_network("2001:db8::/32"), 0, 15),)))
    assert fake.connect(TGID, address="2001:DB8:0:0::1", port=8443) == errno.EPERM
    doc = one_doc(fake)
    assert doc["destination"] == {"ip": "2001:db8::1", "port": 8443}
    assert doc["network"] == {"type": "ipv6", "direction": "egress"}
    assert "file" not in doc


def test_sendmsg_is_a_connection_attempt_marked_as_a_datagram() -> None:
    fake = backend(KernelPolicy(nets=(NetRule(ipaddress.ip_network("2001:db8::/32"), 0, 15),)))
    assert fake.connect(TGID, address="2001:db8::53", port=53, sendmsg=True) == errno.EPERM
    doc = one_doc(fake)
    assert doc["event"]["action"] == "connection_attempted"
    assert doc["kestrel"]["sendmsg"] is True
    assert doc["kestrel"]["hook"] == "connect"
    assert doc["destination"] == {"ip": "2001:db8::53", "port": 53}


def test_ptrace_document() -> None:
    fake = backend(KernelPolicy(ptrace=(PtraceRule(4242, 14),)))
    assert fake.ptrace(TGID, target_tgid=4242, comm=b"gdb") == errno.EPERM
    assert one_doc(fake) == {
        "@timestamp": "2023-11-14T22:13:20.123456Z",
        "event": {
            "kind": "event",
            "category": ["process"],
            "type": ["access"],
            "action": "ptrace",
            "outcome": "failure",
        },
        "process": {"pid": TGID, "entity_id": "100-0", "thread": {"id": TGID}, "name": "gdb"},
        "user": {"id": "0"},
        "target": {"process": {"pid": 4242}},
        "kestrel": {
            "hook": "ptrace",
            "decision": "denied",
            "rule_id": 14,
            "match": "ptrace",
            "cgroup_id": 0,
            "ptrace": {"target_pid": 4242},
            "path_too_long": False,
            "truncated": [],
        },
    }


def test_an_unavailable_exec_path_keeps_the_comm_and_flags_the_document() -> None:
    fake = backend(KernelPolicy(inodes=(InodeRule(Hook.BPRM_CHECK_SECURITY, 8, 99, 70),)))
    assert fake.exec(TGID, path="/" + "x" * 300, dev=8, ino=99, comm=b"sh") == errno.EPERM
    doc = one_doc(fake)
    assert doc["process"] == {"pid": TGID, "entity_id": "100-0", "thread": {"id": TGID}, "name": "sh"}
    assert doc["file"] == {"inode": 99, "device": 8}
    assert doc["kestrel"]["path_too_long"] is True
    assert doc["kestrel"]["match"] == "inode"


def test_an_open_that_created_its_file_is_a_creation() -> None:
    fake = backend(KernelPolicy(hook_flags={Hook.FILE_OPEN: abi.HF_EMIT_CREATED}))
    assert fake.open(TGID, path="/tmp/new", ino=5, dev=1, created=True, write=True, mode=0o100600) == 0
    assert fake.open(TGID, path="/tmp/old", ino=6, dev=1, write=True, mode=0o100644) == 0  # no interest
    doc = one_doc(fake)
    assert doc["event"]["type"] == ["creation"]
    assert doc["event"]["action"] == "creation"
    assert doc["event"]["category"] == ["file"]
    assert doc["file"] == {
        "path": "/tmp/new",
        "name": "new",
        "directory": "/tmp",
        "inode": 5,
        "device": 1,
        "mode": "0600",
    }
    assert (doc["kestrel"]["hook"], doc["kestrel"]["match"], doc["kestrel"]["write"]) == (
        "file_open",
        "all",
        True,
    )


def test_an_open_for_reading_is_an_access_and_not_a_write() -> None:
    fake = backend(KernelPolicy(hook_flags={Hook.FILE_OPEN: abi.HF_EMIT_ALL}))
    fake.open(TGID, path="/etc/hosts", ino=6, dev=1, mode=0o100644)
    doc = one_doc(fake)
    assert (doc["event"]["type"], doc["event"]["action"]) == (["access"], "open")
    assert doc["kestrel"]["write"] is False
    assert doc["file"]["mode"] == "0644"


def test_chmod_document() -> None:
    fake = backend(KernelPolicy(hook_flags={Hook.FILE_OPEN: abi.HF_EMIT_CHMOD}), ModeId.DETECT)
    assert (
        fake.chmod(
            TGID,
            path="/tmp/dl/payload",
            mode=0o755,
            dev=2049,
            ino=31,
            pid=101,
            uid=1000,
            comm=b"chmod",
            ppid=90,
            start_ns=11,
            parent_start_ns=7,
        )
        == 0
    )
    assert one_doc(fake) == {
        "@timestamp": "2023-11-14T22:13:20.123456Z",
        "event": {
            "kind": "event",
            "category": ["file"],
            "type": ["change"],
            "action": "chmod",
            "outcome": "success",
        },
        "process": {
            "pid": TGID,
            "entity_id": "100-11",
            "thread": {"id": 101},
            "name": "chmod",
            "parent": {"pid": 90, "entity_id": "90-7"},
        },
        "user": {"id": "1000"},
        "file": {
            "path": "/tmp/dl/payload",
            "name": "payload",
            "directory": "/tmp/dl",
            "inode": 31,
            "device": 2049,
            "mode": "0755",
        },
        "kestrel": {
            "hook": "chmod",
            "decision": "allowed",
            "rule_id": 0,
            "match": "all",
            "cgroup_id": 0,
            "path_too_long": False,
            "truncated": [],
        },
    }


@pytest.mark.parametrize(
    ("mode", "text"), [(0, "0000"), (0o4755, "4755"), (0o100644, "0644"), (0o40700, "0700")]
)
def test_file_mode_is_four_octal_digits_of_the_permission_bits(mode: int, text: str) -> None:
    assert events.file_mode(mode) == text


def test_a_chmod_to_mode_zero_still_names_the_mode() -> None:
    record = abi.Event(hook=abi.EVENT_CHMOD, tgid=1, pid=1, path=b"/x", mode=0)
    assert to_ecs(record, boot_offset_ns=0)["file"]["mode"] == "0000"


def test_a_long_path_report_without_inode_has_no_file_object() -> None:
    fake = backend(KernelPolicy())
    assert fake.open(TGID, path=None) == 0
    doc = one_doc(fake)
    assert "file" not in doc
    assert (doc["kestrel"]["match"], doc["kestrel"]["rule_id"], doc["kestrel"]["path_too_long"]) == (
        "long_path",
        0,
        True,
    )


def test_emit_all_match_name() -> None:
    fake = backend(KernelPolicy(hook_flags={Hook.FILE_OPEN: abi.HF_EMIT_ALL}))
    fake.open(TGID, path="/etc/hosts")
    assert one_doc(fake)["kestrel"]["match"] == "all"


def test_non_utf8_path_and_comm() -> None:
    fake = backend(KernelPolicy(paths=(PathRule(Hook.BPRM_CHECK_SECURITY, "prefix", "/tmp/", 3),)))
    assert fake.exec(TGID, path=b"/tmp/\xffx", comm=b"a\xffb") == errno.EPERM
    doc = one_doc(fake)
    assert doc["file"]["path"] == "/tmp/\udcffx"  # os.fsdecode round-trips to the same bytes
    assert doc["process"]["executable"] == "/tmp/\udcffx"
    assert doc["process"]["name"] == "\udcffx"

    record = abi.Event(hook=Hook.FILE_OPEN.abi, tgid=TGID, pid=TGID, comm=b"a\xffb", path=b"/x")
    assert to_ecs(record, boot_offset_ns=0)["process"]["name"] == "a\ufffdb"


@pytest.mark.parametrize(
    ("epoch_ns", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (999, "1970-01-01T00:00:00.000000Z"),  # below a microsecond: truncated
        (1_000, "1970-01-01T00:00:00.000001Z"),
        (1_700_000_000_999_999_999, "2023-11-14T22:13:20.999999Z"),
    ],
)
def test_timestamp_is_utc_microseconds_with_z(epoch_ns: int, text: str) -> None:
    record = abi.Event(hook=Hook.PTRACE_ACCESS_CHECK.abi, ts_ns=epoch_ns // 2, tgid=1, pid=1)
    assert to_ecs(record, boot_offset_ns=epoch_ns - epoch_ns // 2)["@timestamp"] == text


def test_timestamp_is_read_back_by_the_evaluator() -> None:
    record = abi.Event(hook=Hook.PTRACE_ACCESS_CHECK.abi, ts_ns=CLOCK_NS, tgid=1, pid=1)
    assert timestamp_ms(to_ecs(record, boot_offset_ns=OFFSET)["@timestamp"]) == 1_700_000_000_123.456


def test_boot_offset_is_wall_minus_monotonic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "time", SimpleNamespace(time_ns=lambda: 10_000, monotonic_ns=lambda: 3_000))
    assert boot_offset_ns() == 7_000
    assert EventReader(FakeBackend()).offset_ns == 7_000


@pytest.mark.parametrize(("field", "value"), [("hook", 9), ("decision", 7), ("match", 42)])
def test_an_unknown_enum_value_is_a_kernel_error(field: str, value: int) -> None:
    record = abi.Event(hook=Hook.BPRM_CHECK_SECURITY.abi)
    setattr(record, field, value)
    with pytest.raises(KernelError, match=rf"unknown \w+ {value} \(ABI mismatch\?\)"):
        to_ecs(record, boot_offset_ns=0)


def test_reader_converts_and_drains() -> None:
    fake = backend(KernelPolicy(ptrace=(PtraceRule(4242, 14),)))
    fake.ptrace(TGID, target_tgid=4242)
    fake.ptrace(TGID, target_tgid=4242)
    reader = EventReader(fake, offset_ns=OFFSET)
    assert [d["kestrel"]["decision"] for d in reader.read(timeout_ms=0)] == ["denied", "denied"]
    assert reader.read() == []


def test_every_ecs_field_agrees_with_the_policy_schema() -> None:
    fake = backend(
        KernelPolicy(
            paths=(
                PathRule(Hook.BPRM_CHECK_SECURITY, "exact", "/bin/x", 1),
                PathRule(Hook.FILE_OPEN, "exact", "/etc/x", 2),
            ),
            nets=(
                NetRule(ipaddress.ip_network("::/0"), 0, 3),
                NetRule(ipaddress.ip_network("0.0.0.0/0"), 0, 3),
            ),
            ptrace=(PtraceRule(9, 4),),
        )
    )
    fake.set_scope(pids=[TGID], cgroups=[55])
    fake.apply(
        build_tables(
            KernelPolicy(
                paths=(
                    PathRule(Hook.BPRM_CHECK_SECURITY, "exact", "/bin/x", 1),
                    PathRule(Hook.FILE_OPEN, "exact", "/etc/x", 2),
                ),
                nets=(
                    NetRule(ipaddress.ip_network("::/0"), 0, 3),
                    NetRule(ipaddress.ip_network("0.0.0.0/0"), 0, 3),
                ),
                ptrace=(PtraceRule(9, 4),),
                hook_flags={Hook.FILE_OPEN: abi.HF_EMIT_CHMOD},
            )
        )
    )
    fake.exec(TGID, path="/bin/x", dev=1, ino=2, comm=b"x", cgroup=55, mode=0o100755, ppid=1, start_ns=5)
    fake.open(TGID, path="/etc/x", dev=1, ino=3, comm=b"x", created=True, write=True, mode=0o100600)
    fake.chmod(TGID, path="/etc/x", mode=0o700, dev=1, ino=3, comm=b"x", ppid=1, start_ns=5)
    fake.connect(TGID, address="10.0.0.1", port=1, comm=b"x")
    fake.connect(TGID, address="2001:db8::1", port=1, comm=b"x")
    fake.ptrace(TGID, target_tgid=9, comm=b"x")
    docs = EventReader(fake, offset_ns=OFFSET).read()
    assert len(docs) == 6
    seen: set[str] = set()
    for doc in docs:
        for name, value in flatten(doc).items():
            if name.startswith("kestrel."):
                continue
            kind = ECS.kind(name)
            assert kind is not None, f"{name} is not in the ECS schema rules are checked against"
            values = value if isinstance(value, list) else [value]
            for item in values:
                if kind is Kind.NUMBER:
                    assert isinstance(item, int), (name, item)
                elif kind is Kind.IP:
                    ipaddress.ip_address(item)
                else:
                    assert isinstance(item, str), (name, item)
            seen.add(name)
    assert {
        "file.inode",
        "file.device",
        "destination.ip",
        "user.id",
        "cgroup.id",
        "target.process.pid",
        "process.entity_id",
        "process.parent.pid",
        "process.parent.entity_id",
        "file.mode",
    } <= seen


def test_decision_and_match_names_cover_the_abi() -> None:
    names = set()
    for match in Match:
        record = abi.Event(hook=Hook.BPRM_CHECK_SECURITY.abi, decision=Decision.ALLOWED, match=match)
        names.add(to_ecs(record, boot_offset_ns=0)["kestrel"]["match"])
    assert names == {m.name.lower() for m in Match}
    outcomes = {
        decision: to_ecs(abi.Event(hook=Hook.BPRM_CHECK_SECURITY.abi, decision=decision), boot_offset_ns=0)[
            "event"
        ]["outcome"]
        for decision in Decision
    }
    assert outcomes == {
        Decision.ALLOWED: "success",
        Decision.DENIED: "failure",
        Decision.WOULD_BLOCK: "success",
        Decision.KILLED: "failure",  # the compat kill reaction: the task did not get to act
    }


@pytest.mark.parametrize(
    ("hook", "flag", "action"),
    [
        (Hook.BPRM_CHECK_SECURITY, abi.EVF_MMAP, "mmap"),
        (Hook.FILE_OPEN, abi.EVF_LINK, "link"),
        (Hook.FILE_OPEN, abi.EVF_RENAME, "rename"),
    ],
)
def test_another_way_to_a_protected_file_is_a_file_change_with_its_action(
    hook: Hook, flag: int, action: str
) -> None:
    """The LSM plane's executable mappings and new names come as the hook's events with a flag."""
    record = abi.Event(
        hook=hook.abi, decision=Decision.DENIED, rule_id=3, match=Match.SUBTREE, tgid=TGID, flags=flag
    )
    record.path = b"/tmp/x"
    record.ino, record.dev = 9, 2
    doc = to_ecs(record, boot_offset_ns=OFFSET)
    assert (doc["event"]["category"], doc["event"]["type"], doc["event"]["action"]) == (
        ["file"],
        ["change"],
        action,
    )
    assert doc["event"]["outcome"] == "failure"
    assert doc["file"]["path"] == "/tmp/x"
    assert "executable" not in doc["process"]  # a mapping is not an exec of the file
    assert (doc["kestrel"]["hook"], doc["kestrel"]["match"]) == (hook.short, "subtree")


@pytest.mark.parametrize(
    ("path", "extension"),
    [
        ("/tmp/x.tar.gz", "gz"),
        ("/home/a/.bashrc", None),
        ("/etc/cron.d/job", None),
        ("/tmp/a.", None),
        ("/x/y.SO", "SO"),
    ],
)
def test_file_extension_is_after_the_last_dot_and_none_for_dotfiles(path: str, extension: str | None) -> None:
    fake = backend(KernelPolicy(paths=(PathRule(Hook.FILE_OPEN, "exact", path, 11),)))
    assert fake.open(TGID, path=path) == errno.EPERM
    assert one_doc(fake)["file"].get("extension") == extension
