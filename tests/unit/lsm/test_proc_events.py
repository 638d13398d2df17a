"""Process-ring records as ECS documents (guard.lsm.events.proc_to_ecs) and their time-ordered merge."""

from __future__ import annotations

import ctypes

import pytest

from guard.errors import KernelError
from guard.lsm import abi
from guard.lsm.events import exit_code, proc_to_ecs, record_to_ecs
from guard.lsm.fake import FakeBackend
from guard.lsm.ring import EXEC_EVENT_MIN, PROC_EVENT_SIZE, RingDecoder, by_time


def exec_record(args: list[bytes], *, flags: int = 0, argc: int | None = None) -> abi.ExecEvent:
    record = abi.ExecEvent()
    p = record.proc
    p.kind, p.flags, p.ts_ns = abi.PROC_EXEC, flags, 2_000_000_000
    p.pid = p.tgid = 42
    p.ppid, p.start_ns, p.parent_start_ns = 7, 1_000, 500
    p.uid, p.euid, p.suid, p.gid, p.egid, p.sgid = 1000, 0, 0, 1000, 0, 0
    p.sid, p.pgid, p.tty_major, p.tty_minor = 7, 42, 136, 3
    p.cap_effective = (1 << 21) | (1 << 0)
    p.comm = b"bash"
    record.exe = b"/usr/bin/bash"
    record.cwd = b"/home/user"
    packed = b"".join(a + b"\0" for a in args)
    ctypes.memmove(ctypes.addressof(record) + abi.ExecEvent.strings.offset, packed, len(packed))
    p.args_len = len(packed)
    p.argc = len(args) if argc is None else argc
    return record


def test_an_exec_is_elastic_process_start_with_its_argv_and_ids() -> None:
    doc = proc_to_ecs(exec_record([b"bash", b"-c", b"id; whoami"]), boot_offset_ns=0)
    assert doc["event"] == {
        "kind": "event", "category": ["process"], "type": ["start"], "action": "exec", "outcome": "success",
    }  # fmt: skip
    p = doc["process"]
    assert p["args"] == ["bash", "-c", "id; whoami"]
    assert p["args_count"] == 3
    assert p["command_line"] == "bash -c id; whoami"
    assert (p["executable"], p["name"], p["working_directory"]) == ("/usr/bin/bash", "bash", "/home/user")
    assert p["entity_id"] == "42-1000"
    assert p["parent"] == {"pid": 7, "entity_id": "7-500"}
    assert p["user"]["id"] == "0"
    assert p["real_user"]["id"] == "1000"
    assert p["saved_user"]["id"] == "0"
    assert doc["user"]["id"] == "0"
    assert doc["user"]["Ext"]["real"]["id"] == "1000"
    assert p["interactive"] is True
    assert p["tty"] == {"char_device": {"major": 136, "minor": 3}}
    assert p["session_leader"] == {"pid": 7}
    assert p["group_leader"] == {"pid": 42}
    assert p["thread"]["capabilities"]["effective"] == ["CAP_CHOWN", "CAP_SYS_ADMIN"]
    assert doc["kestrel"]["truncated"] == []


def test_a_truncated_argv_and_an_unresolved_directory_are_named() -> None:
    record = exec_record([b"x"] * 3, flags=abi.PF_ARGS_TRUNCATED | abi.PF_CWD_UNRESOLVED, argc=9000)
    record.cwd = b""
    doc = proc_to_ecs(record, boot_offset_ns=0)
    assert doc["kestrel"]["truncated"] == ["process.args", "process.working_directory"]
    assert doc["process"]["args_count"] == 9000
    assert "working_directory" not in doc["process"]


def test_a_cut_comm_gives_way_to_the_image_name() -> None:
    record = exec_record([b"a"])
    record.proc.comm = b"systemd-journal"  # 15 bytes: the kernel's cut of systemd-journald
    record.exe = b"/usr/lib/systemd/systemd-journald"
    assert proc_to_ecs(record, boot_offset_ns=0)["process"]["name"] == "systemd-journald"


