"""A writer killed with SIGKILL mid-burst loses at most the torn last line; the chain then continues."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from guard.audit.chain import AuditWriter
from guard.audit.record import Decision, Kind
from guard.audit.verify import verify_logs
from guard.signing import generate_keypair, load_signer, load_verifier

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from guard.audit.chain import AuditWriter
    from guard.audit.record import Decision, Kind, ProcessIdentity
    from guard.signing import load_signer

    w = AuditWriter(Path(sys.argv[1]), load_signer(Path(sys.argv[2])), checkpoint_every=50, fsync=sys.argv[3])
    w.open()
    detail = {"pad": "x" * 3000}  # long lines make a torn write likelier
    while True:
        rec = w.append(Decision(Kind.DENY, rule_id="r", hook="file_open", process=ProcessIdentity(pid=1),
                                verdict="deny", outcome="blocked", detail=detail))
        sys.stdout.write(f"{rec['seq']}\\n")
        sys.stdout.flush()
    """
)


@pytest.mark.parametrize(
    ("round_", "fsync"), [(1, "deny_and_checkpoint"), (2, "checkpoint_only"), (3, "every_record")]
)
def test_sigkill_mid_burst(tmp_path: Path, round_: int, fsync: str) -> None:
    key, pub, _ = generate_keypair(tmp_path / "keys", "audit")
    verifier = load_verifier(pub)
    log = tmp_path / "audit.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log), str(key), fsync], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acknowledged = 0
    deadline = time.monotonic() + 60
    target = 150 + 37 * round_
    while acknowledged < target and time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], 1.0)
        if ready:
            acknowledged = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert acknowledged >= target, "the writer did not get going"

    complete = [json.loads(x) for x in log.read_bytes().split(b"\n")[:-1]]
    torn = log.read_bytes().rsplit(b"\n", 1)[1]
    assert complete[-1]["seq"] >= acknowledged  # nothing the writer acknowledged is lost
    before = verify_logs([log], {verifier.key_id: verifier})
    if torn:
        assert before.problem is not None
        assert before.problem.kind == "truncated"
        assert f"after seq {complete[-1]['seq']}" in before.problem.message
    else:
        assert before.ok, before.problem
        assert before.unsealed > 0 or complete[-1]["event"] == "checkpoint"

    w = AuditWriter(log, load_signer(key))
    recovery = w.open()
    assert recovery.last_seq == complete[-1]["seq"]
    assert recovery.discarded_bytes == len(torn)
    w.append(Decision(Kind.AGENT_START, detail={"recovered_bytes": recovery.discarded_bytes}))
    w.close()
    after = verify_logs([log], {verifier.key_id: verifier})
    assert after.ok, after.problem
    assert after.unsealed == 0
