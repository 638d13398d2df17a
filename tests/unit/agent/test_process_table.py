"""The agent's process table fed by the kernel's process records (guard.agent.processes.ProcessCache)."""

from __future__ import annotations

import os
import sys
from typing import Any

from guard.agent.processes import ProcessCache, proc_start_ticks


def proc_doc(action: str, pid: int, start: int, ppid: int, pstart: int, **process: Any) -> dict[str, Any]:
    etype = "end" if action == "end" else "start"
    return {
        "event": {"category": ["process"], "type": [etype], "action": action},
        "process": {"pid": pid, "entity_id": f"{pid}-{start}", "parent": {"pid": ppid, "entity_id": f"{ppid}-{pstart}"},
                    **process},
        "kestrel": {"hook": "process"},
    }  # fmt: skip


def file_doc(pid: int, start: int, ppid: int, pstart: int) -> dict[str, Any]:
    return {
        "event": {"category": ["file"], "action": "open"},
        "process": {
            "pid": pid,
            "entity_id": f"{pid}-{start}",
            "parent": {"pid": ppid, "entity_id": f"{ppid}-{pstart}"},
        },
        "file": {"path": "/etc/shadow"},
        "kestrel": {"hook": "file_open"},
    }


def test_exec_fork_exec_builds_the_lineage_every_event_carries() -> None:
    table = ProcessCache(read_proc=False)
    shell = dict(executable="/usr/bin/bash", name="bash", args=["bash", "-i"], args_count=2,
                 command_line="bash -i", working_directory="/root", user={"id": "0", "name": "root"})  # fmt: skip
    table.enrich(proc_doc("exec", 10, 1, 1, 0, **shell))
    fork = table.enrich(proc_doc("fork", 11, 2, 10, 1, name="bash"))
    assert fork["process"]["executable"] == "/usr/bin/bash"  # a fork runs its parent's image
    assert fork["process"]["parent"]["args"] == ["bash", "-i"]
    table.enrich(proc_doc("exec", 11, 2, 10, 1, executable="/usr/bin/cat", name="cat", args=["cat", "/etc/shadow"],
                          args_count=2, command_line="cat /etc/shadow", session_leader={"pid": 10}))  # fmt: skip
    opened = table.enrich(file_doc(11, 2, 10, 1))
    p = opened["process"]
    assert (p["executable"], p["args"], p["command_line"]) == (
        "/usr/bin/cat",
        ["cat", "/etc/shadow"],
        "cat /etc/shadow",
    )
    assert p["parent"]["name"] == "bash"
    assert p["parent"]["command_line"] == "bash -i"
    assert p["parent"]["working_directory"] == "/root"


def test_leaders_are_named_by_pid_and_filled_from_the_table() -> None:
    table = ProcessCache(read_proc=False)
    table.enrich(proc_doc("exec", 10, 1, 1, 0, executable="/usr/sbin/sshd", name="sshd", args=["sshd"]))
    doc = table.enrich(proc_doc("exec", 12, 3, 10, 1, name="id", args=["id"], session_leader={"pid": 10}))
    leader = doc["process"]["session_leader"]
    assert leader["entity_id"] == "10-1"
    assert leader["name"] == "sshd"
    assert leader["executable"] == "/usr/sbin/sshd"


def test_an_end_keeps_what_was_known_and_the_event_carries_it() -> None:
    table = ProcessCache(read_proc=False)
    table.enrich(proc_doc("exec", 10, 1, 1, 0, executable="/usr/bin/nc", name="nc", args=["nc", "-l"]))
    end = table.enrich(proc_doc("end", 10, 1, 1, 0, exit_code=0))
    assert end["process"]["args"] == ["nc", "-l"]
    assert end["process"]["exit_code"] == 0
    info = table.get("10-1")
    assert info is not None
    assert info.ended


def test_a_recycled_pid_is_another_entity() -> None:
    table = ProcessCache(read_proc=False)
    table.enrich(proc_doc("exec", 10, 1, 1, 0, executable="/usr/bin/old", args=["old"]))
    doc = table.enrich(file_doc(10, 99, 1, 0))  # the same pid, another start time: never seen
    assert "executable" not in doc["process"]


def test_the_table_is_bounded() -> None:
    table = ProcessCache(capacity=3, read_proc=False)
    for pid in range(10):
        table.enrich(proc_doc("exec", pid + 100, 1, 1, 0, args=[str(pid)]))
    assert len(table) == 3
    assert table.get("100-1") is None
    assert table.get("109-1") is not None


def test_the_entry_leader_is_the_session_leader_typed_by_how_it_was_entered() -> None:
    table = ProcessCache(read_proc=False)
    table.enrich(proc_doc("exec", 5, 1, 1, 0, executable="/usr/sbin/sshd", name="sshd", args=["sshd"]))
    table.enrich(proc_doc("exec", 10, 2, 5, 1, executable="/usr/bin/bash", name="bash", args=["-bash"]))
    doc = table.enrich(proc_doc("exec", 12, 3, 10, 2, name="id", args=["id"], session_leader={"pid": 10}))
    entry = doc["process"]["entry_leader"]
    assert entry["entity_id"] == "10-2"
    assert entry["name"] == "bash"
    assert entry["entry_meta"] == {"type": "sshd"}


def test_a_uid_change_gives_the_process_its_new_ids_for_later_events() -> None:
    table = ProcessCache(read_proc=False)
    table.enrich(proc_doc("exec", 10, 1, 1, 0, executable="/tmp/x", args=["/tmp/x"], user={"id": "1000"}))
    change = proc_doc("uid_change", 10, 1, 1, 0, user={"id": "0"})
    change["kestrel"]["hook"] = "syscall"
    assert table.enrich(change)["process"]["executable"] == "/tmp/x"
    assert table.enrich(file_doc(10, 1, 1, 0))["process"]["user"] == {"id": "0"}


def test_the_seed_knows_processes_that_ran_before_the_agent_and_no_recycled_pid() -> None:
    table = ProcessCache()
    assert table.seed() > 0
    me = os.getpid()
    start_ns = proc_start_ticks(me) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")  # type: ignore[operator]
    parent_doc = file_doc(1234567, 1, me, start_ns)
    table.misses = 0
    assert table.enrich(parent_doc)["process"]["parent"]["executable"] == os.path.realpath(sys.executable)
    assert table.misses == 1  # the child (never seen) was read; the parent came from the seed
    other = ProcessCache()
    other.seed()
    recycled = other.enrich(file_doc(1234568, 1, me, start_ns + 10 * 1_000_000_000))  # same pid, later start
    assert other.misses == 2  # not the seeded process: read again
    assert recycled["process"]["parent"]["pid"] == me