@pytest.mark.parametrize(("status", "code"), [(0, 0), (7 << 8, 7), (9, 137), (15, 143)])
def test_end_reports_the_exit_code_elastic_style(status: int, code: int) -> None:
    record = abi.ProcEvent(kind=abi.PROC_EXIT, pid=5, tgid=5, exit_code=status)
    doc = record_to_ecs(record, boot_offset_ns=0)
    assert doc["event"]["type"] == ["end"]
    assert doc["event"]["action"] == "end"
    assert doc["process"]["exit_code"] == code == exit_code(status)


def test_fork_is_a_start_named_fork_and_an_unknown_kind_is_refused() -> None:
    fork = proc_to_ecs(abi.ProcEvent(kind=abi.PROC_FORK, pid=9, tgid=9, ppid=5), boot_offset_ns=0)
    assert (fork["event"]["type"], fork["event"]["action"]) == (["start"], "fork")
    with pytest.raises(KernelError, match="unknown kind 99"):
        proc_to_ecs(abi.ProcEvent(kind=99), boot_offset_ns=0)


def test_the_process_ring_decodes_by_kind_and_size_and_counts_the_rest() -> None:
    ring = RingDecoder("test")
    record = exec_record([b"ls", b"-l"])
    used = EXEC_EVENT_MIN + record.proc.args_len  # the kernel sends only the used bytes
    decoded = ring.decode_proc(bytes(record)[:used])
    assert isinstance(decoded, abi.ExecEvent)
    assert proc_to_ecs(decoded, boot_offset_ns=0)["process"]["args"] == ["ls", "-l"]
    assert isinstance(ring.decode_proc(bytes(abi.ProcEvent(kind=abi.PROC_FORK))), abi.ProcEvent)
    assert isinstance(
        ring.decode_proc(bytes(abi.FileEvent(proc=abi.ProcEvent(kind=abi.PROC_DELETE)))), abi.FileEvent
    )
    assert (
        ring.decode_proc(bytes(abi.ProcEvent(kind=abi.PROC_EXEC))) is None
    )  # an exec shorter than its header
    assert ring.decode_proc(bytes(PROC_EVENT_SIZE + 1)) is None  # kind 0
    assert ring.counters() == {"ring_bad_size": 2}


def test_rings_merge_in_time_order() -> None:
    events = [abi.Event(ts_ns=t) for t in (1, 4, 6)]
    procs: list[abi.ProcEvent | abi.ExecEvent] = [abi.ProcEvent(ts_ns=2), exec_record([b"a"])]
    procs[1].proc.ts_ns = 5
    merged = by_time(events, procs)
    times = [r.proc.ts_ns if isinstance(r, abi.ExecEvent) else r.ts_ns for r in merged]
    assert times == [1, 2, 4, 5, 6]


def test_the_fake_reports_governed_deletions_and_renames_as_the_planes_do() -> None:
    fake = FakeBackend()
    fake.load()
    fake.configure({}, agent_tgid=1)
    fake.set_scope(cgroups=[7])
    fake.delete(10, path="gone.txt", cwd="/home/a", cgroup=7)
    assert fake.process_records() == []  # process events not asked for
    fake.set_process_events(True)
    fake.delete(10, path="gone.txt", cwd="/home/a", cgroup=8)  # outside the scope
    fake.delete(10, path="gone.txt", cwd="/home/a", cgroup=7)
    fake.rename(10, old="/tmp/a.sh", new="../etc/init.d/a", cwd="/tmp/x", cgroup=7)
    deletion, rename = (proc_to_ecs(r, boot_offset_ns=0) for r in fake.process_records())
    assert (deletion["event"]["type"], deletion["file"]["path"]) == (["deletion"], "/home/a/gone.txt")
    assert deletion["file"]["extension"] == "txt"
    assert rename["event"]["action"] == "rename"
    assert rename["file"]["path"] == "/tmp/etc/init.d/a"
    assert rename["file"]["Ext"]["original"]["path"] == "/tmp/a.sh"
    assert rename["kestrel"]["hook"] == "file_change"


