"""Process records from the kernel: a governed process's fork, exec (with its argv) and end.

Each test runs real programs in a cgroup it created, on the plane this kernel runs: BPF-LSM in the
guests, compat on the host. What is checked is what the kernel reported at the moment, never
/proc: the argv of a program that exits at once, its count, its image and working directory, the
credentials and the exit status, and that an argv too long for the record says so; the changes
a process makes at its syscalls' exits; the DNS it sends and reads back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from guard.lsm.abi import ModeId
from guard.lsm.bcc_backend import CompatBackend, LsmBackend
from guard.lsm.events import boot_offset_ns, record_to_ecs
from guard.model import HOOKS
from tests.privileged.resolver import ANSWER_IP, loopback_resolver

pytestmark = [pytest.mark.privileged, pytest.mark.requires_feature("bcc")]

IN_GUEST = os.environ.get("VMTEST_GUEST") == "1"


@pytest.fixture
def dp(request: pytest.FixtureRequest, scope: Path) -> Iterator[LsmBackend | CompatBackend]:
    """The plane this machine enforces with, governing only the test's cgroup, process records on."""
    if IN_GUEST:
        if not request.config.getoption("--run-privileged", default=False):
            pytest.skip("privileged")
        plane = request.getfixturevalue("plane")
    else:
        plane = request.getfixturevalue("compat")
    plane.configure({hook: ModeId.DETECT for hook in HOOKS}, agent_tgid=os.getpid())
    plane.set_scope(cgroups=[scope.stat().st_ino])
    plane.set_process_events(True)
    try:
        yield plane
    finally:
        plane.set_process_events(False)


