"""Bundle deploy and rollback through the agent (FakeBackend): verified, swapped, kept, audited; rejections change nothing."""

from __future__ import annotations

import errno
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from guard import __version__
from guard.agent.daemon import Agent, AgentSettings
from guard.agent.processes import ProcessCache
from guard.audit.record import Kind
from guard.audit.sink import MemoryAudit
from guard.bundles.build import build_bundle, sign_bundle
from guard.bundles.deploy import bundle_store, deploy, initial_policy, rollback
from guard.config import GuardConfig, apply_overrides
from guard.errors import BundleError
from guard.lsm.fake import FakeBackend
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy
from guard.signing import generate_keypair, load_signer

POLICIES = Path(__file__).resolve().parents[3] / "policies"
CG = 9


def _rule(rid: str, query: str) -> str:
    return f'[[rule]]\nid = "{rid}"\nname = "{rid}"\nseverity = "high"\naction = "block"\nquery = \'\'\'{query}\'\'\'\n'


@pytest.fixture
def env(tmp_path: Path) -> tuple[GuardConfig, Path]:
    trust = tmp_path / "trust"
    key, _pub, _ = generate_keypair(trust, "ops")
    (tmp_path / "keys").mkdir()
    shutil.move(str(key), tmp_path / "keys" / "ops.key")
    cfg = apply_overrides(
        GuardConfig(),
        {"agent": {"state_dir": str(tmp_path / "state"), "trust_dir": str(trust), "keep_bundles": 3}},
    )
    return cfg, tmp_path


def make_bundle(base: Path, version: int, rules: str, *, sign: bool = True, tag: str = "") -> Path:
    src = base / f"src-{version}{tag}"
    src.mkdir()
    (src / "rules.guard").write_text(rules)
    out = base / f"v{version}{tag}.bundle"
    build_bundle(src, out, version=version, now=datetime.now(UTC), min_agent_version=__version__)
    if sign:
        sign_bundle(out, [load_signer(base / "keys" / "ops.key")])
    return out


def start(cfg: GuardConfig, base: Path, first: Path) -> tuple[Agent, FakeBackend, MemoryAudit]:
    audit = MemoryAudit()
    compiled, _digest = initial_policy(cfg, audit, None, first)
    fake = FakeBackend()
    agent = Agent(
        compiled,
        fake,
        audit,
        AgentSettings(scope_cgroups=(CG,), self_protect=False),
        processes=ProcessCache(read_proc=False),
        list_processes=list,
    )
    agent.start()
    return agent, fake, audit


V1 = _rule("no_tmp", 'process where process.executable : "/tmp/*"')
V2 = _rule("no_opt", 'process where process.executable : "/opt/bad/*"')


def test_deploy_swaps_keeps_and_audits_then_rollback_restores(env: tuple[GuardConfig, Path]) -> None:
    cfg, base = env
    agent, fake, audit = start(cfg, base, make_bundle(base, 1, V1))
    assert bundle_store(cfg).active() == 1
    assert fake.exec(10, path="/tmp/x", cgroup=CG) == errno.EPERM
    result = deploy(cfg, agent, audit, make_bundle(base, 2, V2), uid=0, reason="release 2")
    assert (result["version"], result["previous"]) == (2, 1)
    assert fake.exec(11, path="/tmp/x", cgroup=CG) == 0
    assert fake.exec(12, path="/opt/bad/y", cgroup=CG) == errno.EPERM
    assert bundle_store(cfg).active() == 2
    assert bundle_store(cfg).versions() == (1, 2)
    deployed = [d for d in audit.decisions if d.kind is Kind.BUNDLE_DEPLOYED]
    assert [d.detail["version"] for d in deployed] == [1, 2]
    assert deployed[-1].reason == "release 2"
    # rollback (to the newest kept version below the active one): re-verified, swapped, audited
    back = rollback(cfg, agent, audit, None, uid=0, reason="bad release")
    assert (back["version"], back["rollback"]) == (1, True)
    assert fake.exec(13, path="/tmp/x", cgroup=CG) == errno.EPERM
    assert fake.exec(14, path="/opt/bad/y", cgroup=CG) == 0
    assert bundle_store(cfg).active() == 1
    assert audit.decisions[-1].outcome == "rolled_back"


@pytest.mark.parametrize("case", ["downgrade", "replay", "unsigned", "tampered"])
def test_a_rejected_bundle_changes_nothing_and_is_audited(env: tuple[GuardConfig, Path], case: str) -> None:
    cfg, base = env
    agent, fake, audit = start(cfg, base, make_bundle(base, 5, V1))
    if case == "downgrade":
        bad, check = make_bundle(base, 4, V2), "downgrade"
    elif case == "replay":
        bad, check = make_bundle(base, 5, V2, tag="-replay"), "downgrade"
    elif case == "unsigned":
        bad, check = make_bundle(base, 6, V2, sign=False), "threshold"
    else:
        bad = make_bundle(base, 6, V2)
        data = bytearray(bad.read_bytes())
        data[len(data) // 2] ^= 0xFF
        bad.write_bytes(bytes(data))
        check = ""
    with pytest.raises(BundleError) as info:
        deploy(cfg, agent, audit, bad, uid=1000, reason="try")
    if check:
        assert info.value.check == check
    rejected = [d for d in audit.decisions if d.kind is Kind.BUNDLE_REJECTED]
    assert len(rejected) == 1
    assert rejected[0].detail["check"] == info.value.check
    assert rejected[0].detail["uid"] == 1000
    assert str(info.value).count("\n") == 0
    # the active policy is untouched: kernel and store
    assert fake.exec(20, path="/tmp/x", cgroup=CG) == errno.EPERM
    assert fake.exec(21, path="/opt/bad/y", cgroup=CG) == 0
    assert bundle_store(cfg).active() == 5
    assert agent.compiled.rule_ids == compile_policy(load_policy(base / "src-5")).rule_ids


def test_a_rule_kept_across_versions_keeps_its_operators_override(env: tuple[GuardConfig, Path]) -> None:
    from guard.model import Mode

    cfg, base = env
    agent, fake, audit = start(cfg, base, make_bundle(base, 1, V1))
    agent.set_mode(Mode.DETECT, rule="no_tmp", uid=0, reason="noisy")
    deploy(cfg, agent, audit, make_bundle(base, 2, V1 + "\n" + V2), uid=0, reason="add a rule")
    assert agent.rule_modes == {"no_tmp": Mode.DETECT}
    assert fake.exec(30, path="/tmp/x", cgroup=CG) == 0  # still detect
    assert fake.exec(31, path="/opt/bad/z", cgroup=CG) == errno.EPERM


def test_agent_restart_on_the_active_bundle_is_no_replay(env: tuple[GuardConfig, Path]) -> None:
    cfg, base = env
    first = make_bundle(base, 3, V1)
    start(cfg, base, first)
    compiled, _ = initial_policy(cfg, MemoryAudit(), None, first)  # the same file again: fine
    assert [p.rule.id for p in compiled.plans] == ["no_tmp"]
    compiled, _ = initial_policy(cfg, MemoryAudit(), None, None)  # no flag: the active kept bundle
    assert [p.rule.id for p in compiled.plans] == ["no_tmp"]
