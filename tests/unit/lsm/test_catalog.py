"""guard.lsm.catalog: the table of what the sensor produces agrees with events.py, the schema and the probe."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from guard.lsm import abi, catalog
from guard.lsm.catalog import CATALOG, EVENT_SPECS, NOW, PLANNED, EventSpec, Row, plane_of, produced
from guard.lsm.events import proc_to_ecs, to_ecs
from guard.lsm.probe import FEATURES
from guard.model import EVENT_KINDS, BackendName, Hook, Telemetry
from guard.policy.schema import ECS


def flatten(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in doc.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:  # an array of objects (dns.answers): its fields
                out |= flatten(item, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def record(kind: Hook | Telemetry, flags: int = 0) -> abi.Event:
    """A ring record with every field set, so that events.py leaves nothing out."""
    ev = abi.Event()
    ev.ts_ns, ev.cgroup_id, ev.hook, ev.rule_id = 1_000, 7, kind.abi, 3
    ev.pid, ev.tgid, ev.ppid, ev.uid, ev.flags = 101, 100, 1, 1000, flags
    ev.dev, ev.ino, ev.start_ns, ev.parent_start_ns, ev.mode = 2049, 42, 5, 4, 0o755
    ev.target_tgid, ev.port = 200, 4444
    ev.addr[:] = list(bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1]))
    ev.comm = b"nc"
    ev.path = b"/tmp/payload.sh"  # with an extension: file.extension is emitted
    return ev


#: An A query for example.com, and its answer (one address, the name compressed).
DNS_QUERY = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
DNS_ANSWER = bytes.fromhex(
    "123481800001000100000000076578616d706c6503636f6d0000010001c00c000100010000012c00045db8d822"
)


def proc_record(kind: int) -> abi.ProcRecord:
    """A process record with every field set (ids of root, so that names resolve)."""
    if kind in (abi.PROC_DNS_QUERY, abi.PROC_DNS_ANSWER):
        message = DNS_ANSWER if kind == abi.PROC_DNS_ANSWER else DNS_QUERY
        dns = abi.DnsEvent(
            family=2, local_port=40000, remote_port=53, len=len(message), data_len=len(message)
        )
        dns.data[: len(message)] = message
        dns.proc = proc_record(abi.PROC_FORK)
        dns.proc.kind = kind
        return dns
    if kind in (abi.PROC_ACCEPT, abi.PROC_DISCONNECT):
        net = abi.NetEvent(family=2, local_port=80, remote_port=5555)
        net.proc = proc_record(abi.PROC_FORK)
        net.proc.kind = kind
        return net
    if kind == abi.PROC_PTRACE:
        attach = abi.PtraceEvent(child_pid=4242, request=abi.PTRACE_SEIZE)
        attach.proc = proc_record(abi.PROC_FORK)
        attach.proc.kind = kind
        return attach
    if kind in (abi.PROC_UID_CHANGE, abi.PROC_GID_CHANGE):
        header = proc_record(abi.PROC_FORK)
        assert isinstance(header, abi.ProcEvent)
        header.kind = kind
        return header
    if kind in (
        abi.PROC_DELETE, abi.PROC_RENAME, abi.PROC_MEMFD, abi.PROC_MODULE_LOAD, abi.PROC_CHOWN, abi.PROC_XATTR,
        abi.PROC_MOUNT, abi.PROC_UNMOUNT, abi.PROC_MODULE_UNLOAD, abi.PROC_MODIFY,
    ):  # fmt: skip
        change = abi.FileEvent(
            path=b"b.so", dir=b"/tmp", old_path=b"/tmp/a.so" if kind == abi.PROC_RENAME else b""
        )
        change.proc = proc_record(abi.PROC_FORK)
        change.proc.kind = kind
        return change
    ev = abi.ExecEvent() if kind == abi.PROC_EXEC else None
    proc = ev.proc if ev is not None else abi.ProcEvent()
    proc.ts_ns, proc.cgroup_id, proc.start_ns, proc.parent_start_ns = 1_000, 7, 5, 4
    proc.cap_effective = proc.cap_permitted = 1 << 21
    proc.kind, proc.pid, proc.tgid, proc.ppid, proc.sid, proc.pgid = kind, 101, 100, 1, 90, 95
    proc.tty_major, proc.tty_minor, proc.exit_code, proc.comm = 136, 2, 256, b"sh"
    if ev is None:
        return proc
    ev.exe, ev.cwd = b"/usr/bin/sh", b"/root"
    argv = b"sh\0-c\0id\0"
    ctypes.memmove(ctypes.addressof(ev) + abi.ExecEvent.strings.offset, argv, len(argv))
    proc.argc, proc.args_len = 3, len(argv)
    return ev


#: every shape events.py gives a record today: a hook's (kind, flags), a process record's kind
RECORDS = [
    (Hook.BPRM_CHECK_SECURITY, 0),
    (Hook.BPRM_CHECK_SECURITY, abi.EVF_MMAP),
    (Hook.FILE_OPEN, 0),
    (Hook.FILE_OPEN, abi.EVF_CREATED),
    (Hook.FILE_OPEN, abi.EVF_LINK),
    (Hook.FILE_OPEN, abi.EVF_RENAME),
    (Telemetry.CHMOD, 0),
    (Hook.SOCKET_CONNECT, 0),
    (Hook.SOCKET_CONNECT, abi.EVF_SENDMSG),
    (Hook.PTRACE_ACCESS_CHECK, 0),
    (None, abi.PROC_FORK),
    (None, abi.PROC_EXEC),
    (None, abi.PROC_EXIT),
    (None, abi.PROC_DELETE),
    (None, abi.PROC_RENAME),
    (None, abi.PROC_UID_CHANGE),
    (None, abi.PROC_GID_CHANGE),
    (None, abi.PROC_MEMFD),
    (None, abi.PROC_MODULE_LOAD),
    (None, abi.PROC_ACCEPT),
    (None, abi.PROC_CHOWN),
    (None, abi.PROC_XATTR),
    (None, abi.PROC_MOUNT),
    (None, abi.PROC_UNMOUNT),
    (None, abi.PROC_MODULE_UNLOAD),
    (None, abi.PROC_PTRACE),
    (None, abi.PROC_DISCONNECT),
    (None, abi.PROC_MODIFY),
    (None, abi.PROC_DNS_QUERY),
    (None, abi.PROC_DNS_ANSWER),
]
KERNEL_ROWS = [row for row in CATALOG if row.by == "kernel"]


def spec_of(doc: dict[str, Any]) -> EventSpec:
    event = doc["event"]
    (type_,) = event["type"]
    shape = (tuple(event["category"]), type_, event["action"], doc["kestrel"]["hook"])
    matches = [s for s in EVENT_SPECS if (s.categories, s.type, s.action, s.hook) == shape]
    assert len(matches) == 1, shape
    return matches[0]


@pytest.mark.parametrize(("kind", "flags"), RECORDS)
def test_now_kernel_rows_are_what_events_py_emits(kind: Hook | Telemetry | None, flags: int) -> None:
    if kind is None:
        doc = proc_to_ecs(proc_record(flags), boot_offset_ns=0, env_vars=frozenset({"LD_PRELOAD"}))
    else:
        doc = to_ecs(record(kind, flags), boot_offset_ns=0)
    spec = spec_of(doc)
    emitted = {f for f in flatten(doc) if not f.startswith("kestrel.")}
    assert produced("lsm", catalog=KERNEL_ROWS)[spec] == emitted
    compat = produced("compat", catalog=KERNEL_ROWS)
    if spec in compat:  # the records are the same on both planes
        assert compat[spec] == emitted


def test_every_today_kind_is_a_model_shape_and_now() -> None:
    now = produced("lsm")
    for kind in EVENT_KINDS:
        for shape in kind.events:
            want = (kind.category, shape.type, shape.action, kind.short)
            spec = next(s for s in EVENT_SPECS if (s.category, s.type, s.action, s.hook) == want)
            assert spec in now


def test_every_field_is_in_the_schema() -> None:
    missing = {f for row in CATALOG for f in row.fields if f not in ECS.fields}
    assert missing == set()


def test_features_are_probe_features_and_kinds_are_used() -> None:
    named = {s.feature(p) for s in EVENT_SPECS for p in ("lsm", "compat")} - {None}
    assert named <= set(FEATURES)
    used = {k for row in CATALOG for k in row.kinds}
    assert used == set(EVENT_SPECS)
    assert len({s.name for s in EVENT_SPECS}) == len(EVENT_SPECS)
    assert catalog.EXEC.name == "process/start/exec@process"
    assert {row.since for row in CATALOG} == {NOW, PLANNED}


def test_planes_differ_where_the_compat_plane_sees_nothing() -> None:
    lsm, compat = produced("lsm"), produced("compat")
    assert catalog.CHMOD in lsm
    assert catalog.CHMOD not in compat
    assert catalog.RENAME in lsm  # a row held to one plane
    assert catalog.RENAME not in compat
    assert catalog.RENAME in produced("compat", since=(NOW, PLANNED))
    assert catalog.EXEC in compat
    assert compat[catalog.EXEC] == lsm[catalog.EXEC]


#: the catalog before Defend's ptrace event was captured: its row planned
PTRACE_PLANNED = [Row(r.kinds, PLANNED, r.by, r.fields) if catalog.PTRACE in r.kinds else r for r in CATALOG]


def test_planned_rows_count_only_when_asked() -> None:
    now, later = produced("lsm"), produced("lsm", since=(NOW, PLANNED))
    assert catalog.PTRACE not in produced("lsm", catalog=PTRACE_PLANNED)
    assert catalog.PTRACE in produced("lsm", since=(NOW, PLANNED), catalog=PTRACE_PLANNED)
    assert "process.env_vars" in now[catalog.EXEC]
    assert "process.parent.thread.capabilities.effective" not in now[catalog.EXEC]
    assert "process.parent.thread.capabilities.effective" in later[catalog.EXEC]
    assert {"host.os.type", "process.args_count", "process.entry_leader.entry_meta.type"} <= now[catalog.EXEC]
    assert "process.exit_code" in now[catalog.EXIT]
    assert "process.exit_code" not in later[catalog.EXEC]
    assert "file.Ext.original.path" in now[catalog.RENAMED]
    assert "file.Ext.original.path" not in now[catalog.RENAME]  # the rename hook's decision names one file


def test_features_filter_the_kinds() -> None:
    only_tracepoints = produced("compat", features={"raw_tracepoint"})
    assert set(only_tracepoints) == {
        catalog.EXEC, catalog.FORK, catalog.EXIT, catalog.EXEC_DECISION, catalog.DISCONNECT,
    }  # fmt: skip
    assert set(produced("lsm", features={"lsm_program"})) == {
        catalog.EXEC_DECISION, catalog.EXEC_MAPPING, catalog.OPEN, catalog.CREATION, catalog.LINK,
        catalog.RENAME, catalog.CHMOD, catalog.CONNECTION_ATTEMPTED, catalog.PTRACE_ACCESS,
    }  # fmt: skip
    assert produced("lsm", features=set()) == {}


def test_flipping_a_row_makes_its_kind_produced() -> None:
    assert catalog.PTRACE not in produced("lsm", catalog=PTRACE_PLANNED)
    assert "process.Ext.ptrace.child_pid" in produced("lsm")[catalog.PTRACE]  # flipped: captured


def test_plane_of() -> None:
    assert plane_of(BackendName.LSM) == "lsm"
    assert plane_of(BackendName.COMPAT) == "compat"
    assert plane_of(BackendName.FAKE) is None
