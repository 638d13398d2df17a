"""The compat data plane on this kernel: cgroup connect/sendmsg deny, tracepoint events, kill reaction.

Everything is scoped to a cgroup each test creates: outside it the same calls succeed. The plane
is loaded once per module (the ``compat`` fixture); a test that needs a plane of its own (restart,
agent death) pins its maps in a directory of its own. Each hook's call under every mode is in
tests/hook_scenarios.py (run by test_hook_scenarios.py).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from guard.actions.decisions import kernel_decision
from guard.audit.chain import AuditWriter
from guard.audit.record import Kind
from guard.audit.verify import verify_logs
from guard.lsm import abi, bpfsys
from guard.lsm.abi import Decision, ModeId
from guard.lsm.bcc_backend import SOCK_ADDR_PROGRAMS, CompatBackend
from guard.lsm.btf import Btf
from guard.lsm.events import boot_offset_ns
from guard.lsm.verdicts import (
    InodeRule,
    KernelPolicy,
    NetRule,
    PathRule,
    build_tables,
    kernel_dev,
)
from guard.model import Hook
from guard.signing import Signer, Verifier, key_id_of
from tests.privileged.kit import install
from tests.privileged.scoping import (
    PausedChild,
    connect_in,
    exec_action,
    loopback_listeners,
    open_in,
    ptrace_in,
    sendto_in,
    sleeper,
)

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("cgroup_sock_addr"),
    pytest.mark.requires_feature("raw_tracepoint"),
    pytest.mark.requires_feature("send_signal"),
    pytest.mark.requires_feature("bcc"),
    pytest.mark.skipif(
        os.environ.get("VMTEST_GUEST") == "1",
        reason="the compat backend is tested on the host (no guest time)",
    ),
]

EPERM = 1
ALL_HOOKS_EMIT = {hook: abi.HF_EMIT_ALL for hook in Hook}


def govern(plane: CompatBackend, scope: Path, policy: KernelPolicy, mode: ModeId = ModeId.ENFORCE) -> None:
    plane.set_scope(cgroups=[scope.stat().st_ino])
    plane.apply(build_tables(policy))
    plane.configure({hook: mode for hook in Hook}, agent_tgid=os.getpid())


def _net_policy(port: int) -> KernelPolicy:
    return KernelPolicy(
        nets=(
            NetRule(ipaddress.ip_network("127.0.0.0/8"), port, 11),
            NetRule(ipaddress.ip_network("::1/128"), port, 12),
        )
    )


# ----------------------------------------------------------------------------- network: inline deny


def test_connect_is_denied_in_scope_and_allowed_outside(compat: CompatBackend, scope: Path) -> None:
    with loopback_listeners() as port:
        govern(compat, scope, _net_policy(port))
        assert scope.stat().st_ino in compat.attachments()
        for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
            assert connect_in(scope, address, port) == EPERM, address
            assert connect_in(None, address, port) == 0, address
        assert connect_in(scope, "127.0.0.1", port + 1 if port < 65535 else port - 1) != EPERM  # other port
        events = [e for e in compat.poll_events(100) if e.hook == Hook.SOCKET_CONNECT.abi]
    denied = [e for e in events if e.decision == Decision.DENIED]
    assert len(denied) == 3
    assert {e.rule_id for e in denied} == {11, 12}
    assert all(e.port == port for e in denied)


def test_udp_sendto_is_denied_in_scope(compat: CompatBackend, scope: Path) -> None:
    govern(compat, scope, _net_policy(9))
    assert sendto_in(scope, "127.0.0.1", 9) == EPERM
    assert sendto_in(scope, "::ffff:127.0.0.1", 9) == EPERM
    assert sendto_in(None, "127.0.0.1", 9) == 0
    sends = [e for e in compat.poll_events(100) if e.flags & abi.EVF_SENDMSG]
    assert sends
    assert all(e.decision == Decision.DENIED for e in sends)


def test_scope_change_detaches_the_cgroup_programs(compat: CompatBackend, scope: Path) -> None:
    govern(compat, scope, _net_policy(9))
    cgroup = scope.stat().st_ino
    fd = os.open(scope, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(bpfsys.prog_query(fd, SOCK_ADDR_PROGRAMS[0][1])) == 1
        compat.set_scope()
        assert cgroup not in compat.attachments()
        assert bpfsys.prog_query(fd, SOCK_ADDR_PROGRAMS[0][1]) == []
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- events: tracepoints


def test_exec_open_and_ptrace_events_carry_pid_path_and_inode(
    compat: CompatBackend, scope: Path, tmp_path: Path
) -> None:
    exe = install(tmp_path / "tool")
    data = tmp_path / "data.txt"
    data.write_text("x")
    govern(compat, scope, KernelPolicy(hook_flags=ALL_HOOKS_EMIT))
    child = PausedChild(scope, exec_action(str(exe)))
    assert child.release() == 0
    reader = PausedChild(scope, lambda: os.close(os.open(data, os.O_RDONLY)))
    assert reader.release() == 0
    with sleeper() as target:
        tracer_err = ptrace_in(scope, target)
        tracer_events = [e for e in compat.poll_events(100)]
    assert tracer_err == 0
    by_hook: dict[int, list[abi.Event]] = {}
    for e in tracer_events:
        by_hook.setdefault(e.hook, []).append(e)

    st = exe.stat()
    execs = [e for e in by_hook[Hook.BPRM_CHECK_SECURITY.abi] if e.tgid == child.pid]
    assert len(execs) == 1
    assert os.fsdecode(execs[0].path) == os.path.realpath(exe)
    assert (execs[0].dev, execs[0].ino) == (kernel_dev(st.st_dev), st.st_ino)

    st = data.stat()
    opens = [e for e in by_hook[Hook.FILE_OPEN.abi] if e.tgid == reader.pid and e.ino == st.st_ino]
    assert len(opens) == 1
    assert os.fsdecode(opens[0].path) == os.path.realpath(data)
    assert opens[0].dev == kernel_dev(st.st_dev)

    ptraces = by_hook[Hook.PTRACE_ACCESS_CHECK.abi]
    assert [e.target_tgid for e in ptraces] == [target]
    assert all(e.decision == Decision.ALLOWED for e in tracer_events)


def test_paths_are_walked_across_mounts_and_a_deep_path_is_flagged(
    compat: CompatBackend, scope: Path, tmp_path: Path
) -> None:
    from tests.privileged.kit import tmpfs

    with tmpfs(tmp_path / "mnt") as mnt:
        nested = mnt / "a" / "b"
        nested.mkdir(parents=True)
        target = nested / "f"
        target.write_text("x")
        deep = mnt.joinpath(*[f"d{i}" for i in range(20)])
        deep.mkdir(parents=True)
        (deep / "g").write_text("x")
        govern(compat, scope, KernelPolicy(hook_flags=ALL_HOOKS_EMIT))
        assert open_in(scope, target) == 0
        assert open_in(scope, deep / "g") == 0
        events = [e for e in compat.poll_events(100) if e.hook == Hook.FILE_OPEN.abi]
    walked = [e for e in events if os.fsdecode(e.path) == os.path.realpath(target)]
    assert len(walked) == 1, [e.path for e in events]
    flagged = [e for e in events if e.flags & abi.EVF_PATH_TOO_LONG]
    assert len(flagged) == 1
    assert flagged[0].path == b""


# ----------------------------------------------------------------------------- kill reaction


def test_blocked_exec_in_scope_is_killed_and_audited_and_runs_outside(
    compat: CompatBackend, scope: Path, tmp_path: Path
) -> None:
    exe = install(tmp_path / "blocked")
    st = exe.stat()
    govern(
        compat,
        scope,
        KernelPolicy(inodes=(InodeRule(Hook.BPRM_CHECK_SECURITY, kernel_dev(st.st_dev), st.st_ino, 21),)),
    )
    child = PausedChild(scope, exec_action(str(exe)))
    assert child.killed_by() == signal.SIGKILL
    assert PausedChild(None, exec_action(str(exe))).release() == 0
    events = [e for e in compat.poll_events(100) if e.hook == Hook.BPRM_CHECK_SECURITY.abi]
    assert [(e.decision, e.tgid, e.rule_id) for e in events] == [(Decision.KILLED, child.pid, 21)]

    log = tmp_path / "audit.jsonl"
    offset = boot_offset_ns()
    key = Ed25519PrivateKey.generate()
    signer = Signer(key, key_id_of(key.public_key()))
    verifier = Verifier(key.public_key(), signer.key_id)
    with AuditWriter(log, signer, host="test") as writer:
        for event in events:
            decision = kernel_decision(
                event, backend="compat", boot_offset_ns=offset, rule_ids={21: "block-tool"}
            )
            assert decision is not None
            record = writer.append(decision)
    assert record["event"] == Kind.KILL.value
    assert record["rule_id"] == "block-tool"
    assert record["verdict"] == "kill"
    process = record["process"]
    assert isinstance(process, dict)
    assert process["pid"] == child.pid
    assert process["exe"] == os.path.realpath(exe)
    assert verify_logs([log], {verifier.key_id: verifier}).ok


def test_blocked_open_by_path_is_killed(compat: CompatBackend, scope: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_text("k")
    govern(
        compat,
        scope,
        KernelPolicy(paths=(PathRule(Hook.FILE_OPEN, "exact", os.path.realpath(secret), 31),)),
    )
    child = PausedChild(scope, lambda: os.close(os.open(secret, os.O_RDONLY)))
    assert child.killed_by() == signal.SIGKILL
    assert open_in(None, secret) == 0
    assert open_in(scope, tmp_path / "other") == 2  # ENOENT: the open itself is untouched
    events = [e for e in compat.poll_events(100) if e.decision == Decision.KILLED]
    assert [(e.hook, e.tgid, e.rule_id) for e in events] == [(Hook.FILE_OPEN.abi, child.pid, 31)]


# ----------------------------------------------------------------------------- restart and agent death

_AGENT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from guard.lsm.abi import ModeId
    from guard.model import Hook
    from guard.lsm.bcc_backend import CompatBackend
    from guard.lsm.btf import Btf
    from guard.lsm.verdicts import build_tables
    import pickle
    cache, pins, cgroup, policy = sys.argv[1], sys.argv[2], int(sys.argv[3]), pickle.loads(bytes.fromhex(sys.argv[4]))
    plane = CompatBackend(Btf.from_file(), Path(cache), pin_dir=Path(pins))
    plane.load()
    plane.set_scope(cgroups=[cgroup])
    plane.apply(build_tables(policy))
    plane.configure({hook: ModeId.ENFORCE for hook in Hook}, agent_tgid=os.getpid())
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_agent_death_keeps_network_denies_and_drops_kill_reactions_until_restart(
    scope: Path, tmp_path: Path, pin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import pickle

    exe = install(tmp_path / "blocked")
    st = exe.stat()
    policy = KernelPolicy(
        nets=_net_policy(9).nets,
        inodes=(InodeRule(Hook.BPRM_CHECK_SECURITY, kernel_dev(st.st_dev), st.st_ino, 21),),
    )
    cache = tmp_path_factory.mktemp("bcc-agent")
    repo = Path(__file__).resolve().parents[2]
    agent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _AGENT,
            str(cache),
            str(pin_dir),
            str(scope.stat().st_ino),
            pickle.dumps(policy).hex(),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline().strip() == "ready"
        assert PausedChild(scope, exec_action(str(exe))).killed_by() == signal.SIGKILL
        assert sendto_in(scope, "127.0.0.1", 9) == EPERM
    finally:
        agent.kill()
        agent.wait()
        if agent.stdout is not None:
            agent.stdout.close()
    # The agent died without closing: cgroup programs and pinned maps stay (network fails closed),
    # the tracepoints went with its fds (exec fails open).
    assert sendto_in(scope, "127.0.0.1", 9) == EPERM
    assert PausedChild(scope, exec_action(str(exe))).release() == 0

    successor = CompatBackend(Btf.from_file(), cache, pin_dir=pin_dir)
    successor.load()
    try:
        assert successor.adopted
        assert successor.modes()[Hook.SOCKET_CONNECT] == ModeId.ENFORCE
        assert successor.scope() == (frozenset({scope.stat().st_ino}), frozenset())
        fd = os.open(scope, os.O_RDONLY | os.O_DIRECTORY)
        try:  # the predecessor's programs are gone; ours are the only ones attached
            for _name, attach_type in SOCK_ADDR_PROGRAMS:
                assert len(bpfsys.prog_query(fd, attach_type)) == 1
        finally:
            os.close(fd)
        successor.configure(successor.modes(), agent_tgid=os.getpid())
        assert sendto_in(scope, "127.0.0.1", 9) == EPERM
        assert PausedChild(scope, exec_action(str(exe))).killed_by() == signal.SIGKILL
        # a new policy replaces the adopted tables: what it no longer holds is removed
        successor.apply(build_tables(KernelPolicy(nets=_net_policy(9).nets[:1])))
        assert PausedChild(scope, exec_action(str(exe))).release() == 0
        assert sendto_in(scope, "127.0.0.1", 9) == EPERM
    finally:
        successor.close()
    # a clean stop detaches everything: nothing is denied any more, even with the maps pinned
    assert sendto_in(scope, "127.0.0.1", 9) == 0
