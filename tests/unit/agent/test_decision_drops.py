"""No kernel decision is lost silently: the agent audits what the decision ring had no room for.

Over the FakeBackend with a small decision ring: every denied call is either a ``deny`` record or
counted in a ``decisions_not_recorded`` record (rule, hook, verdict, count, window) followed by a
checkpoint; what was reported survives a restart in the state file beside the trail, so a pinned
table's counts are reported once, including what accumulated while no agent ran.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guard.agent.daemon import Agent, AgentSettings
from guard.agent.processes import ProcessCache
from guard.audit import query
from guard.audit.chain import AuditWriter
from guard.audit.record import Decision, Kind, read_records
from guard.audit.sink import AuditSink, MemoryAudit
from guard.audit.verify import verify_logs
from guard.cli.status import render_status
from guard.errors import ConfigError
from guard.lsm import abi
from guard.lsm.abi import Counter
from guard.lsm.backend import DropKey
from guard.lsm.fake import FakeBackend
from guard.model import Hook
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy
from guard.signing import generate_keypair, load_signer, load_verifier

POLICIES = Path(__file__).resolve().parents[3] / "policies"
CG = 77
SHADOW = "/etc/shadow"  # block_shadow_read denies opening it
OPEN = Hook.FILE_OPEN
COMPILED = compile_policy(load_policy(POLICIES))
SHADOW_RULE = next(n for n, r in COMPILED.rule_ids.items() if r == "block_shadow_read")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class WallClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def agent_on(
    fake: FakeBackend,
    audit: AuditSink,
    *,
    state: Path | None = None,
    wall: WallClock | None = None,
    mono: Clock | None = None,
    interval_s: float = 0.0,
) -> Agent:
    agent = Agent(
        COMPILED,
        fake,
        audit,
        AgentSettings(scope_cgroups=(CG,), drops_state=state, drops_interval_s=interval_s),
        processes=ProcessCache(read_proc=False),
        monotonic=mono or Clock(1000.0),
        alive=lambda tgid, start: False,
        list_processes=list,
        wall_clock=wall or WallClock(5_000),
    )
    agent.start()
    return agent


def flood(fake: FakeBackend, n: int, path: str = SHADOW) -> None:
    for i in range(n):
        fake.open(1000 + i, path=path, cgroup=CG)


def not_recorded(audit: MemoryAudit) -> list[Decision]:
    return [d for d in audit.decisions if d.kind is Kind.DECISIONS_NOT_RECORDED]


def test_every_denial_is_a_record_or_counted_in_one_then_signed(tmp_path: Path) -> None:
    fake, audit = FakeBackend(decision_capacity=5), MemoryAudit()
    agent = agent_on(fake, audit, wall=WallClock(7_000))
    flood(fake, 50)
    agent.step(timeout_ms=0)
    denies = [d for d in audit.decisions if d.kind is Kind.DENY]
    (record,) = not_recorded(audit)
    assert len(denies) == 5
    assert (record.rule_id, record.hook, record.verdict, record.outcome) == (
        "block_shadow_read",
        "file_open",
        "deny",
        "not_recorded",
    )
    assert record.detail["count"] == 45
    assert record.detail["total"] == 45
    assert record.detail["rule_number"] == SHADOW_RULE
    assert record.detail["decision"] == "denied"
    assert len(denies) + record.detail["count"] == fake.counters(OPEN)[Counter.DENIES] == 50
    # the counts are signed at once: a checkpoint follows the not-recorded record
    at = audit.decisions.index(record)
    assert audit.decisions[at + 1].kind is Kind.CHECKPOINT
    status = agent.status()["decisions_not_recorded"]
    assert isinstance(status, dict)
    assert (status["total"], status["records"], status["unattributed"]) == (45, 1, 0)
    text = render_status(agent.status())
    assert "decisions not recorded (decision ring full): 45, audited as counts in 1 record(s)" in text
    agent.step(timeout_ms=0)
    assert len(not_recorded(audit)) == 1  # nothing grew: nothing more


def test_the_window_runs_from_the_previous_read_to_this_one(tmp_path: Path) -> None:
    fake, audit, wall = FakeBackend(decision_capacity=0), MemoryAudit(), WallClock(1_000)
    agent = agent_on(fake, audit, wall=wall)  # the table is new: the first window opens at load
    wall.now = 2_000
    flood(fake, 3)
    agent.step(timeout_ms=0)
    wall.now = 3_000
    agent.step(timeout_ms=0)  # a read with nothing new narrows the next window
    wall.now = 4_000
    flood(fake, 2)
    agent.step(timeout_ms=0)
    first, second = not_recorded(audit)
    assert (first.detail["window_start_ns"], first.detail["window_end_ns"], first.ts) == (1_000, 2_000, 2_000)
    assert (second.detail["window_start_ns"], second.detail["window_end_ns"]) == (3_000, 4_000)
    assert (second.detail["count"], second.detail["total"]) == (2, 5)


def test_reads_are_throttled_and_stop_reports_the_rest(tmp_path: Path) -> None:
    fake, audit, mono = FakeBackend(decision_capacity=0), MemoryAudit(), Clock(1000.0)
    agent = agent_on(fake, audit, mono=mono, interval_s=10.0)
    flood(fake, 2)
    agent.step(timeout_ms=0)
    flood(fake, 3)
    mono.now += 5
    agent.step(timeout_ms=0)
    assert [d.detail["count"] for d in not_recorded(audit)] == [2]
    mono.now += 5
    agent.step(timeout_ms=0)
    flood(fake, 4)
    agent.stop("test")
    assert [d.detail["count"] for d in not_recorded(audit)] == [2, 3, 4]
    assert audit.decisions[-1].kind is Kind.AGENT_STOP


def test_a_restart_reports_only_what_grew_including_while_no_agent_ran(tmp_path: Path) -> None:
    state = tmp_path / "audit.decision-drops.json"
    fake, wall = FakeBackend(decision_capacity=0, pinned=True), WallClock(1_000)
    first = MemoryAudit()
    agent = agent_on(fake, first, state=state, wall=wall)
    flood(fake, 10)
    wall.now = 2_000
    agent.step(timeout_ms=0)
    assert [d.detail["count"] for d in not_recorded(first)] == [10]
    saved = json.loads(state.read_text())
    assert saved["reported"] == [[SHADOW_RULE, OPEN.abi, int(abi.Decision.DENIED), 10]]
    # the agent dies without a word; the pinned table keeps counting
    flood(fake, 7)
    second = MemoryAudit()
    wall.now = 9_000
    agent_on(fake, second, state=state, wall=wall).step(timeout_ms=0)
    (record,) = not_recorded(second)
    assert (record.detail["count"], record.detail["total"]) == (7, 17)
    assert record.detail["window_start_ns"] == 2_000  # the first agent's last read
    assert record.detail["table_epoch"] == fake.decision_drops_epoch()


def test_a_new_table_is_counted_from_zero_whatever_the_state_says(tmp_path: Path) -> None:
    state = tmp_path / "drops.json"
    fake = FakeBackend(decision_capacity=0)  # not pinned: every load is a new table
    agent = agent_on(fake, MemoryAudit(), state=state)
    flood(fake, 10)
    agent.step(timeout_ms=0)
    audit = MemoryAudit()
    agent = agent_on(fake, audit, state=state)
    flood(fake, 4)
    agent.step(timeout_ms=0)
    assert [d.detail["count"] for d in not_recorded(audit)] == [4]


def test_an_unreadable_state_reports_again_rather_than_never(tmp_path: Path) -> None:
    state = tmp_path / "drops.json"
    fake = FakeBackend(decision_capacity=0, pinned=True)
    agent = agent_on(fake, MemoryAudit(), state=state)
    flood(fake, 3)
    agent.step(timeout_ms=0)
    state.write_text("{not json")
    audit = MemoryAudit()
    agent_on(fake, audit, state=state).step(timeout_ms=0)
    (record,) = not_recorded(audit)
    assert (record.detail["count"], record.detail["window_start_ns"]) == (3, None)


def test_drops_the_table_could_not_hold_are_reported_without_a_rule(tmp_path: Path) -> None:
    fake, audit = FakeBackend(decision_capacity=0, max_decision_drops=0), MemoryAudit()
    agent = agent_on(fake, audit)
    flood(fake, 6)
    agent.step(timeout_ms=0)
    (record,) = not_recorded(audit)
    assert (record.rule_id, record.hook, record.verdict) == (None, "file_open", None)
    detail = record.detail
    assert (detail["count"], detail["rule_number"], detail["decision"]) == (6, None, None)
    status = agent.status()["decisions_not_recorded"]
    assert isinstance(status, dict)
    assert status["unattributed"] == 6


class KillingFake(FakeBackend):
    """A plane whose table also holds compat kill reactions (the fake itself never kills)."""

    def decision_drops(self) -> dict[DropKey, int]:
        return {**super().decision_drops(), (SHADOW_RULE, Hook.BPRM_CHECK_SECURITY, abi.Decision.KILLED): 2}


def test_a_kill_reaction_is_reported_with_the_kill_verdict(tmp_path: Path) -> None:
    fake, audit = KillingFake(decision_capacity=0), MemoryAudit()
    agent_on(fake, audit).step(timeout_ms=0)
    (record,) = not_recorded(audit)
    assert (record.verdict, record.detail["decision"]) == ("kill", "killed")
    assert record.hook == "bprm_check_security"


def test_the_signed_trail_verifies_and_query_shows_the_count(tmp_path: Path) -> None:
    key, pub, _ = generate_keypair(tmp_path / "keys", "audit")
    trail = tmp_path / "log" / "audit.jsonl"
    writer = AuditWriter(trail, load_signer(key), checkpoint_every=1000, checkpoint_seconds=3600)
    writer.open()
    fake = FakeBackend(decision_capacity=3)
    agent = agent_on(fake, writer)
    flood(fake, 20)
    agent.step(timeout_ms=0)
    records = read_records([trail])
    kinds = [r["event"] for r in records]
    at = kinds.index(Kind.DECISIONS_NOT_RECORDED.value)
    assert kinds[at + 1] == Kind.CHECKPOINT.value  # signed at once, not at the next due checkpoint
    verifier = load_verifier(pub)
    result = verify_logs([trail], {verifier.key_id: verifier})
    assert result.ok, result.problem
    assert (result.not_recorded_records, result.not_recorded) == (1, 17)
    assert kinds.count(Kind.DENY.value) + result.not_recorded == 20
    shown = query.select(records, query.Filter(kinds=(Kind.DECISIONS_NOT_RECORDED.value,)))
    table = query.render_table(shown)
    assert "decisions_not_recorded" in table
    assert "not_recorded: 17" in table
    writer.close()


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ConfigError, match="drops interval"):
        AgentSettings(drops_interval_s=-1)
