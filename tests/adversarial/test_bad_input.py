"""Bad input: deep nesting, huge sizes and endless files give one-line errors and bounded memory.

Each test feeds an entry point what an attacker (or a broken tool) could: a query or a file nested
thousands of levels deep, ``runs=`` in the billions, a 10 MiB query, a recording far larger than the
memory its reading may take, and an alerts file that would grow without end.
"""

from __future__ import annotations

import contextlib
import grp
import io
import json
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from guard.cli.core import main

DEEP = 5000


def guardctl(*args: str) -> tuple[int, str, str]:
    """Run guardctl in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def refused(code: int, err: str, *needles: str) -> str:
    """Assert exit 1 with one ``guardctl: error:`` line (eql check may print a caret above it)."""
    assert code == 1, err[-2000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("guardctl: error: ")]
    assert len(errors) == 1, err[-2000:]
    assert err.rstrip("\n").endswith(errors[0])
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


DEEP_QUERIES = {
    "not": "process where " + "not " * DEEP + "true",
    "call": "process where " + "length(" * DEEP + "process.name" + ")" * DEEP + " > 1",
    "negation": "process where " + "-" * DEEP + "process.pid < 1",
    "arithmetic": "process where " + " + ".join(["process.pid"] * DEEP) + " > 1",
    "and_or": "process where " + "(process.pid > 1 and (process.pid < 9 or " * DEEP + "true" + "))" * DEEP,
    "sequence": "sequence [process where " + "not " * DEEP + "true] [process where true]",
}


# --------------------------------------------------------------------------- queries


@pytest.mark.parametrize("kind", sorted(DEEP_QUERIES))
def test_eql_check_refuses_deep_nesting(kind: str) -> None:
    code, _out, err = guardctl("eql", "check", DEEP_QUERIES[kind])
    refused(code, err, "nests deeper than")


def test_eql_check_parentheses_alone_do_not_nest() -> None:
    n = 100_000
    code, out, err = guardctl("eql", "check", "process where " + "(" * n + "true" + ")" * n)
    assert (code, err) == (0, "")
    assert out.strip() == "process where true"


def test_eql_check_refuses_a_10_mib_query() -> None:
    code, _out, err = guardctl(
        "eql", "check", "process where " + "true or " * (10 * 1024 * 1024 // 8) + "true"
    )
    refused(code, err, "characters long, over the limit")
    assert len(err) < 500  # the query is not echoed back


def test_runs_limit() -> None:
    query = "sequence [process where true] with runs={} [process where true]"
    code, _out, err = guardctl("eql", "check", query.format(99999999999))
    refused(code, err, "runs must be a positive integer, at most 100")
    code, _out, err = guardctl("eql", "check", query.format(100))
    assert (code, err) == (0, "")


def _recording(path: Path, events: int = 3, extra: str = "") -> Path:
    lines = [
        json.dumps({"@timestamp": i, "event": {"category": "process"}, "process": {"name": "sh", "pid": i}})
        for i in range(events)
    ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_query_refuses_a_deep_query(tmp_path: Path) -> None:
    code, _out, err = guardctl("query", DEEP_QUERIES["not"], str(_recording(tmp_path / "r.jsonl")))
    refused(code, err, "nests deeper than")


def _policy(path: Path, query: str) -> Path:
    path.write_text(
        f'[[rule]]\nid = "r"\nname = "r"\nseverity = "low"\naction = "alert"\nquery = {json.dumps(query)}\n'
    )
    return path


def test_policy_file_with_a_deep_rule(tmp_path: Path) -> None:
    policy = _policy(tmp_path / "p.guard", DEEP_QUERIES["call"])
    code, _out, err = guardctl("policy", "test", str(policy))
    refused(code, err, str(policy), "nests deeper than")
    rec = _recording(tmp_path / "r.jsonl")
    code, _out, err = guardctl("replay", str(rec), "--policy", str(policy))
    refused(code, err, str(policy), "nests deeper than")


def test_policy_file_nested_deep_in_toml(tmp_path: Path) -> None:
    policy = _policy(tmp_path / "p.guard", 'process where process.name == "[[["')
    policy.write_text(policy.read_text() + "x = " + "[" * DEEP + "]" * DEEP + "\n")
    code, _out, err = guardctl("policy", "test", str(policy))
    refused(code, err, f"{policy}:7:", "nested deeper than")


def test_policy_brackets_inside_strings_do_not_count(tmp_path: Path) -> None:
    query = "sequence " + " ".join(f'[process where process.name == "{"[" * 40}{i}"]' for i in range(3))
    policy = _policy(tmp_path / "p.guard", query)
    code, _out, err = guardctl("replay", str(_recording(tmp_path / "r.jsonl")), "--policy", str(policy))
    assert code == 0, err


@pytest.mark.parametrize("shape", ["array", "object"])
def test_recording_with_deeply_nested_events(tmp_path: Path, shape: str) -> None:
    deep = "[" * DEEP + "]" * DEEP if shape == "array" else '{"a":' * DEEP + "1" + "}" * DEEP
    rec = _recording(tmp_path / "r.jsonl", extra='{"event": {"category": "process"}, "x": ' + deep + "}\n")
    code, _out, err = guardctl("query", "process where true", str(rec))
    refused(code, err, f"{rec}:4:", "nests deeper than")
    policy = _policy(tmp_path / "p.guard", "process where true")
    code, _out, err = guardctl("replay", str(rec), "--policy", str(policy))
    refused(code, err, f"{rec}:4:", "nests deeper than")


# --------------------------------------------------------------------------- bounded memory

BIG_EVENTS = 100_000


@pytest.fixture(scope="module")
def big_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 230 MB of events, one of them the needle."""
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    pad = "x" * 2000
    with path.open("w") as f:
        f.write(
            json.dumps({"kestrel_recording": {"version": 1, "schema": "ecs", "schema_version": "8.11.0",
                                              "ruleset_hash": "0" * 64}}) + "\n"
        )  # fmt: skip
        for i in range(BIG_EVENTS):
            name = "needle" if i == BIG_EVENTS // 2 else f"p{i % 97}"
            ev = {"@timestamp": i, "event": {"category": "process", "id": str(i)},
                  "process": {"name": name, "pid": i, "command_line": pad}}  # fmt: skip
            f.write(json.dumps(ev, separators=(",", ":")) + "\n")
    return path


