"""A flood of denied calls: every kernel decision reaches the trail, one by one or counted in a signed record.

The outside probe of [Hardening] item 4: thousands of denials while the agent does not read, so that
the decision ring overflows. With the smallest rings (one page each), a deny rule scoped to the
test's cgroup, and an agent that only steps once the flood is over, the trail must hold exactly
as many decisions as the kernel counted: ``deny`` records plus the counts of the
``decisions_not_recorded`` records equal the hook's ``DENIES`` counter, and ``audit verify`` passes.
A second agent on the same pinned maps (and the state file beside the trail) repeats the flood:
the counts it reports are only what grew, never the first agent's again.

The hook is connect: on the compat plane it is the only inline deny (exec and open are kill
reactions there, one per process), on the LSM plane a deny like the others; one process makes every
attempt, so the count is exact. A second test checks that a batch holds decisions ahead of
telemetry. Both run on the host's compat plane and, in a guest with BPF-LSM, on the LSM plane too.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

from guard.agent.daemon import Agent, AgentSettings
from guard.agent.service import drops_state_path, make_backend
from guard.audit.chain import AuditWriter
from guard.audit.record import Kind, read_records
from guard.audit.verify import verify_logs
from guard.config import GuardConfig, apply_overrides
from guard.lsm.abi import Counter, Decision, ModeId
from guard.lsm.verdicts import Action, KernelPolicy, NetRule, build_tables
from guard.model import Hook
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy
from guard.signing import generate_keypair, load_signer, load_verifier
from tests.privileged.scoping import scoped_cgroup

pytestmark = [pytest.mark.privileged, pytest.mark.requires_feature("bcc")]

PLANES = [
    pytest.param(
        "compat",
        marks=[
            pytest.mark.requires_feature("cgroup_sock_addr"),
            pytest.mark.requires_feature("raw_tracepoint"),
            pytest.mark.requires_feature("send_signal"),
        ],
        id="compat",
    ),
    pytest.param("lsm", marks=[pytest.mark.requires_feature("lsm_program")], id="lsm"),
]

#: denied connects per agent: hundreds of times what a one-page ring holds
FLOOD = 3000
TARGET = ("127.66.7.7", 4444)
#: a destination a notify rule reports (an allowed event: telemetry)
NOTIFIED = ("127.66.8.8", 4444)
RULE = "flood_connect"
POLICY = f"""\
[[rule]]
id = "{RULE}"
name = "decision flood"
severity = "low"
action = "block"
query = '''network where destination.ip == "{TARGET[0]}" and destination.port == {TARGET[1]}'''
"""


def refused_in(cgroup: Path, attempts: int, *, first: tuple[tuple[str, int], ...] = ()) -> int:
    """Fork a child into ``cgroup`` that connects UDP sockets to ``first``, then ``attempts`` times to
    TARGET; return how many connects got EPERM."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        refused = -1
        try:
            os.close(read_end)
            (cgroup / "cgroup.procs").write_text("0")
            refused = 0
            for target in (*first, *[TARGET] * attempts):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    try:
                        s.connect(target)
                    except PermissionError:
                        refused += 1
        finally:
            os.write(write_end, refused.to_bytes(8, "little", signed=True))
            os._exit(0)
    os.close(write_end)
    data = os.read(read_end, 8)
    os.close(read_end)
    os.waitpid(pid, 0)
    return int.from_bytes(data, "little", signed=True)


