"""Rules that test who calls as well as what, decided whole in the kernel, on both planes.

The [Inline] issue's newcomer rule, ``network where process.name == "nc" and destination.port ==
4444`` with ``action = "block"``, goes through the real loader and compiler (it is kernel-inline
with a test of the caller) into a loaded plane. Real programs act: OpenBSD netcat and curl, run in
the cgroup the test created, against loopback listeners. nc to 4444 is refused; curl to 4444 and
nc to 80 connect; nc outside the scope connects. Rules on the parent's name, on the caller's uid
and on "any caller but these" are checked the same way; so are an open (cat of a file refused, head
of it allowed) and an exec (a tool run by bash refused, by dash allowed), by EPERM on the lsm plane
and by the kill reaction on the compat plane. Every deny stays inside the test's cgroup.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from guard.errors import KernelUnsupportedError
from guard.lsm import abi
from guard.lsm.abi import Decision, ModeId
from guard.lsm.bcc_backend import CompatBackend, LsmBackend
from guard.lsm.verdicts import VerdictTables, build_tables
from guard.model import Hook
from guard.plan.compiler import INLINE, compile_policy
from guard.policy.loader import load_policy
from tests.privileged.kit import install, on_the_compat_plane, tmpfs
from tests.privileged.scoping import loopback_up

POLICY = """
[[rule]]
id = "nc-to-4444"
name = "the newcomer's rule"
severity = "high"
action = "block"
query = 'network where process.name == "nc" and destination.port == 4444'

[[rule]]
id = "bash-children-to-4445"
name = "a parent's name"
severity = "high"
action = "block"
query = 'network where process.parent.name == "bash" and destination.port == 4445'

[[rule]]
id = "root-to-4446"
name = "a uid"
severity = "high"
action = "block"
query = 'network where user.id == "0" and destination.port == 4446'

