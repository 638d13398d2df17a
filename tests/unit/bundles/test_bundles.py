"""Signed policy bundles: build, sign, verify (every refusal names its check), the store, the CLI."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict, Unpack

import pytest

from guard import __version__
from guard.audit.record import canonical_json
from guard.bundles.archive import Limits, read_bundle
from guard.bundles.build import build_bundle, sign_bundle
from guard.bundles.manifest import parse_expires
from guard.bundles.store import BundleStore
from guard.bundles.verify import CHECKS, TrustStore, VerifiedBundle, load_trust_store, verify_bundle
from guard.errors import BundleError, exit_code_for
from guard.policy.loader import load_policy
from guard.signing import Signer, generate_keypair, load_signer

REPO = Path(__file__).parents[3]
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


@dataclass(frozen=True)
class Keys:
    alice: Signer
    bob: Signer
    carol: Signer  # never trusted
    trust_dir: Path  # alice and bob, threshold 2


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("keys")
    signers = {}
    for name in ("alice", "bob", "carol"):
        key, _, _ = generate_keypair(root / "private", name)
        signers[name] = load_signer(key)
    trust = root / "trust"
    trust.mkdir()
    for name in ("alice", "bob"):
        shutil.copy(root / "private" / f"{name}.pub", trust / f"{name}.pub")
    (trust / "trust.toml").write_text("threshold = 2\n")
    return Keys(signers["alice"], signers["bob"], signers["carol"], trust)


@pytest.fixture(scope="module")
def trust(keys: Keys) -> TrustStore:
    return load_trust_store(keys.trust_dir)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    """The repo's policies/ as version 3, expiring in a day, signed by alice and bob."""
    root = tmp_path_factory.mktemp("signed")
    policies = root / "policies"
    shutil.copytree(REPO / "policies", policies)
    out = root / "v3.bundle"
    build_bundle(
        policies, out, version=3, now=NOW, expires=NOW + timedelta(days=1), min_agent_version=__version__
    )
    sign_bundle(out, [keys.alice, keys.bob])
    return out


@pytest.fixture
def bundle(signed: Path, tmp_path: Path) -> Path:
    """A private copy of the signed bundle, to tamper with."""
    return Path(shutil.copy(signed, tmp_path / "b.bundle"))


class VerifyOptions(TypedDict, total=False):
    """verify_bundle's options; verify() fills in the ones a test leaves out."""

    active_version: int | None
    now: datetime
    agent_version: str
    allow_older: bool
    limits: Limits


def verify(path: Path, trust: TrustStore, **kw: Unpack[VerifyOptions]) -> VerifiedBundle:
    args: VerifyOptions = {"active_version": 2, "now": LATER, "agent_version": __version__}
    args.update(kw)
    return verify_bundle(path, trust, **args)


def refused(path: Path, trust: TrustStore, check: str, **kw: Unpack[VerifyOptions]) -> str:
    with pytest.raises(BundleError) as info:
        verify(path, trust, **kw)
    assert info.value.check == check, str(info.value)
    assert check in CHECKS
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {check}: "), message
    assert exit_code_for(info.value) == 1
    return message


def members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        out = []
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out.append((m.name, f.read()))
        return out


def pack(path: Path, entries: Sequence[tuple[str, bytes] | tarfile.TarInfo]) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def rewrite(path: Path, change: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]) -> Path:
    return pack(path, list(change(members(path))))


# --- the good path ---------------------------------------------------------------------------------


