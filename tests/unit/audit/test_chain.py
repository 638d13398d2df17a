"""The writer and the verifier: a clean chain verifies; every kind of tampering is named at its seq."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict, Unpack

import pytest

from guard.audit.chain import AuditWriter
from guard.audit.record import Decision, Kind, ProcessIdentity, compute_hash, read_records
from guard.audit.verify import verify_logs
from guard.errors import AuditError
from guard.signing import Signer, Verifier, generate_keypair, load_signer, load_verifier


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Signer, Verifier]:
    d = tmp_path_factory.mktemp("keys")
    key, pub, _ = generate_keypair(d, "audit")
    return load_signer(key), load_verifier(pub)


class Clock:
    def __init__(self) -> None:
        self.ns = 1_763_800_000_000_000_000
        self.mono = 0.0

    def time(self) -> int:
        self.ns += 1_000_000
        return self.ns

    def monotonic(self) -> float:
        return self.mono


class WriterOptions(TypedDict, total=False):
    """The writer's options a test may set beside the ones write_log fixes."""

    checkpoint_seconds: float
    rotate_bytes: int
    fsync: str


def write_log(
    path: Path,
    signer: Signer,
    n: int,
    *,
    every: int = 10,
    clock: Clock | None = None,
    **kw: Unpack[WriterOptions],
) -> AuditWriter:
    clock = clock or Clock()
    w = AuditWriter(path, signer, host="test-host", checkpoint_every=every, clock=clock.time,
                    monotonic=clock.monotonic, **kw)  # fmt: skip
    w.open()
    for i in range(n):
        kind = Kind.DENY if i % 3 == 0 else Kind.WOULD_BLOCK
        w.append(Decision(kind, rule_id=f"rule-{i % 4}", hook="file_open",
                          process=ProcessIdentity(pid=1000 + i, exe="/usr/bin/cat", uid=1000),
                          verdict="deny", outcome="blocked" if kind is Kind.DENY else "allowed"))  # fmt: skip
    w.close()
    return w


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def save(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records))


def rehash_from(records: list[dict[str, Any]], start: int) -> None:
    """What a careful attacker does after changing record ``start``: re-link and re-hash the rest."""
    for i in range(start, len(records)):
        if i > 0:
            records[i]["prev_hash"] = records[i - 1]["hash"]
        records[i]["hash"] = compute_hash(records[i])


def check(path: Path, verifier: Verifier) -> tuple[str, int | None]:
    result = verify_logs([path], {verifier.key_id: verifier})
    assert not result.ok
    assert result.problem is not None
    return result.problem.kind, result.problem.seq


def test_clean_log_verifies(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    signer, verifier = keys
    write_log(tmp_path / "audit.jsonl", signer, 25)
    result = verify_logs([tmp_path / "audit.jsonl"], {verifier.key_id: verifier})
    assert result.ok, result.problem
    assert (result.records, result.checkpoints, result.unsealed) == (
        28,
        3,
        0,
    )  # 25 + checkpoints at 10, 20, close
    assert result.render_text().endswith("OK: chain and checkpoints verified")
    records = lines(tmp_path / "audit.jsonl")
    assert [r["seq"] for r in records] == list(range(1, 29))
    assert records[10]["event"] == "checkpoint"
    assert records[10]["detail"] == {"count": 10, "prev_checkpoint_seq": 0, "every": 10, "seconds": 60.0}


def test_edited_record(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 25)
    records = lines(p)
    records[4]["process"]["exe"] = "/usr/bin/innocent"
    save(p, records)
    assert check(p, keys[1]) == ("edited", 5)


def test_edited_and_rehashed_record_breaks_the_link(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 25)
    records = lines(p)
    records[4]["verdict"] = "allow"
    records[4]["hash"] = compute_hash(records[4])
    save(p, records)
    assert check(p, keys[1]) == ("edited", 5)


def test_edited_and_whole_chain_rehashed_is_caught_by_the_checkpoint(
    tmp_path: Path, keys: tuple[Signer, Verifier]
) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 25)
    records = lines(p)
    records[4]["verdict"] = "allow"
    rehash_from(records, 4)
    save(p, records)
    assert check(p, keys[1]) == ("forged", 11)


def test_deleted_record(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 25)
    records = lines(p)
    del records[6]
    save(p, records)
    assert check(p, keys[1]) == ("deleted", 7)