def run_in(scope: Path, argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Run ``argv`` in the scope (moved there before it execs) and return its exit status."""

    def enter() -> None:
        (scope / "cgroup.procs").write_text(str(os.getpid()))

    return subprocess.run(argv, cwd=cwd, env=env, preexec_fn=enter, check=False).returncode


def python_in(scope: Path, code: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in the scope and return what it printed (it must succeed)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        preexec_fn=lambda: (scope / "cgroup.procs").write_text(str(os.getpid())),
        capture_output=True,
        text=True,
        check=True,
    )


def docs(
    plane: LsmBackend | CompatBackend,
    want: int,
    env_vars: frozenset[str] = frozenset(),
    *,
    hook: str | None = None,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The process-ring documents (of ``kestrel.hook`` ``hook`` when given) read within a few
    seconds: until ``want`` of them arrived, or ``until`` holds for what arrived."""
    out: list[dict[str, Any]] = []
    offset = boot_offset_ns()
    done = until or (lambda got: len(got) >= want)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not done(out):
        plane.poll_events(100)
        got = [record_to_ecs(r, boot_offset_ns=offset, env_vars=env_vars) for r in plane.process_records()]
        out += [d for d in got if hook is None or d["kestrel"]["hook"] == hook]
    return out


def test_an_exec_reports_its_argv_image_directory_and_credentials(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    status = run_in(
        scope, ["/bin/sh", "-c", 'exec /bin/echo one "two words" three > /dev/null'], cwd=tmp_path
    )
    assert status == 0
    found = docs(dp, 2)
    execs = [d for d in found if d["event"]["action"] == "exec"]
    echo = next(d for d in execs if d["process"].get("name") == "echo")["process"]
    assert echo["args"] == ["/bin/echo", "one", "two words", "three"]
    assert echo["args_count"] == 4
    assert echo["command_line"] == "/bin/echo one two words three"
    assert echo["executable"] == os.path.realpath("/bin/echo")
    assert echo["working_directory"] == str(tmp_path)
    assert echo["user"]["id"] == str(os.geteuid())
    assert echo["real_user"]["id"] == str(os.getuid())
    shell = next(d for d in execs if d["process"]["args"][:2] == ["/bin/sh", "-c"])["process"]
    assert echo["pid"] == shell["pid"]  # exec replaced the shell's image: the same process, new argv
    assert "CAP_SYS_ADMIN" in echo["thread"]["capabilities"]["effective"]  # the test runs as root


def test_fork_and_end_carry_the_child_the_parent_and_the_exit_status(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    status = run_in(scope, ["/bin/sh", "-c", "/bin/true; exit 7"], cwd=tmp_path)
    assert status == 7
    found = docs(dp, 5)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for d in found:
        by_action.setdefault(d["event"]["action"], []).append(d)
    shell = next(d for d in by_action["exec"] if d["process"]["args"][0] == "/bin/sh")["process"]
    fork = next(d for d in by_action["fork"] if d["process"]["parent"]["pid"] == shell["pid"])
    assert fork["event"]["type"] == ["start"]
    assert fork["process"]["parent"]["entity_id"] == shell["entity_id"]
    child = fork["process"]["pid"]
    true = next(d for d in by_action["exec"] if d["process"]["pid"] == child)["process"]
    assert true["args"] == ["/bin/true"]
    assert true["entity_id"] == fork["process"]["entity_id"]  # an exec keeps the entity
    ends = {d["process"]["pid"]: d for d in by_action["end"]}
    assert ends[child]["process"]["exit_code"] == 0
    assert ends[shell["pid"]]["process"]["exit_code"] == 7
    assert ends[shell["pid"]]["event"]["type"] == ["end"]


def test_an_argv_longer_than_the_record_is_truncated_and_says_so(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    long = ["x" * 100] * 60  # 6,060 bytes of argv, more than the record keeps
    assert run_in(scope, ["/bin/echo", *long], cwd=tmp_path) == 0
    echo = next(d for d in docs(dp, 1) if d["event"]["action"] == "exec")
    assert echo["kestrel"]["truncated"] == ["process.args"]
    assert echo["process"]["args_count"] == 61  # the kernel's count, not the kept part's
    kept = echo["process"]["args"]
    assert kept[0] == "/bin/echo"
    assert 30 < len(kept) < 61
    assert all(arg == "x" * 100 for arg in kept[1:-1])


def test_nothing_is_reported_outside_the_scope_or_when_not_asked(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    subprocess.run(["/bin/true", "outside"], check=True)
    assert not [d for d in docs(dp, 1) if "outside" in d["process"].get("args", [])]
    dp.set_process_events(False)
    assert run_in(scope, ["/bin/true", "not-asked"], cwd=tmp_path) == 0
    assert docs(dp, 1) == []


def test_allowed_environment_variables_are_carried_and_no_others(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    dp.set_process_events(True, env_vars=True)
    env = {"PATH": "/usr/bin:/bin", "HISTFILE": "/dev/null", "SECRET_TOKEN": "do-not-carry"}
    assert run_in(scope, ["/bin/true"], cwd=tmp_path, env=env) == 0
    true = next(
        d for d in docs(dp, 1, frozenset({"HISTFILE", "LD_PRELOAD"})) if d["event"]["action"] == "exec"
    )
    assert true["process"]["env_vars"] == ["HISTFILE=/dev/null"]
    assert true["kestrel"]["truncated"] == []


def test_deletions_and_renames_are_reported_with_absolute_paths(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    script = (
        "touch a.txt sub/x && mv a.txt b.log && rm b.log && "
        # renameat/unlinkat relative to a directory fd other than the working directory
        f'{sys.executable} -c \'import os; d = os.open("sub", os.O_RDONLY); os.rename("x", "y", src_dir_fd=d, dst_dir_fd=d); '
        'os.unlink("y", dir_fd=d)\''
    )
    assert run_in(scope, ["/bin/sh", "-c", script], cwd=tmp_path) == 0
    changes = docs(dp, 4, hook="file_change")  # the run is over: its records are in the ring
    seen = [
        (d["event"]["action"], d["file"]["path"], d["file"].get("Ext", {}).get("original", {}).get("path"))
        for d in changes
    ]
    assert seen == [
        ("rename", f"{tmp_path}/b.log", f"{tmp_path}/a.txt"),
        ("deletion", f"{tmp_path}/b.log", None),
        ("rename", f"{sub}/y", f"{sub}/x"),
        ("deletion", f"{sub}/y", None),
    ]
    assert changes[0]["event"]["type"] == ["change"]
    assert changes[1]["event"]["type"] == ["deletion"]
    assert changes[1]["process"]["name"] == "rm"
    assert changes[0]["file"]["extension"] == "log"


def test_id_changes_memfds_and_accepted_connections_are_reported(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    code = (
        "import os, socket\n"
        "os.close(os.memfd_create('stage2'))\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "c = socket.socket(); c.connect(s.getsockname()); a, _ = s.accept()\n"
        "port, peer = s.getsockname()[1], c.getsockname()[1]\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "print(port, peer)\n"
    )
    done = python_in(scope, code, cwd=tmp_path)
    port, peer = (int(x) for x in done.stdout.split())
    want = {"memfd_create", "connection_accepted", "gid_change", "uid_change"}
    got = docs(dp, 0, hook="syscall", until=lambda got: want <= {d["event"]["action"] for d in got})
    found = {d["event"]["action"]: d for d in got if d["event"]["action"] != "disconnect_received"}
    assert set(found) == want  # (its exit closes the two connected sockets: disconnects, tested below)
    assert found["memfd_create"]["process"]["Ext"]["memfd"]["name"] == "stage2"
    accepted = found["connection_accepted"]
    assert accepted["event"]["category"] == ["network"]
    assert accepted["source"] == {"ip": "127.0.0.1", "port": peer}
    assert accepted["destination"] == {"ip": "127.0.0.1", "port": port}
    assert found["gid_change"]["group"]["id"] == "65534"
    assert found["uid_change"]["user"]["id"] == "65534"
    assert found["uid_change"]["event"]["type"] == ["change"]


def test_a_tcp_connection_the_task_closes_is_a_disconnect(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    code = (
        "import socket\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "c = socket.socket(); c.connect(s.getsockname()); a, _ = s.accept()\n"
        "port, peer = s.getsockname()[1], c.getsockname()[1]\n"
        "c.close()\n"  # the client closes first: ESTABLISHED -> FIN_WAIT1
        "a.recv(1)\n"  # the server sees the end (CLOSE_WAIT), then closes: -> LAST_ACK
        "a.close()\n"
        "print(port, peer)\n"
    )
    port, peer = (int(x) for x in python_in(scope, code, cwd=tmp_path).stdout.split())
    found = docs(
        dp,
        0,
        hook="syscall",
        until=lambda got: sum(d["event"]["action"] == "disconnect_received" for d in got) >= 2,
    )
    closes = [d for d in found if d["event"]["action"] == "disconnect_received"]
    assert [(d["source"]["port"], d["destination"]["port"]) for d in closes] == [(peer, port), (port, peer)]
    assert closes[0]["event"]["type"] == ["end"]
    assert closes[0]["network"] == {"type": "ipv4", "transport": "tcp"}


def test_ownership_xattr_and_mount_changes_are_reported(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "mnt").mkdir()
    code = (
        "import os, subprocess\n"
        "os.chown('f', 65534, 65534)\n"
        "try:\n"
        "    os.setxattr('f', 'user.kestrel', b'1'); print('xattr')\n"
        "except OSError:\n"
        "    print('no-xattr')\n"  # a filesystem without user xattrs: nothing to report
        "subprocess.run(['unshare', '-m', 'sh', '-c', 'mount -t tmpfs none mnt && umount mnt'], check=True)\n"
    )
    done = python_in(scope, code, cwd=tmp_path)
    want = {"chown", "mount", "unmount"} | (
        {"extended_attributes"} if "no-xattr" not in done.stdout else set()
    )
    # unshare's own mount (making / private) comes first: the last mount and unmount are the test's
    changes = docs(dp, 0, hook="file_change", until=lambda got: want <= {d["event"]["action"] for d in got})
    found = {d["event"]["action"]: d for d in changes}
    assert want <= set(found)
    assert found["chown"]["file"]["path"] == f"{tmp_path}/f"
    assert found["chown"]["event"]["type"] == ["change"]
    assert found["mount"]["file"]["path"] == f"{tmp_path}/mnt"
    assert found["unmount"]["file"]["path"] == f"{tmp_path}/mnt"


def test_the_first_write_through_each_open_file_is_a_modification(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("before\n")
    dp.set_process_events(True, modify=True)
    code = (
        "import os\n"
        "fd = os.open('notes.txt', os.O_WRONLY | os.O_APPEND)\n"
        "os.write(fd, b'one\\n'); os.write(fd, b'two\\n')\n"  # one event for the open file
        "os.close(fd)\n"
        "fd = os.open('notes.txt', os.O_RDWR)\n"  # a new open: reported again, by ftruncate
        "os.ftruncate(fd, 0); os.write(fd, b'x')\n"
        "os.close(fd)\n"
        "r = os.open('notes.txt', os.O_RDONLY); os.read(r, 10); os.close(r)\n"  # a read: nothing
        "p, w = os.pipe(); os.write(w, b'x')\n"  # not a regular file: nothing
    )
    python_in(scope, code, cwd=tmp_path)
    # the child's own write of its pid to cgroup.procs (it joins the scope) is one too: left out
    found = [d for d in docs(dp, 3, hook="file_change") if d["file"]["path"].startswith(str(tmp_path))]
    assert [(d["event"]["action"], d["file"]["path"]) for d in found] == [
        ("modification", f"{tmp_path}/notes.txt"),
        ("modification", f"{tmp_path}/notes.txt"),
    ]
    assert found[0]["event"]["type"] == ["change"]
    assert found[0]["file"]["extension"] == "txt"
    assert docs(dp, 1, hook="file_change") == []  # and no more


def test_a_ptrace_seize_is_reported_with_its_tracee(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path
) -> None:
    code = (
        "import ctypes, subprocess\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        "assert libc.ptrace(0x4206, child.pid, 0, 0) == 0, ctypes.get_errno()\n"  # PTRACE_SEIZE
        "libc.ptrace(0x4206, child.pid, 0, 0)\n"  # again: refused (EPERM), not reported
        "child.kill(); child.wait()\n"
        "print(child.pid)\n"
    )
    child = int(python_in(scope, code, cwd=tmp_path).stdout)
    found = docs(dp, 0, hook="syscall", until=lambda got: any(d["event"]["action"] == "ptrace" for d in got))
    (seize,) = [d for d in found if d["event"]["action"] == "ptrace"]
    assert (seize["event"]["type"], seize["event"]["action"]) == (["start"], "ptrace")
    assert seize["process"]["Ext"]["ptrace"] == {"child_pid": child, "request": "PTRACE_SEIZE"}
    assert seize["target"] == {"process": {"pid": child}}


@pytest.fixture
def resolver() -> Iterator[str]:
    with loopback_resolver() as address:
        yield address


def test_dns_queries_and_answers_are_reported_whatever_the_calls(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path, resolver: str
) -> None:
    dp.set_process_events(True, dns=True)
    # the four ways resolvers talk to a server: unconnected sendto/recvfrom (musl), connected
    # write/read (Go), sendmsg/recvmsg, and send/recv on a connected socket (glibc, besides sendmmsg)
    code = (
        "import os, socket, struct\n"
        f"server = ({resolver!r}, 53)\n"
        "def query(name, ident):\n"
        "    labels = b''.join(bytes([len(p)]) + p.encode() for p in name.split('.'))\n"
        "    return struct.pack('>HHHHHH', ident, 0x0100, 1, 0, 0, 0) + labels + b'\\0\\0\\1\\0\\1'\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.sendto(query('one.example.top', 1), server); s.recvfrom(512)\n"
        "c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.connect(server)\n"
        "os.write(c.fileno(), query('two.example.top', 2)); os.read(c.fileno(), 512)\n"
        "c.sendmsg([query('three.example.top', 3)]); c.recvmsg(512)\n"
        "c.send(query('four.example.top', 4)); c.recv(512)\n"
        "print(os.getpid())\n"
    )
    pid = int(python_in(scope, code, cwd=tmp_path).stdout)
    names = ("one", "two", "three", "four")
    found = docs(dp, 2 * len(names), hook="dns")
    seen = [(d["event"]["action"], d["dns"]["question"]["name"]) for d in found]
    assert seen == [
        (action, f"{name}.example.top") for name in names for action in ("lookup_requested", "lookup_result")
    ]
    for d in found:
        assert d["process"]["pid"] == pid
        assert d["event"]["category"] == ["network", "dns"]
        assert d["network"]["protocol"] == "dns"
        assert d["dns"]["question"]["type"] == "A"
    request, result = found[0], found[1]
    assert request["destination"] == {"ip": resolver, "port": 53}
    assert request["dns"]["type"] == "query"
    assert result["source"] == {"ip": resolver, "port": 53}
    assert result["dns"]["resolved_ip"] == [ANSWER_IP]
    assert result["dns"]["response_code"] == "NOERROR"
    assert result["dns"]["answers"] == [
        {"name": "one.example.top", "type": "A", "class": "IN", "ttl": 60, "data": ANSWER_IP}
    ]


def test_the_system_resolver_s_lookups_are_reported(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path, resolver: str
) -> None:
    """glibc's resolver (getent, as any program resolving a name): A and AAAA sent at once with
    sendmmsg, the answers read with recvfrom; resolv.conf names the test's server in a private
    mount namespace of the child's own."""
    dp.set_process_events(True, dns=True)
    (tmp_path / "resolv.conf").write_text(f"nameserver {resolver}\noptions attempts:1 timeout:2\n")
    script = "mount --bind resolv.conf /etc/resolv.conf && exec getent ahosts c2.example.xyz"
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        cwd=tmp_path,
        preexec_fn=lambda: (scope / "cgroup.procs").write_text(str(os.getpid())),
        capture_output=True,
        text=True,
        check=False,
    )
    assert ANSWER_IP in done.stdout, done.stderr
    found = docs(dp, 0, hook="dns", until=lambda got: any(d["dns"].get("resolved_ip") for d in got))
    assert {d["process"]["name"] for d in found} == {"getent"}
    assert {d["dns"]["question"]["name"] for d in found} == {"c2.example.xyz"}
    requested = [d for d in found if d["event"]["action"] == "lookup_requested"]
    results = [d for d in found if d["event"]["action"] == "lookup_result"]
    assert requested
    assert requested[0]["dns"]["question"]["type"] in ("A", "AAAA")
    assert [d["dns"]["resolved_ip"] for d in results if "resolved_ip" in d["dns"]] == [[ANSWER_IP]]


def test_dns_is_reported_only_when_asked(
    dp: LsmBackend | CompatBackend, scope: Path, tmp_path: Path, resolver: str
) -> None:
    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.sendto(bytes.fromhex('0001010000010000000000000378797a0000010001'), ({resolver!r}, 53))\n"
        "s.recvfrom(512)\n"
    )
    python_in(scope, code, cwd=tmp_path)
    assert docs(dp, 1, hook="dns") == []