def test_build_sign_verify_with_threshold_two(bundle: Path, trust: TrustStore, tmp_path: Path) -> None:
    verified = verify(bundle, trust)
    assert verified.version == 3
    assert set(verified.signers) == set(trust.verifiers)
    assert verified.unknown_signers == ()
    # the rules and the user-function modules beside them travel together
    assert sorted(verified.files) == sorted(
        p.relative_to(REPO / "policies").as_posix()
        for p in (REPO / "policies").rglob("*")
        if p.suffix in (".guard", ".lua", ".wat")
    )
    assert "modules/entropy.lua" in verified.files
    names = [n for n, _ in members(bundle)]
    assert names[0] == "manifest.json"
    assert all(n.startswith(("policy/", "signatures/")) for n in names[1:])
    manifest = json.loads(dict(members(bundle))["manifest.json"])
    assert set(manifest) == {"format", "version", "created", "expires", "min_agent_version", "files"}
    assert (manifest["format"], manifest["created"], manifest["expires"]) == (
        1,
        "2025-06-01T12:00:00Z",
        "2025-06-02T12:00:00Z",
    )
    assert dict(members(bundle))["manifest.json"] == canonical_json(manifest)
    out = verified.write_policy(tmp_path / "materialised")
    assert len(load_policy(out).rules) == len(load_policy(REPO / "policies").rules)
    assert verified.compile().plans


def test_first_active_version_none_accepts(bundle: Path, trust: TrustStore) -> None:
    assert verify(bundle, trust, active_version=None).version == 3


def test_signing_twice_with_a_key_replaces_its_signature(tmp_path: Path, keys: Keys) -> None:
    out = tmp_path / "b.bundle"
    build_bundle(REPO / "policies", out, version=1, now=NOW, min_agent_version="0.1")
    sign_bundle(out, [keys.alice])
    sign_bundle(out, [keys.alice])
    assert list(read_bundle(out).signatures) == [keys.alice.key_id]


def test_write_policy_refuses_a_non_empty_directory(bundle: Path, trust: TrustStore, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "stale.guard").write_text("")
    with pytest.raises(BundleError) as info:
        verify(bundle, trust).write_policy(tmp_path / "dir")
    assert info.value.check == "write"


def test_docs_name_every_check() -> None:
    doc = (REPO / "docs" / "bundles.md").read_text()
    for check in CHECKS:
        assert f"`{check}`" in doc, check