def test_id_changes_memfds_modules_and_accepts_take_elastics_shapes() -> None:
    uid = proc_to_ecs(
        abi.ProcEvent(kind=abi.PROC_UID_CHANGE, pid=3, tgid=3, euid=0, uid=1000), boot_offset_ns=0
    )
    assert (uid["event"]["category"], uid["event"]["type"], uid["event"]["action"]) == (
        ["process"], ["change"], "uid_change",
    )  # fmt: skip
    assert uid["user"]["id"] == "0"
    assert uid["kestrel"]["hook"] == "syscall"
    memfd = abi.FileEvent(proc=abi.ProcEvent(kind=abi.PROC_MEMFD), path=b"stage2")
    assert proc_to_ecs(memfd, boot_offset_ns=0)["process"]["Ext"] == {"memfd": {"name": "stage2"}}
    module = abi.FileEvent(proc=abi.ProcEvent(kind=abi.PROC_MODULE_LOAD), path=b"/tmp/rk.ko")
    doc = proc_to_ecs(module, boot_offset_ns=0)
    assert (doc["event"]["action"], doc["file"]["extension"]) == ("load_module", "ko")
    accepted = abi.NetEvent(
        proc=abi.ProcEvent(kind=abi.PROC_ACCEPT), family=10, local_port=22, remote_port=40000
    )
    accepted.local_addr[15] = 1  # ::1
    accepted.remote_addr[:] = list(bytes.fromhex("20010db8000000000000000000000005"))
    net = proc_to_ecs(accepted, boot_offset_ns=0)
    assert net["event"]["category"] == ["network"]
    assert net["event"]["action"] == "connection_accepted"
    assert net["source"] == {"ip": "2001:db8::5", "port": 40000}
    assert net["destination"] == {"ip": "::1", "port": 22}
    assert net["network"] == {"type": "ipv6", "transport": "tcp", "direction": "ingress"}


def test_ownership_xattr_mount_and_module_unload_records() -> None:
    chown = abi.FileEvent(proc=abi.ProcEvent(kind=abi.PROC_CHOWN), path=b"f", dir=b"/srv")
    doc = proc_to_ecs(chown, boot_offset_ns=0)
    assert (doc["event"]["category"], doc["event"]["action"], doc["file"]["path"]) == (
        ["file"],
        "chown",
        "/srv/f",
    )
    mount = proc_to_ecs(
        abi.FileEvent(proc=abi.ProcEvent(kind=abi.PROC_MOUNT), path=b"/mnt/x"), boot_offset_ns=0
    )
    assert (mount["event"]["action"], mount["kestrel"]["hook"]) == ("mount", "file_change")
    unload = proc_to_ecs(
        abi.FileEvent(proc=abi.ProcEvent(kind=abi.PROC_MODULE_UNLOAD), path=b"rk"), boot_offset_ns=0
    )
    assert unload["event"]["category"] == ["driver"]
    assert unload["event"]["type"] == ["end"]
    assert unload["file"] == {"name": "rk"}
    assert unload["kestrel"]["hook"] == "syscall"


def test_the_fake_reports_dns_only_when_asked_and_only_to_port_53() -> None:
    query = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
    fake = FakeBackend()
    fake.load()
    fake.configure({}, agent_tgid=1)
    fake.set_scope(cgroups=[7])
    fake.set_process_events(True)
    fake.dns(10, message=query, server="192.0.2.53", cgroup=7)
    assert fake.process_records() == []  # DNS not asked for
    fake.set_process_events(True, dns=True)
    fake.dns(10, message=query, server="192.0.2.53", port=5353, cgroup=7)  # not DNS's port
    fake.dns(10, message=query, server="192.0.2.53", cgroup=8)  # outside the scope
    fake.dns(10, message=query, server="2001:db8::53", local_port=40000, cgroup=7)
    fake.dns(10, message=b"\x01\x02", server="192.0.2.53", cgroup=7)  # shorter than a header
    (record,) = fake.process_records()
    doc = proc_to_ecs(record, boot_offset_ns=0)
    assert doc["event"]["category"] == ["network", "dns"]
    assert (doc["event"]["type"], doc["event"]["action"]) == (["protocol"], "lookup_requested")
    assert doc["dns"]["question"]["name"] == "example.com"
    assert doc["destination"] == {"ip": "2001:db8::53", "port": 53}
    assert doc["source"] == {"ip": "::1", "port": 40000}
    assert doc["network"] == {"type": "ipv6", "transport": "udp", "protocol": "dns", "direction": "egress"}
    assert doc["kestrel"]["hook"] == "dns"