[[rule]]
id = "anyone-but-curl-to-4447"
name = "every caller but these"
severity = "high"
action = "block"
query = 'network where destination.port == 4447 and not process.name in ("curl")'
"""

PORTS = (80, 4444, 4445, 4446, 4447)
NOBODY = 65534


@contextmanager
def listeners(*ports: int) -> Iterator[None]:
    """TCP listeners on 127.0.0.1 that accept and close (a port already served is left as it is)."""
    loopback_up()
    with ExitStack() as stack:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue  # something serves it already: connecting still succeeds
            s.listen(16)
            stack.callback(s.close)
            threading.Thread(target=_serve, args=(s,), daemon=True).start()
        yield


def _serve(s: socket.socket) -> None:
    while True:
        try:
            conn, _ = s.accept()
        except OSError:
            return
        conn.close()


def run_in(cg: Path | None, argv: list[str], *, uid: int = 0) -> subprocess.CompletedProcess[str]:
    """Run a real program (moved into ``cg`` first, as ``uid``)."""

    def enter() -> None:
        if cg is not None:
            (cg / "cgroup.procs").write_text(str(os.getpid()))
        if uid:
            os.setgid(uid)
            os.setuid(uid)

    return subprocess.run(argv, preexec_fn=enter, capture_output=True, text=True, timeout=30, check=False)


def nc(cg: Path | None, port: int, *, uid: int = 0, via: str = "") -> subprocess.CompletedProcess[str]:
    """``nc -z`` to 127.0.0.1:port (``via``: run by that shell, so it is nc's parent)."""
    argv = ["nc", "-z", "-v", "-w", "5", "127.0.0.1", str(port)]
    if via:
        argv = [via, "-c", " ".join(argv) + "; exit $?"]
    return run_in(cg, argv, uid=uid)


def curl(cg: Path | None, port: int) -> subprocess.CompletedProcess[str]:
    return run_in(cg, ["curl", "-s", "-m", "5", f"http://127.0.0.1:{port}/"])


def refused(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode != 0 and "Operation not permitted" in done.stderr


def enforce(plane: LsmBackend | CompatBackend, scope: Path, tmp_path: Path) -> dict[str, int]:
    """Load POLICY through the compiler into ``plane``, enforced in ``scope``; rule id -> number."""
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    compiled = compile_policy(load_policy(path))
    assert {p.rule.id: p.path for p in compiled.plans} == dict.fromkeys(
        ("nc-to-4444", "bash-children-to-4445", "root-to-4446", "anyone-but-curl-to-4447"), INLINE
    )
    plane.set_scope(cgroups=[scope.stat().st_ino])
    plane.apply(build_tables(compiled.kernel))
    plane.configure({hook: ModeId.ENFORCE for hook in Hook}, agent_tgid=os.getpid())
    return {p.rule.id: p.number for p in compiled.plans}


def check(plane: LsmBackend | CompatBackend, scope: Path, tmp_path: Path) -> None:
    numbers = enforce(plane, scope, tmp_path)
    with listeners(*PORTS):
        # the newcomer's rule: nc to 4444 only
        assert refused(nc(scope, 4444))
        assert curl(scope, 4444).returncode != 7  # 7: could not connect
        assert nc(scope, 80).returncode == 0
        assert nc(None, 4444).returncode == 0  # outside the scope nothing is denied
        # a parent's name: nc run by bash is refused, by dash (sh) it connects
        assert refused(nc(scope, 4445, via="bash"))
        assert nc(scope, 4445, via="sh").returncode == 0
        # a uid: root is refused, nobody connects
        assert refused(nc(scope, 4446))
        assert nc(scope, 4446, uid=NOBODY).returncode == 0
        # every caller but curl
        assert refused(nc(scope, 4447))
        assert curl(scope, 4447).returncode != 7
        events = [e for e in plane.poll_events(200) if e.hook == Hook.SOCKET_CONNECT.abi]
    denied = [e for e in events if e.decision == Decision.DENIED]
    assert sorted((e.rule_id, e.comm.split(b"\0")[0], e.port) for e in denied) == sorted(
        [
            (numbers["nc-to-4444"], b"nc", 4444),
            (numbers["bash-children-to-4445"], b"nc", 4445),
            (numbers["root-to-4446"], b"nc", 4446),
            (numbers["anyone-but-curl-to-4447"], b"nc", 4447),
        ]
    )
    assert plane.counters(Hook.SOCKET_CONNECT)[abi.Counter.DENIES] >= 4


FILE_POLICY = """
[[rule]]
id = "cat-reads-the-secret"
name = "a file, for one caller"
severity = "high"
action = "block"
query = 'file where process.name == "cat" and file.path == "{secret}"'

[[rule]]
id = "bash-runs-the-tool"
name = "an exec, for one parent"
severity = "high"
action = "block"
query = 'process where process.parent.name == "bash" and process.executable == "{tool}"'
"""


def check_files(plane: LsmBackend | CompatBackend, scope: Path, tmp_path: Path, *, kills: bool) -> None:
    """Opens and execs decided on the caller: by EPERM (lsm), or by the kill reaction (compat)."""
    with tmpfs(tmp_path / "fs") as fs:
        secret = fs / "secret"
        secret.write_text("s3cret\n")
        tool = install(fs / "tool")
        path = tmp_path / "files.toml"
        path.write_text(FILE_POLICY.format(secret=secret, tool=tool))
        compiled = compile_policy(load_policy(path))
        assert [p.path for p in compiled.plans] == [INLINE, INLINE]
        plane.set_scope(cgroups=[scope.stat().st_ino])
        plane.apply(build_tables(compiled.kernel))
        plane.configure({hook: ModeId.ENFORCE for hook in Hook}, agent_tgid=os.getpid())
        cat = run_in(scope, ["cat", str(secret)])
        assert (cat.returncode == -9) if kills else refused(cat), cat
        assert run_in(scope, ["head", str(secret)]).stdout == "s3cret\n"
        assert run_in(None, ["cat", str(secret)]).returncode == 0
        by_bash = run_in(scope, ["bash", "-c", f"{tool}; exit $?"])  # bash forks: it is the parent
        assert by_bash.returncode == (137 if kills else 126), by_bash
        assert run_in(scope, ["sh", "-c", f"{tool}; exit $?"]).returncode == 0
        decided = [e for e in plane.poll_events(200) if e.decision in (Decision.DENIED, Decision.KILLED)]
        numbers = {p.rule.id: p.number for p in compiled.plans}
        assert sorted((e.hook, e.rule_id) for e in decided) == sorted(
            [
                (Hook.FILE_OPEN.abi, numbers["cat-reads-the-secret"]),
                (Hook.BPRM_CHECK_SECURITY.abi, numbers["bash-runs-the-tool"]),
            ]
        )
        plane.apply(VerdictTables())  # before the tmpfs goes


@pytest.mark.privileged
@pytest.mark.requires_feature("lsm_program")
@pytest.mark.requires_feature("bcc")
def test_rules_on_the_caller_lsm_plane(plane: LsmBackend, scope: Path, tmp_path: Path) -> None:
    check(plane, scope, tmp_path)
    if plane.path_verdicts:  # (5.10: no bpf_d_path in BPF-LSM, the plane refuses path rules)
        check_files(plane, scope, tmp_path, kills=False)


@on_the_compat_plane
def test_rules_on_the_caller_compat_plane(compat: CompatBackend, scope: Path, tmp_path: Path) -> None:
    if "subject_conditions" in compat.unavailable:
        with pytest.raises(KernelUnsupportedError, match="subject conditions"):
            enforce(compat, scope, tmp_path)
        return
    check(compat, scope, tmp_path)
    check_files(compat, scope, tmp_path, kills=True)


SWAPPED = POLICY.replace(
    'process.name == "nc" and destination.port == 4444', 'process.name == "curl" and destination.port == 4444'
)


@on_the_compat_plane
def test_a_swap_moves_the_callers_tests_to_the_other_bank(
    compat: CompatBackend, scope: Path, tmp_path: Path
) -> None:
    if "subject_conditions" in compat.unavailable:
        pytest.skip(compat.unavailable["subject_conditions"])
    enforce(compat, scope, tmp_path)
    path = tmp_path / "swapped.toml"
    path.write_text(SWAPPED)
    compat.apply(build_tables(compile_policy(load_policy(path)).kernel))
    with listeners(4444):
        assert nc(scope, 4444).returncode == 0  # the old rule is gone
        assert curl(scope, 4444).returncode == 7  # the new one denies curl
    atoms = {bytes(k.value) for k in compat._table("guard_subject_atoms")}
    assert b"curl" in atoms
    assert b"nc" not in atoms  # the old bank's values are dropped once no entry reads them
    compat.apply(build_tables(compile_policy(load_policy(tmp_path / "policy.toml")).kernel))
    with listeners(4444):
        assert refused(nc(scope, 4444))
