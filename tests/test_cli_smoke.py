"""guardctl end to end, as a user runs it: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.lsm.btfblob import BtfBuilder

GUARDCTL = [sys.executable, "-m", "guard.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    full_env.update(env or {})
    return subprocess.run(
        [*GUARDCTL, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("guardctl: error: ")
    return lines[0]


@pytest.fixture
def btf_file(tmp_path: Path) -> Path:
    b = BtfBuilder()
    u64 = b.add_int("long long unsigned int", 8)
    i32 = b.add_int("int", 4, signed=True)
    dentry = b.add_struct("dentry", 8, [("d_flags", u64, 0, 0)])
    dptr = b.add_ptr(dentry)
    path = b.add_struct("path", 16, [("mnt", dptr, 0, 0), ("dentry", dptr, 64, 0)])
    file = b.add_struct("file", 96, [("f_count", u64, 0, 0), ("f_path", path, 64 * 8, 0)])
    proto = b.add_func_proto(i32, [("file", b.add_ptr(file))])
    b.add_func("bpf_lsm_file_open", proto)
    out = tmp_path / "vmlinux.btf"
    out.write_bytes(b.build())
    return out


def test_help_documents_exit_codes_and_examples() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for text in (
        "exit codes:",
        "3  a kernel feature",
        "4  the command needs root",
        "5  the configuration",
        "guardctl probe --json",
    ):
        assert text in proc.stdout


def test_usage_error_exits_2() -> None:
    assert run("no-such-command").returncode == 2
    assert run("btf").returncode == 2


def test_btf_offset_and_hook_from_a_given_file(btf_file: Path) -> None:
    proc = run("btf", "offset", "file.f_path.dentry", "path.dentry", "--btf", str(btf_file), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [(d["member"], d["offset"]) for d in data] == [("f_path.dentry", 72), ("dentry", 8)]
    proc = run("btf", "hook", "file_open", "--btf", str(btf_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "int bpf_lsm_file_open(struct file *file)"


def test_btf_errors_are_one_line(btf_file: Path, tmp_path: Path) -> None:
    proc = run("btf", "offset", "file.f_nope", "--btf", str(btf_file))
    assert proc.returncode == 1
    assert "f_nope" in one_line_error(proc)
    missing = tmp_path / "absent"
    proc = run("btf", "offset", "file.f_path", "--btf", str(missing))
    assert proc.returncode == 1
    assert str(missing) in one_line_error(proc)
    corrupt = tmp_path / "corrupt"
    corrupt.write_bytes(b"\x00" * 64)
    proc = run("btf", "hook", "file_open", "--btf", str(corrupt))
    assert proc.returncode == 1
    assert str(corrupt) in one_line_error(proc)


def test_bad_config_exits_5_naming_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "guard.toml"
    cfg.write_text("[audit]\nfsyncc = 1\n")
    proc = run("--config", str(cfg), "config", "show")
    assert proc.returncode == 5
    assert f"{cfg}: [audit] fsyncc: unknown key" in one_line_error(proc)
    proc = run("config", "show", env={"GUARD_CONFIG": str(tmp_path / "absent.toml")})
    assert proc.returncode == 5
    assert "cannot read config" in one_line_error(proc)


def test_config_precedence_file_env_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "guard.toml"
    cfg.write_text('fail_mode = "closed"\n[log]\nlevel = "warning"\n[limits]\nmax_rules = 7\n')
    proc = run(
        "--config",
        str(cfg),
        "--log-level",
        "debug",
        "config",
        "show",
        "--json",
        env={"GUARD_LIMITS_MAX_RULES": "9"},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["fail_mode"] == "closed"  # file
    assert data["limits"]["max_rules"] == 9  # env beats file
    assert data["log"]["level"] == "debug"  # flag beats file


def test_probe_without_root_exits_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process: a subprocess as another user cannot reach a venv under a private home.
    from guard import cli

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(cli, "probe_kernel", lambda *a, **k: pytest.fail("probe ran without root"))
    assert cli.main(["probe", "--json"]) == 4
    err = capsys.readouterr().err.strip()
    assert err == "guardctl: error: guardctl probe needs root (it loads BPF programs); run it with sudo"


def test_bench_kernel_without_root_exits_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from guard import cli

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(cli, "run_kernel_benchmark", lambda *a, **k: pytest.fail("ran without root"))
    assert cli.main(["bench", "kernel", "--json"]) == 4
    assert "guardctl bench kernel needs root" in capsys.readouterr().err


def test_bench_kernel_prints_a_row_per_hook_and_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from guard import cli

    row = {"hook_ns_per_call": 12.5, "hook_ns_per_op": 12.5, "loop_ns_per_op": 900.0, "hook_calls": 10,
           "hook_calls_per_op": 1.0, "counted": 10, "denied": 0, "loop_ops": 10}  # fmt: skip
    settings = ("off", "bare_scope", "enforce_rules")
    result = {
        "kernel": "6.1.0-test", "backend": "lsm", "rounds": 5, "iterations_per_round": 2,
        "rules": {"file_open": 1000, "socket_connect": 1000},
        "results": {hook: {s: row for s in settings} for hook in ("file_open", "socket_connect")},
        "ratios": {"file_open_hook_enforce_vs_bare_scope": 3.5}, "target": "t", "degraded": [],
        "programs": {"file_open": "lsm/file_open", "socket_connect": "lsm/socket_connect"},
        "scope_check": {}, "notes": [],
    }  # fmt: skip
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(cli, "run_kernel_benchmark", lambda **k: result)
    assert cli.main(["bench", "kernel"]) == 0
    out = capsys.readouterr().out
    assert "kernel 6.1.0-test, backend lsm: 1000 file rules, 1000 network rules" in out
    assert sum(1 for line in out.splitlines() if line.startswith(("file_open ", "socket_connect "))) == 6
    assert "file_open_hook_enforce_vs_bare_scope" in out
    assert "3.5" in out


def test_eql_check_prints_canonical_form_or_a_caret() -> None:
    proc = run("eql", "check", 'process where process.name:"sh"   and process.pid>1')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'process where process.name : "sh" and process.pid > 1'
    proc = run("eql", "check", 'process where process.name = "sh"')
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        'process where process.name = "sh"',
        "                           ^",
        "guardctl: error: <query>:1:28: unexpected '=' (use == to compare)",
    ]
    proc = run("eql", "check", "process where nope == 1", "--json")
    assert proc.returncode == 1
    assert "unknown field 'nope'" in one_line_error(proc)


def test_eql_conformance_json() -> None:
    proc = run("eql", "conformance", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["passed"], data["failed"], data["total"], data["failures"]) == (264, 0, 264, [])


def test_eql_conformance_missing_corpus(tmp_path: Path) -> None:
    proc = run("eql", "conformance", "--corpus", str(tmp_path / "none"))
    assert proc.returncode == 1
    assert str(tmp_path / "none") in one_line_error(proc)


REPLAY_POLICY = """
[[rule]]
id = "block-tmp-exec"
name = "Execution from /tmp"
severity = "high"
action = "block"
query = 'process where process.executable : "/tmp/*"'
"""


@pytest.fixture
def replayed(tmp_path: Path) -> dict[str, Path]:
    assert run("keygen", "-o", str(tmp_path / "keys"), "--name", "audit").returncode == 0
    (tmp_path / "p.guard").write_text(REPLAY_POLICY)
    events = [
        {"@timestamp": 1_763_800_000_000 + i, "event": {"category": "process", "id": f"e{i}"},
         "process": {"pid": 100 + i, "executable": exe}}
        for i, exe in enumerate(["/tmp/a", "/bin/ls", "/tmp/b"])
    ]  # fmt: skip
    (tmp_path / "rec.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    proc = run("replay", str(tmp_path / "rec.jsonl"), "--policy", str(tmp_path / "p.guard"),
               "--audit", str(tmp_path / "out" / "audit.jsonl"), "--key", str(tmp_path / "keys" / "audit.key"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "wrote 2 audit records" in proc.stdout
    return {"log": tmp_path / "out" / "audit.jsonl", "pub": tmp_path / "keys" / "audit.pub", "dir": tmp_path}


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run("keygen", "-o", str(tmp_path), "--name", "k").returncode == 0
    assert oct((tmp_path / "k.key").stat().st_mode & 0o777) == "0o600"
    proc = run("keygen", "-o", str(tmp_path), "--name", "k")
    assert proc.returncode == 1
    assert "exists already" in one_line_error(proc)


def test_audit_verify_ok_and_tampered(replayed: dict[str, Path]) -> None:
    log, pub = replayed["log"], replayed["pub"]
    proc = run("audit", "verify", str(log), "--key", str(pub), "--json")
    assert proc.returncode == 0, proc.stdout
    data = json.loads(proc.stdout)
    assert (data["ok"], data["records"], data["checkpoints"]) == (True, 3, 1)
    lines = log.read_text().splitlines()
    lines[0] = lines[0].replace("/tmp/a", "/tmp/z")
    log.write_text("\n".join(lines) + "\n")
    proc = run("audit", "verify", str(log), "--key", str(pub))
    assert proc.returncode == 1
    assert "FAILED: edited at seq 1" in proc.stdout


def test_audit_verify_needs_a_readable_key(replayed: dict[str, Path]) -> None:
    proc = run("audit", "verify", str(replayed["log"]), "--key", str(replayed["dir"] / "nope.pub"))
    assert proc.returncode == 1
    assert "nope.pub: cannot read key" in one_line_error(proc)


def test_audit_query_and_report(replayed: dict[str, Path]) -> None:
    proc = run("audit", "query", str(replayed["log"]), "--exe", "/tmp/b", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["process"]["exe"] for r in rows] == ["/tmp/b"]
    proc = run("audit", "query", str(replayed["log"]), "--since", "yesterday-ish")
    assert proc.returncode == 1
    assert "yesterday-ish" in one_line_error(proc)
    out = replayed["dir"] / "r.json"
    proc = run(
        "audit",
        "report",
        str(replayed["log"]),
        "--key",
        str(replayed["pub"]),
        "--format",
        "json",
        "-o",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["totals"]["deny"] == 2
    assert report["verification"]["ok"] is True


def test_bench_audit_json() -> None:
    proc = run("bench", "audit", "--records", "500", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["records"] == 500
    assert data["plain_jsonl_per_s"] > 0
    assert data["ratio_default_to_plain"] > 0