def test_a_message_that_is_not_dns_keeps_its_ends_and_no_dns_object() -> None:
    record = abi.DnsEvent(family=2, local_port=1, remote_port=53, len=20, data_len=20)
    record.proc.kind = abi.PROC_DNS_QUERY
    record.data[:20] = b"GET / HTTP/1.1\r\n\r\n\0\0"
    doc = proc_to_ecs(record, boot_offset_ns=0)
    assert "dns" not in doc
    assert doc["network"]["protocol"] == "dns"
    assert doc["destination"]["port"] == 53
    assert isinstance(RingDecoder("t").decode_proc(bytes(record)), abi.DnsEvent)


def test_the_fake_reports_modifications_only_when_asked_and_syscall_changes_only_when_asked() -> None:
    fake = FakeBackend()
    fake.load()
    fake.configure({}, agent_tgid=1)
    fake.set_scope(cgroups=[7])
    fake.set_process_events(True)
    fake.modify(10, path="/etc/passwd", cgroup=7)
    assert fake.process_records() == []  # modifications not asked for
    fake.set_process_events(True, syscalls=False, modify=True)
    fake.delete(10, path="/tmp/x", cgroup=7)  # the syscall-exit changes not asked for
    fake.modify(10, path="/etc/passwd", cgroup=7)
    (record,) = fake.process_records()
    doc = proc_to_ecs(record, boot_offset_ns=0)
    assert (doc["event"]["category"], doc["event"]["type"]) == (["file"], ["change"])
    assert doc["event"]["action"] == "modification"
    assert doc["file"] == {"path": "/etc/passwd", "name": "passwd", "directory": "/etc"}
    assert doc["kestrel"]["hook"] == "file_change"


def test_a_ptrace_attach_takes_elastic_defends_shape() -> None:
    fake = FakeBackend()
    fake.load()
    fake.configure({}, agent_tgid=1)
    fake.set_scope(cgroups=[7])
    fake.set_process_events(True)
    fake.ptrace_attach(10, child=20, request=0x4207, cgroup=7)  # PTRACE_INTERRUPT: not an attach
    fake.ptrace_attach(10, child=20, request=abi.PTRACE_SEIZE, cgroup=7)
    (record,) = fake.process_records()
    doc = proc_to_ecs(record, boot_offset_ns=0)
    assert (doc["event"]["category"], doc["event"]["type"], doc["event"]["action"]) == (
        ["process"], ["start"], "ptrace",
    )  # fmt: skip
    assert doc["process"]["Ext"]["ptrace"] == {"child_pid": 20, "request": "PTRACE_SEIZE"}
    assert doc["target"] == {"process": {"pid": 20}}
    assert doc["kestrel"]["hook"] == "syscall"


def test_a_tcp_close_is_a_disconnect_from_the_tasks_end() -> None:
    fake = FakeBackend()
    fake.load()
    fake.configure({}, agent_tgid=1)
    fake.set_scope(cgroups=[7])
    fake.set_process_events(True, syscalls=False)
    fake.tcp_close(10, local=("10.0.0.5", 40000), remote=("192.0.2.1", 443), cgroup=7)
    assert fake.process_records() == []  # not asked for
    fake.set_process_events(True)
    fake.tcp_close(10, local=("10.0.0.5", 40000), remote=("192.0.2.1", 443), cgroup=7)
    (record,) = fake.process_records()
    doc = proc_to_ecs(record, boot_offset_ns=0)
    assert (doc["event"]["category"], doc["event"]["type"], doc["event"]["action"]) == (
        ["network"], ["end"], "disconnect_received",
    )  # fmt: skip
    assert doc["source"] == {"ip": "10.0.0.5", "port": 40000}
    assert doc["destination"] == {"ip": "192.0.2.1", "port": 443}
    assert doc["network"] == {"type": "ipv4", "transport": "tcp"}
