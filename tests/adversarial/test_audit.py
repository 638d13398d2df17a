"""The audit trail attacked: a second writer, a torn tail, forged lines, and lines built to exhaust a reader."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from guard.audit.chain import AuditWriter
from guard.audit.record import Decision, Kind, ProcessIdentity, compute_hash, read_records
from guard.audit.verify import VerifyResult, verify_logs
from guard.errors import AuditError
from guard.signing import Signer, Verifier, generate_keypair, load_signer, load_verifier

MIB = 1024 * 1024  # the readers' line limit is 1 MiB (docs/audit.md)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Signer, Verifier]:
    key, pub, _ = generate_keypair(tmp_path_factory.mktemp("keys"), "audit")
    return pub, load_signer(key), load_verifier(pub)


def deny(n: int) -> Decision:
    return Decision(
        Kind.DENY, rule_id="block-tmp-exec", hook="bprm_check_security",
        process=ProcessIdentity(pid=400 + n, exe=f"/tmp/x{n}", uid=1000), verdict="deny",
        outcome="blocked", reason="real",
    )  # fmt: skip


def write_trail(path: Path, signer: Signer, n: int = 6) -> None:
    with AuditWriter(path, signer, host="node", checkpoint_every=100) as w:
        for i in range(n):
            w.append(deny(i))


def verify(path: Path, verifier: Verifier) -> VerifyResult:
    return verify_logs([path], {verifier.key_id: verifier})


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from guard.cli.core import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("guardctl: error: ")
    return lines[0]


# ------------------------------------------------------------------------------ one writer


def test_a_second_writer_is_refused_and_the_chain_stays_whole(
    tmp_path: Path, keys: tuple[Path, Signer, Verifier]
) -> None:
    _, signer, verifier = keys
    path = tmp_path / "audit.jsonl"
    first = AuditWriter(path, signer, host="agent")
    first.open()
    first.append(deny(1))
    second = AuditWriter(path, signer, host="cli")
    with pytest.raises(AuditError, match=rf"another writer holds the audit trail \(pid {os.getpid()}\b"):
        second.open()
    first.append(deny(2))  # the holder goes on; nobody interleaved
    first.close()
    result = verify(path, verifier)
    assert result.ok, result.problem
    assert result.records == 3
    again = AuditWriter(path, signer)  # the lock goes with the writer
    again.open()
    again.close()


def test_the_cli_gets_one_line_while_a_writer_holds_the_trail(
    tmp_path: Path, keys: tuple[Path, Signer, Verifier], capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub, _ = generate_keypair(tmp_path / "keys", "audit")
    (tmp_path / "p.guard").write_text(
        '[[rule]]\nid = "block-tmp-exec"\nname = "x"\nseverity = "high"\naction = "block"\n'
        "query = 'process where process.executable : \"/tmp/*\"'\n"
    )
    event = {"@timestamp": 1_763_800_000_000, "event": {"category": "process", "id": "e1"},
             "process": {"pid": 100, "executable": "/tmp/a"}}  # fmt: skip
    (tmp_path / "rec.jsonl").write_text(json.dumps(event) + "\n")
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail, load_signer(key), host="agent") as holder:
        holder.append(deny(1))
        code, _, err = cli(
            capsys, "replay", str(tmp_path / "rec.jsonl"), "--policy", str(tmp_path / "p.guard"),
            "--audit", str(trail), "--key", str(key),
        )  # fmt: skip
    assert code == 1
    assert "another writer holds the audit trail" in one_line_error(err)
    result = verify_logs([trail], {load_verifier(pub).key_id: load_verifier(pub)})
    assert result.ok, result.problem
    assert result.records == 2  # the holder's deny and its closing checkpoint, nothing of the refused one


# ------------------------------------------------------------------------------ torn tail


def test_a_torn_tail_is_recorded_with_discarded_bytes(
    tmp_path: Path, keys: tuple[Path, Signer, Verifier]
) -> None:
    _, signer, verifier = keys
    path = tmp_path / "audit.jsonl"
    write_trail(path, signer)
    torn = b'{"detail":{},"event":"deny","hash":"ab'
    with path.open("ab") as f:
        f.write(torn)
    last = json.loads(path.read_bytes().split(b"\n")[-2])
    with AuditWriter(path, signer) as w:
        w.append(deny(9))
    records = read_records([path])
    recovered = [r for r in records if r["event"] == "recovered"]
    assert len(recovered) == 1
    detail = recovered[0]["detail"]
    assert isinstance(detail, dict)
    assert detail["discarded_bytes"] == len(torn)
    assert detail["after_seq"] == last["seq"]
    assert detail["discarded_head"] == torn.decode()
    assert recovered[0]["seq"] == last["seq"] + 1  # recorded before anything else is written
    result = verify(path, verifier)
    assert result.ok, result.problem


# ------------------------------------------------------------------------------ verify


def test_an_empty_trail_is_not_ok(tmp_path: Path, keys: tuple[Path, Signer, Verifier]) -> None:
    _, _, verifier = keys
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    result = verify(path, verifier)
    assert not result.ok
    assert result.problem is not None
    assert result.problem.kind == "empty"
    assert "no records" in str(result.problem)


def test_a_duplicate_key_forgery_is_refused(tmp_path: Path, keys: tuple[Path, Signer, Verifier]) -> None:
    _, signer, verifier = keys
    path = tmp_path / "audit.jsonl"
    write_trail(path, signer)
    lines = path.read_bytes().split(b"\n")
    assert b'"reason":"real"' in lines[2]
    forged = b'{"reason":"FORGED",' + lines[2][1:]  # first key shows FORGED, a JSON parser keeps "real"
    record = json.loads(forged)
    assert record["hash"] == compute_hash(record)  # the chain itself still matches
    lines[2] = forged
    path.write_bytes(b"\n".join(lines))
    result = verify(path, verifier)
    assert result.problem is not None, "a line with a duplicated key verified"
    assert result.problem.kind == "noncanonical"
    assert "duplicate key 'reason'" in result.problem.message
    assert result.problem.where.endswith("audit.jsonl:3")


def test_non_canonical_whitespace_is_refused(tmp_path: Path, keys: tuple[Path, Signer, Verifier]) -> None:
    _, signer, verifier = keys
    path = tmp_path / "audit.jsonl"
    write_trail(path, signer)
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b',"seq":', b', "seq": ')  # same record, same hash, other bytes
    record = json.loads(lines[1])
    assert record["hash"] == compute_hash(record)
    path.write_bytes(b"\n".join(lines))
    result = verify(path, verifier)
    assert result.problem is not None, "a non-canonical line verified"
    assert (result.problem.kind, result.problem.seq) == ("noncanonical", 2)


def test_verify_says_what_it_could_not_check(
    tmp_path: Path, keys: tuple[Path, Signer, Verifier], capsys: pytest.CaptureFixture[str]
) -> None:
    pub, signer, verifier = keys
    path = tmp_path / "audit.jsonl"
    write_trail(path, signer)
    w = AuditWriter(path, signer)
    w.open()
    w.append(deny(7))  # unsealed: the writer is still running
    result = verify(path, verifier)
    assert result.ok, result.problem
    assert any("after the last checkpoint" in n and "no signature" in n for n in result.not_checked)
    code, out, _ = cli(capsys, "audit", "verify", str(path), "--key", str(pub), "--json")
    assert code == 0
    assert json.loads(out)["not_checked"] == result.not_checked
    code, out, _ = cli(capsys, "audit", "verify", str(path), "--key", str(pub))
    assert "not checked: 1 record(s) after the last checkpoint" in out
    w.close()


# ------------------------------------------------------------------------------ hostile lines


def test_a_deeply_nested_line_gives_one_line_naming_file_and_line(
    tmp_path: Path, keys: tuple[Path, Signer, Verifier], capsys: pytest.CaptureFixture[str]
) -> None:
    pub, signer, verifier = keys
    path = tmp_path / "audit.jsonl"
    write_trail(path, signer, 3)
    with path.open("ab") as f:
        f.write(b'{"detail":' + b"[" * 200_000 + b"]" * 200_000 + b"}\n")
    result = verify(path, verifier)  # a RecursionError would escape here
    assert result.problem is not None
    assert result.problem.kind == "corrupt"
    assert result.problem.where == f"{path}:5"
    assert "nested deeper than" in result.problem.message
    assert len(read_records([path])) == 4  # query and report skip it
    code, out, err = cli(capsys, "audit", "verify", str(path), "--key", str(pub))
    assert code == 1
    assert "Traceback" not in err
    assert f"FAILED: corrupt at {path}:5" in out
    code, out, err = cli(capsys, "audit", "query", str(path), "--ndjson")
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 3  # the three denies; checkpoints are left out
    with pytest.raises(AuditError, match="the last complete line is not a record"):
        AuditWriter(path, signer).open()  # the writer reads the trail at open: a refusal, no RecursionError


def test_a_very_long_line_is_refused_in_bounded_memory(
    tmp_path: Path, keys: tuple[Path, Signer, Verifier]
) -> None:
    _, signer, verifier = keys
    path = tmp_path / "audit.jsonl"
    write_trail(path, signer, 3)
    size = 24 * MIB
    with path.open("ab") as f:
        f.write(b'{"reason":"' + b"x" * size + b'"}\n')
    tracemalloc.start()
    try:
        result = verify(path, verifier)
        records = len(read_records([path]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB, f"peak {peak} bytes reading a {size}-byte line"
    assert result.problem is not None
    assert result.problem.kind == "corrupt"
    assert result.problem.where == f"{path}:5"
    assert "over the limit" in result.problem.message
    assert records == 4


def test_the_writer_never_writes_a_line_readers_refuse(
    tmp_path: Path, keys: tuple[Path, Signer, Verifier]
) -> None:
    _, signer, verifier = keys
    path = tmp_path / "audit.jsonl"
    nested: object = "leaf"
    for _ in range(100):
        nested = [nested]
    with AuditWriter(path, signer) as w:
        big = w.append(Decision(Kind.BUNDLE_REJECTED, detail={"blob": "y" * (2 * MIB)}))
        deep = w.append(Decision(Kind.BUNDLE_REJECTED, detail={"deep": nested}))  # type: ignore[dict-item]
    for record in (big, deep):
        detail = record["detail"]
        assert isinstance(detail, dict)
        assert set(detail) == {"detail_dropped"}
    result = verify(path, verifier)
    assert result.ok, result.problem


def test_a_large_trail_is_verified_streamed(tmp_path: Path, keys: tuple[Path, Signer, Verifier]) -> None:
    _, signer, verifier = keys
    path = tmp_path / "audit.jsonl"
    with AuditWriter(path, signer, host="node", checkpoint_every=1000, fsync="checkpoint_only") as w:
        for i in range(4_000):
            w.append(deny(i))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        result = verify(path, verifier)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.ok, result.problem
    assert result.records == 4_004
    assert peak < size // 8, f"peak {peak} bytes verifying a {size}-byte trail"