def test_parse_expires_date_and_time() -> None:
    assert parse_expires("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_expires("2026-01-31T10:00:00") == datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert parse_expires("2026-01-31T12:00:00+02:00") == datetime(2026, 1, 31, 10, tzinfo=UTC)
    with pytest.raises(BundleError):
        parse_expires("tomorrow")


# --- files ------------------------------------------------------------------------------------------


def test_altered_file(bundle: Path, trust: TrustStore) -> None:
    def alter(ms: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [
            (n, d.replace(b"/tmp/*", b"/tmq/*") if n.endswith("block_tmp_exec.guard") else d) for n, d in ms
        ]

    assert "policy/exec/block_tmp_exec.guard" in refused(rewrite(bundle, alter), trust, "hash")


def test_altered_file_of_another_size(bundle: Path, trust: TrustStore) -> None:
    def alter(ms: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [(n, d + b"\n" if n.endswith("block_tmp_exec.guard") else d) for n, d in ms]

    refused(rewrite(bundle, alter), trust, "hash")


def test_added_file(bundle: Path, trust: TrustStore) -> None:
    def add(ms: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [*ms, ("policy/exec/allow_all.guard", b"")]

    assert "policy/exec/allow_all.guard" in refused(rewrite(bundle, add), trust, "extra_file")


def test_removed_file(bundle: Path, trust: TrustStore) -> None:
    def remove(ms: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [(n, d) for n, d in ms if not n.endswith("block_shadow_read.guard")]

    assert "block_shadow_read.guard" in refused(rewrite(bundle, remove), trust, "missing_file")


def test_unexpected_top_level_entry(bundle: Path, trust: TrustStore) -> None:
    refused(rewrite(bundle, lambda ms: [*ms, ("install.sh", b"#!/bin/sh\n")]), trust, "entry")


# --- signatures, trust, expiry, versions ---------------------------------------------------------


def test_untrusted_key(tmp_path: Path, keys: Keys, trust: TrustStore) -> None:
    out = tmp_path / "b.bundle"
    build_bundle(REPO / "policies", out, version=3, now=NOW, min_agent_version="0.1")
    sign_bundle(out, [keys.carol])
    assert keys.carol.key_id in refused(out, trust, "untrusted_key")


def test_below_threshold(tmp_path: Path, keys: Keys, trust: TrustStore) -> None:
    out = tmp_path / "b.bundle"
    build_bundle(REPO / "policies", out, version=3, now=NOW, min_agent_version="0.1")
    refused(out, trust, "threshold")  # unsigned
    sign_bundle(out, [keys.alice, keys.carol])
    message = refused(out, trust, "threshold")
    assert "1 of 2" in message
    assert keys.carol.key_id in message  # the untrusted signer is named


def test_threshold_one_accepts_one_trusted_and_reports_the_unknown(tmp_path: Path, keys: Keys) -> None:
    trust = load_trust_store(_trust_dir(tmp_path, keys, threshold=None))
    out = tmp_path / "b.bundle"
    build_bundle(REPO / "policies", out, version=3, now=NOW, min_agent_version="0.1")
    sign_bundle(out, [keys.alice, keys.carol])
    verified = verify(out, trust)
    assert (verified.signers, verified.unknown_signers) == ((keys.alice.key_id,), (keys.carol.key_id,))


def test_altered_manifest_breaks_the_signatures(bundle: Path, trust: TrustStore) -> None:
    def bump(ms: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        manifest = json.loads(dict(ms)["manifest.json"])
        manifest["version"] = 99
        return [(n, canonical_json(manifest) if n == "manifest.json" else d) for n, d in ms]

    refused(rewrite(bundle, bump), trust, "signature")


def test_non_canonical_manifest(bundle: Path, trust: TrustStore) -> None:
    def pretty(ms: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [
            (n, json.dumps(json.loads(d), indent=1).encode() if n == "manifest.json" else d) for n, d in ms
        ]

    refused(rewrite(bundle, pretty), trust, "manifest")


def test_expired(bundle: Path, trust: TrustStore) -> None:
    assert "2025-06-02T12:00:00Z" in refused(bundle, trust, "expired", now=NOW + timedelta(days=2))


def test_downgrade(bundle: Path, trust: TrustStore) -> None:
    assert "downgrade" in refused(bundle, trust, "downgrade", active_version=5)


def test_replay_of_the_active_version(bundle: Path, trust: TrustStore) -> None:
    assert "replay" in refused(bundle, trust, "downgrade", active_version=3)


def test_allow_older_skips_only_the_version_check(bundle: Path, trust: TrustStore) -> None:
    assert verify(bundle, trust, active_version=5, allow_older=True).version == 3
    refused(bundle, trust, "expired", active_version=5, allow_older=True, now=NOW + timedelta(days=2))


def test_min_agent_version_above_ours(tmp_path: Path, keys: Keys, trust: TrustStore) -> None:
    out = tmp_path / "b.bundle"
    build_bundle(REPO / "policies", out, version=3, now=NOW, min_agent_version="99.0")
    sign_bundle(out, [keys.alice, keys.bob])
    assert "99.0" in refused(out, trust, "agent_version")
    assert verify(out, trust, agent_version="99.0.1").version == 3


def test_policy_that_does_not_compile_is_refused_at_build(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    bad = policies / "exec" / "bad.guard"
    bad.write_text(
        '[[rule]]\nid = "bad"\nname = "bad"\nseverity = "low"\naction = "block"\n'
        "query = 'process where no_such.field == 1'\n"
    )
    with pytest.raises(BundleError) as info:
        build_bundle(policies, tmp_path / "b.bundle", version=1, now=NOW, min_agent_version="0.1")
    assert info.value.check == "compile"
    assert str(bad) in str(info.value)
    assert not (tmp_path / "b.bundle").exists()


def _trust_dir(tmp_path: Path, keys: Keys, threshold: str | None) -> Path:
    d = tmp_path / "trust"
    d.mkdir()
    for pub in keys.trust_dir.glob("*.pub"):
        shutil.copy(pub, d / pub.name)
    if threshold is not None:
        (d / "trust.toml").write_text(threshold)
    return d


@pytest.mark.parametrize(
    "text", ["threshold = 3\n", "threshold = 0\n", "threshold = 'two'\n", "treshold = 1\n", "["]
)
def test_bad_trust_store(tmp_path: Path, keys: Keys, text: str) -> None:
    with pytest.raises(BundleError) as info:
        load_trust_store(_trust_dir(tmp_path, keys, text))
    assert info.value.check == "trust"


def test_trust_store_without_keys(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as info:
        load_trust_store(tmp_path)
    assert info.value.check == "trust"


# --- the archive ------------------------------------------------------------------------------------


def test_truncated_archive(bundle: Path, trust: TrustStore) -> None:
    data = bundle.read_bytes()
    bundle.write_bytes(data[: len(data) // 2])
    refused(bundle, trust, "archive")


def test_corrupt_archive_random_bytes(bundle: Path, trust: TrustStore) -> None:
    bundle.write_bytes(os.urandom(4096))
    refused(bundle, trust, "archive")


def test_corrupt_gzip_stream(bundle: Path, trust: TrustStore) -> None:
    bundle.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(4096))
    refused(bundle, trust, "archive")


def test_corrupt_tar_inside_gzip(bundle: Path, trust: TrustStore) -> None:
    tar = gzip.decompress(bundle.read_bytes())
    # the second member's header: garbage where a header should be must not end the archive quietly
    second = 512 + ((len(dict(members(bundle))["manifest.json"]) + 511) // 512) * 512
    assert tar[second : second + 8] != b"\0" * 8
    bundle.write_bytes(gzip.compress(tar[:second] + b"\xff" * 512 + tar[second + 512 :]))
    refused(bundle, trust, "archive")


def test_trailing_data_after_gzip(bundle: Path, trust: TrustStore) -> None:
    bundle.write_bytes(bundle.read_bytes() + b"junk")
    refused(bundle, trust, "archive")


def test_empty_file(bundle: Path, trust: TrustStore) -> None:
    bundle.write_bytes(b"")
    refused(bundle, trust, "archive")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("policy/../../etc/cron.d/x.guard", "'..'"),
        ("../manifest.json", "'..'"),
        ("/etc/passwd", "absolute"),
        ("policy//exec/x.guard", "normalised"),
        ("policy/./x.guard", "normalised"),
        ("policy/x\n.guard", "control"),
    ],
)
def test_bad_entry_names(bundle: Path, trust: TrustStore, name: str, why: str) -> None:
    message = refused(rewrite(bundle, lambda ms: [*ms, (name, b"")]), trust, "entry")
    assert why in message


@pytest.mark.parametrize(
    ("info", "why"),
    [
        (special("policy/exec/link.guard", tarfile.SYMTYPE, "/etc/shadow"), "symbolic link"),
        (special("policy/exec/hard.guard", tarfile.LNKTYPE, "manifest.json"), "hard link"),
        (special("policy/exec/dev.guard", tarfile.CHRTYPE), "device or fifo"),
        (special("policy/exec/blk.guard", tarfile.BLKTYPE), "device or fifo"),
        (special("policy/exec/fifo.guard", tarfile.FIFOTYPE), "device or fifo"),
        (special("policy/exec", tarfile.DIRTYPE), "not a regular file"),
    ],
)
def test_links_devices_fifos_and_directories(
    bundle: Path, trust: TrustStore, info: tarfile.TarInfo, why: str
) -> None:
    entries: list[tuple[str, bytes] | tarfile.TarInfo] = [*members(bundle), info]
    message = refused(pack(bundle, entries), trust, "entry")
    assert why in message
    assert info.name in message


def test_duplicate_entry(bundle: Path, trust: TrustStore) -> None:
    ms = members(bundle)
    assert "appears twice" in refused(pack(bundle, [*ms, ms[1]]), trust, "entry")


def test_missing_manifest(bundle: Path, trust: TrustStore) -> None:
    refused(rewrite(bundle, lambda ms: [(n, d) for n, d in ms if n != "manifest.json"]), trust, "manifest")


def test_malformed_signature_file(bundle: Path, trust: TrustStore) -> None:
    def garble(ms: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [(n, b"not json" if n.startswith("signatures/") else d) for n, d in ms]

    refused(rewrite(bundle, garble), trust, "signature")


# --- limits -----------------------------------------------------------------------------------------


def test_oversized_manifest(bundle: Path, trust: TrustStore) -> None:
    assert "manifest.json" in refused(bundle, trust, "size", limits=Limits(manifest_bytes=256))


def test_oversized_archive(bundle: Path, trust: TrustStore) -> None:
    refused(bundle, trust, "size", limits=Limits(archive_bytes=1024))


def test_too_many_members(bundle: Path, trust: TrustStore) -> None:
    refused(bundle, trust, "size", limits=Limits(members=3))


def test_decompression_bomb(bundle: Path, trust: TrustStore) -> None:
    bomb = [*members(bundle), ("policy/exec/bomb.guard", b"\0" * (4 * 1024 * 1024))]
    pack(bundle, bomb)
    assert bundle.stat().st_size < 64 * 1024
    tracemalloc.start()
    try:
        message = refused(bundle, trust, "size", limits=Limits(total_bytes=256 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "bomb" in message
    assert peak < 2 * 1024 * 1024  # decompression stopped at the limit, not after 4 MiB


def test_oversized_member(bundle: Path, trust: TrustStore) -> None:
    pack(bundle, [*members(bundle), ("policy/exec/big.guard", b"#" * 200_000)])
    assert "policy/exec/big.guard" in refused(bundle, trust, "size", limits=Limits(file_bytes=100_000))


# --- the store --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> dict[int, Path]:
    """Versions 1..7 of a one-file policy, each signed by alice and bob."""
    root = tmp_path_factory.mktemp("versions")
    policy = root / "policy"
    policy.mkdir()
    shutil.copy(REPO / "policies" / "exec" / "block_tmp_exec.guard", policy)
    out = {}
    for v in range(1, 8):
        out[v] = root / f"{v}.bundle"
        build_bundle(policy, out[v], version=v, now=NOW, min_agent_version="0.1")
        sign_bundle(out[v], [keys.alice, keys.bob])
    return out


def test_store_keeps_the_last_k_and_the_active_one(
    tmp_path: Path, versions: dict[int, Path], trust: TrustStore
) -> None:
    store = BundleStore(tmp_path / "bundles", keep=3)
    assert store.active() is None
    assert store.list() == ()
    for v in (1, 2):
        store.add(verify(versions[v], trust, active_version=store.active()))
        store.activate(v)
    for v in range(3, 8):
        store.add(verify(versions[v], trust, active_version=store.active()))
    assert store.versions() == (2, 5, 6, 7)  # the three highest, and the active one
    assert store.active() == 2
    again = BundleStore(tmp_path / "bundles", keep=3)  # the active version is persisted
    assert again.active() == 2
    assert json.loads((tmp_path / "bundles" / "active.json").read_text()) == {"version": 2}
    entries = again.list()
    assert [(e.version, e.active) for e in entries] == [(2, True), (5, False), (6, False), (7, False)]
    assert entries[0].signers == tuple(sorted(trust.verifiers))
    assert entries[0].created == NOW
    assert entries[0].path == again.get(2)
    store.activate(7)
    assert store.versions() == (5, 6, 7)


def test_store_get_and_activate_unknown_version(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles")
    for call in (lambda: store.get(4), lambda: store.activate(4)):
        with pytest.raises(BundleError) as info:
            call()
        assert info.value.check == "store"


def test_store_keeps_the_verified_bytes_and_refuses_other_content_for_a_version(
    tmp_path: Path, versions: dict[int, Path], trust: TrustStore, keys: Keys
) -> None:
    store = BundleStore(tmp_path / "bundles")
    verified = verify(versions[4], trust, active_version=None)
    path = store.add(verified)
    assert path.read_bytes() == versions[4].read_bytes() == verified.archive
    assert store.add(verified) == path  # idempotent
    other = Path(shutil.copy(versions[4], tmp_path / "other.bundle"))
    sign_bundle(other, [keys.carol])  # same version, different bytes
    with pytest.raises(BundleError) as info:
        store.add(verify(other, trust, active_version=None))
    assert info.value.check == "store"


def test_a_kept_bundle_verifies_again_for_rollback(
    tmp_path: Path, versions: dict[int, Path], trust: TrustStore
) -> None:
    store = BundleStore(tmp_path / "bundles")
    for v in (3, 4):
        store.add(verify(versions[v], trust, active_version=None))
    store.activate(4)
    refused(store.get(3), trust, "downgrade", active_version=store.active())
    assert verify(store.get(3), trust, active_version=store.active(), allow_older=True).version == 3


# --- the CLI ----------------------------------------------------------------------------------------


def guardctl(*args: str, state: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run guardctl with no config file, ``state`` as [agent] state_dir and ``extra`` GUARD_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    env["GUARD_AGENT_STATE_DIR"] = str(state)
    env["GUARD_CONFIG"] = os.devnull
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "guard.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_verify_ok_then_tampered(tmp_path: Path, keys: Keys) -> None:
    bundle = tmp_path / "b.bundle"  # no expiry: the command checks against the wall clock
    build_bundle(REPO / "policies", bundle, version=3, now=NOW, min_agent_version="0.1")
    sign_bundle(bundle, [keys.alice, keys.bob])
    proc = guardctl("bundle", "verify", str(bundle), "--trust", str(keys.trust_dir), state=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ok: version 3" in proc.stdout

    def alter(ms: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [(n, d + b"# tampered\n" if n.startswith("policy/") else d) for n, d in ms]

    rewrite(bundle, alter)
    proc = guardctl("bundle", "verify", str(bundle), "--trust", str(keys.trust_dir), state=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"guardctl: error: {bundle}: hash: policy/")
    proc = guardctl("bundle", "verify", str(bundle), "--trust", str(keys.trust_dir), "--json", state=tmp_path)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert (data["ok"], data["check"]) == (False, "hash")
    assert data["error"].startswith(f"{bundle}: hash: ")


def test_cli_build_sign_list(tmp_path: Path, keys: Keys) -> None:
    state = tmp_path / "state"
    out = tmp_path / "p.bundle"
    proc = guardctl("bundle", "build", str(REPO / "policies"), "-o", str(out), "--version", "4", state=state)
    assert proc.returncode == 0, proc.stderr
    key_dir = tmp_path / "k"
    for name, signer in (("alice", keys.alice), ("bob", keys.bob)):
        src = keys.trust_dir.parent / "private" / f"{name}.key"
        assert load_signer(src).key_id == signer.key_id
        key_dir.mkdir(exist_ok=True)
        shutil.copy(src, key_dir / f"{name}.key")
    proc = guardctl(
        "bundle",
        "sign",
        str(out),
        "--key",
        str(key_dir / "alice.key"),
        "--key",
        str(key_dir / "bob.key"),
        state=state,
    )
    assert proc.returncode == 0, proc.stderr
    proc = guardctl("bundle", "verify", str(out), "--trust", str(keys.trust_dir), "--json", state=state)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["ok"], data["check"], data["version"]) == (True, None, 4)
    assert sorted(data["signers"]) == sorted([keys.alice.key_id, keys.bob.key_id])
    proc = guardctl(
        "bundle", "verify", str(out), "--trust", str(keys.trust_dir), "--active-version", "4", state=state
    )
    assert proc.returncode == 1
    assert ": downgrade: " in proc.stderr

    store = BundleStore(state / "bundles")
    trust = load_trust_store(keys.trust_dir)
    store.add(verify(out, trust))
    store.activate(4)
    proc = guardctl("bundle", "verify", str(out), "--trust", str(keys.trust_dir), "--json", state=state)
    assert json.loads(proc.stdout)["check"] == "downgrade"  # the store's active version by default
    proc = guardctl("bundle", "list", "--json", state=state)
    assert proc.returncode == 0, proc.stderr
    assert [(e["version"], e["active"]) for e in json.loads(proc.stdout)] == [(4, True)]
    proc = guardctl("bundle", "list", state=state)
    assert proc.returncode == 0, proc.stderr
    assert str(store.get(4)) in proc.stdout
