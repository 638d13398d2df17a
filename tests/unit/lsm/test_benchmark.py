"""The kernel benchmark's rule set: the size asked for, every kind, and nothing the loops touch."""

from __future__ import annotations

from guard.lsm.abi import HookId, ModeId
from guard.lsm.benchmark import bench_policy
from guard.lsm.fake import FakeBackend
from guard.lsm.verdicts import build_tables

TGID = 4242
TARGET = "/tmp/guard-bench-x/var/lib/app/data/allowed-file.txt"


def fake_with(policy: object) -> FakeBackend:
    fake = FakeBackend()
    fake.load()
    fake.set_scope(pids=[TGID])
    fake.apply(build_tables(policy))  # type: ignore[arg-type]
    fake.configure({h: ModeId.ENFORCE for h in HookId}, agent_tgid=1)
    return fake


def test_thousand_rules_of_every_kind_that_spare_the_benchmark_loops() -> None:
    policy = bench_policy(1000)
    kinds = {r.kind for r in policy.paths}
    assert kinds == {"exact", "prefix", "suffix", "contains", "glob"}
    assert len(policy.paths) == 1000
    assert len(policy.nets) == 1000
    assert len({r.rule_id for r in policy.paths}) == 1000
    fake = fake_with(policy)
    assert fake.open(TGID, path=TARGET) == 0
    assert fake.connect(TGID, address="127.0.0.1", port=40000) == 0
    # ... while the rules are live: a path and a network of the set are denied.
    assert fake.open(TGID, path="/opt/blocked-7/x") != 0
    assert fake.open(TGID, path="/a/forbidden-100/b") != 0
    assert fake.connect(TGID, address="10.0.5.9", port=22) != 0


def test_without_path_verdicts_the_file_rules_are_inode_rules() -> None:
    policy = bench_policy(300, path_verdicts=False)
    assert policy.paths == ()
    assert len(policy.inodes) == 300
    assert len(policy.nets) == 300
    fake = fake_with(policy)
    assert fake.open(TGID, path=TARGET, dev=1, ino=2) == 0