@pytest.mark.parametrize("plane", PLANES)
def test_a_flood_of_denials_is_in_the_trail_exactly(
    plane: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, pin_dir: Path
) -> None:
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "flood.guard").write_text(POLICY)
    key, pub, _ = generate_keypair(tmp_path / "keys", "audit")
    trail = tmp_path / "log" / "audit.jsonl"
    cfg = apply_overrides(
        GuardConfig(),
        {
            "agent": {"pin_dir": str(pin_dir)},
            "audit": {"path": str(trail), "key_path": str(key)},
            "limits": {"ring_buffer_pages": 1, "decision_ring_buffer_pages": 1},
        },
    )
    compiled = compile_policy(load_policy(tmp_path / "policy"))
    cache = tmp_path_factory.mktemp("bcc")
    rounds: list[tuple[int, int]] = []  # (the kernel's DENIES counter, the drop table's total) per agent
    with scoped_cgroup() as cgroup:
        for _agent in range(2):  # the second one adopts the first one's pinned maps
            writer = AuditWriter(trail, load_signer(key), checkpoint_every=1000, checkpoint_seconds=3600)
            writer.open()
            agent = Agent(
                compiled,
                make_backend(plane, cfg, cache),
                writer,
                AgentSettings(scope_cgroups=(cgroup.stat().st_ino,), drops_state=drops_state_path(cfg)),
            )
            agent.start()
            try:
                assert refused_in(cgroup, FLOOD) == FLOOD  # the agent does not read meanwhile
                agent.step(timeout_ms=0)
                denies = agent.backend.counters(Hook.SOCKET_CONNECT)[Counter.DENIES]
                rounds.append((denies, sum(agent.backend.decision_drops().values())))
            finally:
                agent.stop("flood over")
                writer.close()

    records = read_records([trail])
    denied = [r for r in records if r["event"] == Kind.DENY.value]
    counted = [r for r in records if r["event"] == Kind.DECISIONS_NOT_RECORDED.value]
    assert {r["rule_id"] for r in denied} == {RULE}
    assert {(r["rule_id"], r["hook"], r["verdict"]) for r in counted} == {(RULE, "socket_connect", "deny")}
    counts = [r["detail"]["count"] for r in counted]  # type: ignore[index]
    assert [denies for denies, _ in rounds] == [FLOOD, 2 * FLOOD]  # pinned: the counter runs on
    assert denied  # the ring held some decisions ...
    assert sum(counts)  # ... and overflowed: both paths were taken
    assert len(denied) + sum(counts) == rounds[-1][0]
    assert sum(counts) == rounds[-1][1]  # the second agent reported only what grew
    assert counted[-1]["detail"]["total"] == rounds[-1][1]  # type: ignore[index]
    verifier = load_verifier(pub)
    result = verify_logs([trail], {verifier.key_id: verifier})
    assert result.ok, result.problem
    assert result.not_recorded == sum(counts)


@pytest.mark.parametrize("plane", PLANES)
def test_decisions_come_ahead_of_telemetry_in_a_batch(
    plane: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The plane reads the decision ring first: a later deny comes before earlier allowed events."""
    backend = make_backend(plane, GuardConfig(), tmp_path_factory.mktemp("bcc"), pin=False)
    backend.load()
    try:
        with scoped_cgroup() as cgroup:
            backend.set_scope(cgroups=[cgroup.stat().st_ino])
            backend.apply(
                build_tables(
                    KernelPolicy(
                        nets=(
                            NetRule(ipaddress.ip_network(f"{NOTIFIED[0]}/32"), NOTIFIED[1], 5, Action.NOTIFY),
                            NetRule(ipaddress.ip_network(f"{TARGET[0]}/32"), TARGET[1], 6),
                        )
                    )
                )
            )
            backend.configure({Hook.SOCKET_CONNECT: ModeId.ENFORCE}, agent_tgid=os.getpid())
            assert refused_in(cgroup, 1, first=(NOTIFIED,) * 3) == 1
            batch = [e for e in backend.poll_events(0) if e.hook == Hook.SOCKET_CONNECT.abi]
            backend.configure({}, agent_tgid=os.getpid())
    finally:
        backend.close()
    assert [(e.decision, e.rule_id) for e in batch] == [(Decision.DENIED, 6)] + [(Decision.ALLOWED, 5)] * 3
    assert batch[0].ts_ns > max(e.ts_ns for e in batch[1:])  # the deny happened last