def _peak(*args: str) -> tuple[int, int, str, str]:
    tracemalloc.start()
    try:
        code, out, err = guardctl(*args)
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return code, peak, out, err


def test_query_streams_a_big_recording(big_recording: Path) -> None:
    size = big_recording.stat().st_size
    code, peak, out, err = _peak(
        "query", 'process where process.name == "needle"', str(big_recording), "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["events"], doc["count"]) == (BIG_EVENTS, 1)
    assert doc["matches"][0]["events"][0]["event"]["id"] == str(BIG_EVENTS // 2)
    assert peak < min(size // 4, 64 * 1024 * 1024), (peak, size)  # a few batches, not the file


def test_replay_streams_a_big_recording(big_recording: Path, tmp_path: Path) -> None:
    size = big_recording.stat().st_size
    policy = _policy(tmp_path / "p.guard", 'process where process.name == "needle"')
    code, peak, out, err = _peak("replay", str(big_recording), "--policy", str(policy), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["events"] == BIG_EVENTS
    assert [d["event_ids"] for d in doc["decisions"]] == [[str(BIG_EVENTS // 2)]]
    assert peak < min(size // 4, 64 * 1024 * 1024), (peak, size)  # a few batches, not the file


def test_streamed_query_equals_the_whole_list(tmp_path: Path) -> None:
    """Batches cut from the stream are the ones the engine cut from a list: same matches, same order."""
    from guard.offline.query import run_query
    from guard.policy.analyzer import compile_query
    from guard.policy.loader import Rule
    from guard.policy.recording import load_recording

    rec = _recording(tmp_path / "r.jsonl", events=50)
    q = "sequence by process.name [process where process.pid % 3 == 0] [process where process.pid % 3 == 1]"
    rule = Rule("q", "q", "low", "alert", None, q, compile_query(q), "<q>")
    events = load_recording(rec).events
    for batch in (1, 7, 4096):
        assert run_query(rule, iter(events), batch=batch) == run_query(rule, list(events), batch=len(events))


# --------------------------------------------------------------------------- alerts file


def _alert_line(n: int) -> str:
    return json.dumps({"n": n, "pad": "y" * 80}) + "\n"


def test_alerts_file_is_private(tmp_path: Path) -> None:
    from guard.actions.alerts import AlertFile

    path = tmp_path / "alerts.jsonl"
    f = AlertFile(path, rotate_bytes=1 << 20, keep=2)
    f.write(_alert_line(0))
    f.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # left world-readable by an older agent: narrowed on open
    AlertFile(path, rotate_bytes=1 << 20, keep=2).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    group = grp.getgrgid(os.getegid()).gr_name
    g = tmp_path / "grouped.jsonl"
    AlertFile(g, rotate_bytes=1 << 20, keep=2, group=group).close()
    assert stat.S_IMODE(g.stat().st_mode) == 0o640
    assert g.stat().st_gid == os.getegid()


def test_alerts_file_rotates_by_size(tmp_path: Path) -> None:
    from guard.actions.alerts import AlertFile, AlertWriter

    path = tmp_path / "alerts.jsonl"
    f = AlertFile(path, rotate_bytes=1000, keep=3)
    writer = AlertWriter(f)
    for n in range(200):  # ~19 KB through a 1000-byte file
        writer.write(f"r{n}", [{"event": {"category": "process"}, "n": n}], "alert", plan=None, ruleset="x")
    f.close()
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2", "alerts.jsonl.3"]
    kept: list[int] = []
    for p in reversed(files):  # oldest first
        assert p.stat().st_size <= 1000
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        kept += [json.loads(line)["n"] for line in p.read_text().splitlines()]  # whole lines only
    assert kept == list(range(kept[0], 200))  # the newest lines, in order, none torn


def test_alerts_file_reopens_on_request(tmp_path: Path) -> None:
    from guard.actions.alerts import AlertFile

    path = tmp_path / "alerts.jsonl"
    f = AlertFile(path, rotate_bytes=1 << 20, keep=2)
    f.write(_alert_line(1))
    path.rename(tmp_path / "moved.jsonl")  # an outside rotator, then SIGHUP
    f.request_reopen()
    f.write(_alert_line(2))
    f.close()
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == [2]
    assert [json.loads(x)["n"] for x in (tmp_path / "moved.jsonl").read_text().splitlines()] == [1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_alerts_settings_in_config() -> None:
    from guard.config import config_from_mapping
    from guard.errors import ConfigError

    cfg = config_from_mapping({"agent": {"alerts_rotate_bytes": 4096, "alerts_keep": 2}})
    assert (cfg.agent.alerts_rotate_bytes, cfg.agent.alerts_keep) == (4096, 2)
    with pytest.raises(ConfigError, match="alerts_keep"):
        config_from_mapping({"agent": {"alerts_keep": 0}})


@pytest.mark.skipif(os.geteuid() != 0, reason="agent run needs root")
def test_an_alerts_file_that_cannot_be_opened_is_one_line_and_releases_the_trail(tmp_path: Path) -> None:
    from guard.agent.service import open_audit, run_agent
    from guard.config import GuardConfig, apply_overrides
    from guard.errors import ConfigError

    cfg = apply_overrides(
        GuardConfig(),
        {
            "agent": {"run_dir": str(tmp_path / "run"), "state_dir": str(tmp_path / "state")},
            "audit": {
                "path": str(tmp_path / "audit.jsonl"),
                "key_path": str(tmp_path / "keys" / "audit.key"),
            },
        },
    )
    missing = tmp_path / "no-such-dir" / "alerts.jsonl"
    with pytest.raises(ConfigError, match=r"alerts\.jsonl: cannot open the alerts file: No such file"):
        run_agent(
            cfg, policy=Path(__file__).resolve().parents[2] / "policies", backend="fake", mode=None,
            cgroups=[], pids=[os.getpid()], cache_dir=tmp_path, alerts=missing,
        )  # fmt: skip
    open_audit(cfg).close()  # the refused start closed its writer: the trail's lock is free again