def test_inserted_record(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 25)
    records = lines(p)
    records.insert(7, dict(records[5]))
    save(p, records)
    assert check(p, keys[1]) == ("inserted", 6)


def test_reordered_records(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 25)
    records = lines(p)
    records[7], records[8] = records[8], records[7]
    save(p, records)
    assert check(p, keys[1]) == ("reordered", 8)


def test_truncated_partial_line(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 25)
    data = p.read_bytes()
    p.write_bytes(data[:-40])
    result = verify_logs([p], {keys[1].key_id: keys[1]})
    assert result.problem is not None
    assert result.problem.kind == "truncated"
    assert "partial record" in result.problem.message
    assert "after seq 27" in result.problem.message


def test_forged_checkpoint_and_untrusted_key(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 25)
    other_key, other_pub, _ = generate_keypair(tmp_path / "other", "audit")
    other = load_verifier(other_pub)
    assert check(p, other) == ("forged", 11)  # signed by a key the auditor does not trust
    records = lines(p)
    records[10]["signature"] = load_signer(other_key).sign(b"something else")
    rehash_from(records, 10)
    save(p, records)
    assert check(p, keys[1]) == ("forged", 11)


def test_missing_checkpoint(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 25)
    records = lines(p)
    del records[10]  # the checkpoint at seq 11
    for r in records[10:]:
        r["seq"] -= 1
    rehash_from(records, 10)
    save(p, records)
    kind, seq = check(p, keys[1])
    assert kind in ("missing checkpoint", "forged")
    assert seq is not None


def test_rotation_keeps_one_chain_and_a_deleted_file_is_found(
    tmp_path: Path, keys: tuple[Signer, Verifier]
) -> None:
    d = tmp_path / "log"
    write_log(d / "audit.jsonl", keys[0], 60, rotate_bytes=4000)
    files = sorted(x.name for x in d.iterdir())
    assert len(files) >= 3
    assert verify_logs([d / "audit.jsonl"], {keys[1].key_id: keys[1]}).ok
    assert len(read_records([d])) == verify_logs([d], {keys[1].key_id: keys[1]}).records
    middle = sorted(d.glob("audit.0*.jsonl"))[1]
    middle.unlink()
    result = verify_logs([d], {keys[1].key_id: keys[1]})
    assert result.problem is not None
    assert result.problem.kind == "deleted"


def test_time_based_checkpoint(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    clock = Clock()
    w = AuditWriter(tmp_path / "a.jsonl", keys[0], checkpoint_every=1000, checkpoint_seconds=5,
                    clock=clock.time, monotonic=clock.monotonic)  # fmt: skip
    w.open()
    w.append(Decision(Kind.AGENT_START))
    clock.mono += 6
    w.tick()
    w.append(Decision(Kind.DENY, rule_id="r"))
    assert [r["event"] for r in lines(tmp_path / "a.jsonl")] == ["agent_start", "checkpoint", "deny"]
    assert lines(tmp_path / "a.jsonl")[1]["reason"] == "time"
    w.close()


def test_reopen_continues_the_chain(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 7)
    w = write_log(p, keys[0], 5)
    assert w.seq == 7 + 1 + 5 + 1
    assert verify_logs([p], {keys[1].key_id: keys[1]}).ok


def test_reopen_cuts_a_torn_tail_and_reports_it(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, keys[0], 7)
    with p.open("ab") as f:
        f.write(b'{"v":1,"seq":9,"ts":17')
    w = AuditWriter(p, keys[0])
    recovery = w.open()
    assert (recovery.last_seq, recovery.discarded_bytes) == (8, 22)
    w.append(Decision(Kind.AGENT_START, detail={"recovered_bytes": recovery.discarded_bytes}))
    w.close()
    assert verify_logs([p], {keys[1].key_id: keys[1]}).ok


def test_refuses_to_continue_a_corrupt_chain(tmp_path: Path, keys: tuple[Signer, Verifier]) -> None:
    p = tmp_path / "audit.jsonl"
    p.write_text("not json at all\n")
    with pytest.raises(AuditError, match="run `guardctl audit verify`"):
        AuditWriter(p, keys[0]).open()


def test_bad_fsync_policy(keys: tuple[Signer, Verifier], tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="fsync policy 'sometimes'"):
        AuditWriter(tmp_path / "x.jsonl", keys[0], fsync="sometimes")
