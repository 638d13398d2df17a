"""Replay: deterministic decisions from a policy over a recording, and an audit trail that verifies."""

from __future__ import annotations

import json
from pathlib import Path

from guard.audit.chain import AuditWriter
from guard.audit.record import canonical_json
from guard.audit.verify import verify_logs
from guard.offline.replay import replay, summarize
from guard.policy.loader import load_policy
from guard.policy.recording import read_recording
from guard.signing import generate_keypair, load_signer, load_verifier

POLICY = """
[[rule]]
id = "block-tmp-exec"
name = "Execution from /tmp"
severity = "high"
action = "block"
query = 'process where process.executable : ("/tmp/*", "/dev/shm/*")'

[[rule]]
id = "detect-curl"
name = "curl"
severity = "low"
action = "block"
mode = "detect"
query = 'process where process.name == "curl"'

[[rule]]
id = "seq-download-exec"
name = "Download then exec"
severity = "critical"
action = "kill"
query = '''
sequence by process.parent.pid with maxspan=1m
  [process where process.name == "curl"]
  [process where process.executable : "/tmp/*"]
'''

[[rule]]
id = "note-ls"
name = "ls"
severity = "low"
action = "alert"
query = 'process where process.name == "ls"'

[[rule]]
id = "off-rule"
name = "off"
severity = "low"
action = "block"
mode = "off"
query = "process where true"
"""


def recording(path: Path) -> Path:
    t = 1_763_800_000_000
    rows = []
    procs = [("curl", "/usr/bin/curl", 5), ("x", "/tmp/x", 5), ("ls", "/bin/ls", 5), ("y", "/dev/shm/y", 6)]
    for i, (name, exe, ppid) in enumerate(procs, 1):
        rows.append({"@timestamp": t + i * 1000, "event": {"category": "process", "id": f"e{i}", "sequence": i},
                     "process": {"name": name, "executable": exe, "pid": 10 + i, "parent": {"pid": ppid}},
                     "user": {"id": "1000"}})  # fmt: skip
    rows.reverse()  # order in the file must not matter
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_replay_decisions_and_summary(tmp_path: Path) -> None:
    (tmp_path / "p.guard").write_text(POLICY)
    policy = load_policy(tmp_path / "p.guard")
    events = read_recording(recording(tmp_path / "rec.jsonl"))
    decisions = replay(policy, events)
    assert [(d.rule.id, d.kind, d.event_ids) for d in decisions] == [
        ("detect-curl", "would_block", ("e1",)),
        ("block-tmp-exec", "deny", ("e2",)),
        ("seq-download-exec", "kill", ("e1", "e2")),
        ("note-ls", "alert", ("e3",)),
        ("block-tmp-exec", "deny", ("e4",)),
    ]
    rows = {r["rule"]: r for r in summarize(decisions, policy)}
    assert rows["block-tmp-exec"]["deny"] == 2
    assert rows["off-rule"] == {"rule": "off-rule", "action": "block", "mode": "off", "deny": 0,
                                "would_block": 0, "kill": 0, "alert": 0}  # fmt: skip


def write_trail(tmp_path: Path, name: str) -> Path:
    (tmp_path / "p.guard").write_text(POLICY)
    key = tmp_path / "keys" / "audit.key"
    if not key.exists():
        generate_keypair(tmp_path / "keys", "audit")
    out = tmp_path / name / "audit.jsonl"
    decisions = replay(load_policy(tmp_path / "p.guard"), read_recording(recording(tmp_path / "rec.jsonl")))
    with AuditWriter(out, load_signer(key), host="replay-host", clock=lambda: 0) as w:
        for d in decisions:
            if d.kind != "alert":
                w.append(d.to_audit("rec.jsonl"))
    return out


def test_replay_audit_trail_verifies_and_is_byte_identical(tmp_path: Path) -> None:
    first = write_trail(tmp_path, "one")
    second = write_trail(tmp_path, "two")
    verifier = load_verifier(tmp_path / "keys" / "audit.pub")
    assert verify_logs([first], {verifier.key_id: verifier}).ok
    assert first.read_bytes() == second.read_bytes()
    records = [json.loads(x) for x in first.read_text().splitlines()]
    deny = records[1]
    assert (deny["event"], deny["rule_id"], deny["hook"], deny["outcome"]) == ("deny", "block-tmp-exec",
                                                                              "bprm_check_security", "replayed")  # fmt: skip
    assert deny["process"]["exe"] == "/tmp/x"
    assert deny["process"]["uid"] == 1000
    assert deny["process"]["ppid"] == 5
    assert deny["ts"] == (1_763_800_000_000 + 2000) * 1_000_000
    assert deny["detail"]["replay"] is True
    assert canonical_json(deny)  # serialisable as the verifier sees it
