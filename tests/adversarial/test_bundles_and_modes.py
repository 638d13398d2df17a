"""Bundles, small refusals and block storms attacked: each test reproduces a reported weakness."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from guard.agent.daemon import Agent, AgentSettings
from guard.audit.record import Kind, canonical_json
from guard.audit.sink import MemoryAudit
from guard.bundles.archive import pack_archive
from guard.bundles.deploy import deploy, rollback
from guard.bundles.verify import load_trust_store
from guard.config import GuardConfig, apply_overrides
from guard.errors import BundleError, PolicyCompileError
from guard.lsm.fake import FakeBackend
from guard.model import Mode
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy
from guard.signing import Signer, generate_keypair, load_signer
from tests.unit.agent.test_agent import CG, make_agent
from tests.unit.bundles.test_bundles import guardctl

RULE = b"""[[rule]]
id = "block_tmp_exec"
name = "exec from /tmp"
severity = "high"
action = "block"
query = '''process where event.type == "start" and process.executable : "/tmp/*"'''
"""
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _signer(tmp_path: Path) -> tuple[Signer, Path]:
    """A signing key kept outside the trust dir, and the trust dir holding its public key."""
    key, pub, _ = generate_keypair(tmp_path / "keys", "ops")
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "ops.pub").write_bytes(pub.read_bytes())
    return load_signer(key), trust


def _craft(path: Path, signer: Signer, files: dict[str, bytes], *, min_agent: str = "0.1") -> Path:
    """Write a signed bundle whose manifest lists ``files`` as they are (no name checks)."""
    manifest = {
        "created": "2025-06-01T12:00:00Z",
        "expires": None,
        "files": {
            p: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for p, d in sorted(files.items())
        },
        "format": 1,
        "min_agent_version": min_agent,
        "version": 7,
    }
    raw = canonical_json(manifest)
    path.write_bytes(pack_archive(raw, files, {signer.key_id: signer.sign(raw)}))
    return path


def _config(tmp_path: Path, trust: Path) -> GuardConfig:
    return apply_overrides(
        GuardConfig(), {"agent": {"state_dir": str(tmp_path / "state"), "trust_dir": str(trust)}}
    )


UNWRITABLE = {
    "a 300-byte path component": {"a" * 300 + ".guard": RULE},
    "a 5000-byte path": {"/".join(["d" * 200] * 25) + "/x.guard": RULE},
    "2000 nested directories": {"d/" * 2000 + "x.guard": RULE},
    "a file that is also a directory": {"a.guard": RULE, "a.guard/b.guard": RULE},
}


@pytest.mark.parametrize("case", sorted(UNWRITABLE))
def test_unwritable_member_name_is_rejected_and_audited(tmp_path: Path, case: str) -> None:
    signer, trust = _signer(tmp_path)
    bundle = _craft(tmp_path / "evil.bundle", signer, UNWRITABLE[case])
    audit = MemoryAudit()
    with pytest.raises(BundleError) as caught:
        deploy(_config(tmp_path, trust), None, audit, bundle, uid=0, reason="probe")
    assert caught.value.check in ("entry", "manifest")
    assert "\n" not in str(caught.value)
    rejected = [d for d in audit.decisions if d.kind is Kind.BUNDLE_REJECTED]
    assert len(rejected) == 1
    assert rejected[0].detail is not None
    assert rejected[0].detail["check"] == caught.value.check


def test_cli_verify_of_a_long_member_name_is_one_line(tmp_path: Path) -> None:
    signer, trust = _signer(tmp_path)
    bundle = _craft(tmp_path / "evil.bundle", signer, {"a" * 300 + ".guard": RULE})
    proc = _guardctl(tmp_path, "bundle", "verify", str(bundle), "--trust", str(trust))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "255 bytes" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _private_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_private_key_posing_as_a_public_key_is_never_trusted(tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "ops.pub").write_bytes(_private_pem())
    with pytest.raises(BundleError, match="private key") as caught:
        load_trust_store(trust)
    assert caught.value.check == "trust"


def test_private_key_file_beside_the_public_keys_is_refused(tmp_path: Path) -> None:
    _, trust = _signer(tmp_path)
    (trust / "ops.key").write_bytes(_private_pem())
    with pytest.raises(BundleError, match="private key") as caught:
        load_trust_store(trust)
    assert caught.value.check == "trust"


@pytest.mark.parametrize("text", ["99.0-evil", "1.0 junk", "v1", "1..2", "9" * 5000])
def test_malformed_min_agent_version_is_called_malformed(tmp_path: Path, text: str) -> None:
    signer, trust = _signer(tmp_path)
    bundle = _craft(tmp_path / "b.bundle", signer, {"r.toml": RULE}, min_agent=text)
    audit = MemoryAudit()
    with pytest.raises(BundleError) as caught:
        deploy(_config(tmp_path, trust), None, audit, bundle, uid=0, reason="probe")
    assert caught.value.check == "manifest"
    assert "malformed" in caught.value.detail
    assert "above" not in caught.value.detail


def _guardctl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """guardctl with every path of its own under ``tmp_path`` (no agent, no system trail)."""
    return guardctl(
        *args,
        state=tmp_path / "state",
        GUARD_AGENT_RUN_DIR=str(tmp_path / "run"),
        GUARD_AGENT_PIN_DIR=str(tmp_path / "pins"),
        GUARD_AGENT_TRUST_DIR=str(tmp_path / "trust"),
        GUARD_AUDIT_PATH=str(tmp_path / "audit.jsonl"),
        GUARD_AUDIT_KEY_PATH=str(tmp_path / "audit-keys" / "audit.key"),
    )


def test_deploy_json_prints_a_document_on_failure(tmp_path: Path) -> None:
    _signer(tmp_path)
    garbage = tmp_path / "garbage.bundle"
    garbage.write_bytes(b"not a bundle")
    proc = _guardctl(tmp_path, "bundle", "deploy", str(garbage), "--json")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    assert doc["error"]
    if os.geteuid() == 0:  # without root the refusal is the privilege check, before the archive
        assert doc["check"] == "archive"


def test_rollback_to_a_version_never_kept_is_audited(tmp_path: Path) -> None:
    _, trust = _signer(tmp_path)
    audit = MemoryAudit()
    with pytest.raises(BundleError) as caught:
        rollback(_config(tmp_path, trust), None, audit, 99, uid=0, reason="probe")
    assert caught.value.check == "store"
    rejected = [d for d in audit.decisions if d.kind is Kind.BUNDLE_REJECTED]
    assert len(rejected) == 1
    assert rejected[0].detail is not None
    assert rejected[0].detail["to"] == 99


@pytest.mark.parametrize(
    "test",
    [
        'cidrMatch(destination.ip, "10.0.0.0/33")',
        'destination.ip == "10.0.0.300"',
        'destination.ip in ("10.0.0.1", "not-an-ip")',
    ],
)
def test_invalid_cidr_in_a_block_rule_is_refused(tmp_path: Path, test: str) -> None:
    (tmp_path / "net.toml").write_text(
        '[[rule]]\nid = "block_bad_net"\nname = "n"\nseverity = "high"\naction = "block"\n'
        f"query = '''network where {test}'''\n"
    )
    with pytest.raises(PolicyCompileError) as caught:
        compile_policy(load_policy(tmp_path))
    message = str(caught.value)
    assert "block_bad_net" in message
    assert "destination.ip" in message
    assert "\n" not in message


def _spam(agent: Agent, fake: FakeBackend, pid: int, count: int) -> None:
    """One process execs its payload ``count`` times; every exec is denied."""
    for i in range(count):
        assert fake.exec(pid, path="/tmp/payload", cgroup=CG) == errno.EPERM
        if i % 16 == 0:
            agent.step(timeout_ms=0)
    agent.step(timeout_ms=0)


def test_block_storm_by_default_never_demotes(tmp_path: Path) -> None:
    agent, fake, audit, _ = make_agent(tmp_path, settings=AgentSettings(scope_cgroups=(CG,)))
    _spam(agent, fake, 4242, 200)
    assert agent.rule_modes.get("block_tmp_exec") is not Mode.DETECT
    assert fake.exec(4243, path="/tmp/payload", cgroup=CG) == errno.EPERM  # the next payload is denied
    assert not [d for d in audit.decisions if d.outcome == "demoted"]


def test_block_storm_enabled_cannot_be_driven_after_the_confirm_window(tmp_path: Path) -> None:
    settings = AgentSettings(scope_cgroups=(CG,), storm_threshold=50, storm_window_s=10)
    agent, fake, audit, clock = make_agent(tmp_path, settings=settings)
    clock.now += 3600  # an hour after the agent's start: no deploy, no operator switch since
    _spam(agent, fake, 4242, 200)
    assert agent.rule_modes.get("block_tmp_exec") is not Mode.DETECT
    assert fake.exec(4243, path="/tmp/payload", cgroup=CG) == errno.EPERM
    assert not [d for d in audit.decisions if d.outcome == "demoted"]
    # an operator's switch to enforce opens the window again: a storm then is the new policy's
    agent.set_mode(Mode.ENFORCE, uid=0, reason="re-enforce")
    _spam(agent, fake, 4244, 60)
    assert agent.rule_modes.get("block_tmp_exec") is Mode.DETECT
    assert len([d for d in audit.decisions if d.outcome == "demoted"]) == 1
