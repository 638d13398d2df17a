"""The kernel benchmark's pure parts: the rule set (every kind, nothing the loops touch), the plane it
measures, the text it prints."""

from __future__ import annotations

import pytest

from guard.bench.kernel import DENIED_FILE, DENIED_NET, bench_backend, bench_policy, render_kernel_benchmark
from guard.cli import build_parser
from guard.errors import KernelError
from guard.lsm.abi import ModeId
from guard.lsm.fake import FakeBackend
from guard.lsm.probe import ProbeReport
from guard.lsm.verdicts import KernelPolicy, build_tables
from guard.model import BackendName, Hook

TGID = 4242
TARGET = "/tmp/guard-bench-x/var/lib/app/data/allowed-file.txt"


def fake_with(policy: KernelPolicy) -> FakeBackend:
    fake = FakeBackend()
    fake.load()
    fake.set_scope(pids=[TGID])
    fake.apply(build_tables(policy))
    fake.configure({h: ModeId.ENFORCE for h in Hook}, agent_tgid=1)
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


@pytest.mark.parametrize("rules", [1, 2, 7, 10, 1000])
def test_the_scope_checks_calls_are_denied_by_every_rule_set(rules: int) -> None:
    fake = fake_with(bench_policy(rules))
    assert fake.open(TGID, path=f"/tmp/guard-bench-x/{DENIED_FILE}") != 0
    assert fake.connect(TGID, address=DENIED_NET[0], port=DENIED_NET[1]) != 0
    assert fake.open(TGID, path=TARGET) == 0
    assert fake.connect(TGID, address="127.0.0.1", port=40000) == 0


def report(backend: BackendName, *reasons: str) -> ProbeReport:
    return ProbeReport(kernel="6.1.0", features=(), hooks=(), backend=backend, reasons=reasons)


def test_auto_measures_the_plane_the_probe_chooses() -> None:
    assert bench_backend("auto", lambda: report(BackendName.COMPAT)) is BackendName.COMPAT
    assert bench_backend("auto", lambda: report(BackendName.LSM)) is BackendName.LSM


def test_a_forced_plane_needs_no_probe() -> None:
    def no_probe() -> ProbeReport:
        raise AssertionError("probed")

    assert bench_backend("lsm", no_probe) is BackendName.LSM
    assert bench_backend("compat", no_probe) is BackendName.COMPAT


def test_auto_on_a_kernel_with_neither_plane_says_why_in_one_line() -> None:
    fake = report(
        BackendName.FAKE,
        "lsm unusable: lsm_program: EPERM",
        "compat unusable: raw_tracepoint: EPERM",
        "compat unusable: bcc: not installed",
        "fake: nothing can be enforced on this kernel",
    )
    with pytest.raises(KernelError) as err:
        bench_backend("auto", lambda: fake)
    message = str(err.value)
    assert "\n" not in message
    assert "fake" in message
    assert "compat unusable: raw_tracepoint: EPERM; compat unusable: bcc: not installed" in message


@pytest.mark.parametrize("name", ["fake", "LSM", ""])
def test_only_auto_lsm_and_compat_are_planes_to_measure(name: str) -> None:
    with pytest.raises(ValueError, match="expected one of auto, lsm, compat"):
        bench_backend(name, lambda: report(BackendName.LSM))


def test_guardctl_bench_kernel_takes_the_backend() -> None:
    parser = build_parser()
    assert parser.parse_args(["bench", "kernel"]).backend == "auto"
    assert parser.parse_args(["bench", "kernel", "--backend", "compat", "--json"]).backend == "compat"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "kernel", "--backend", "fake"])


def row(calls_per_op: float, hook_ns: float | None) -> dict[str, object]:
    return {
        "loop_ns_per_op": 1200.0,
        "hook_ns_per_call": hook_ns,
        "hook_ns_per_op": 140.3,
        "hook_calls": 2245,
        "loop_ops": 1000,
        "hook_calls_per_op": calls_per_op,
        "counted": 1101,
        "denied": 0,
    }


def compat_result() -> dict[str, object]:
    return {
        "kernel": "6.18.44",
        "backend": "compat",
        "backend_requested": "auto",
        "programs": {"file_open": "raw_tracepoint/sys_exit", "socket_connect": "cgroup/connect4"},
        "iterations_per_round": 200,
        "rounds": 5,
        "degraded": [],
        "rules": {"file_open": 100, "socket_connect": 100, "file_kinds": {"exact": 50}},
        "results": {
            "file_open": {s: row(2.25, 69.3) for s in ("off", "bare_scope", "enforce_rules")},
            "socket_connect": {s: row(1.1, None) for s in ("off", "bare_scope", "enforce_rules")},
        },
        "scope_check": {
            "file_open": {"call": "open /tmp/x/cache-0/ab.tmp", "outcome": "killed (SIGKILL)", "denied": 1},
            "socket_connect": {"call": "connect udp 10.0.0.1:9", "outcome": "EPERM", "denied": 1},
        },
        "ratios": {
            "file_open_hook_enforce_vs_bare_scope": 7.21,
            "socket_connect_hook_bare_scope_vs_off": None,
        },
        "notes": ["file_open is decided by the sys_exit raw tracepoint, which runs on EVERY syscall exit"],
        "target": "the 100 ns file_open target is the BPF-LSM hook's",
    }


def test_the_text_names_the_backend_its_programs_and_notes() -> None:
    lines = render_kernel_benchmark(compat_result()).splitlines()
    assert lines[0].startswith("kernel 6.18.44, backend compat: 100 file rules, 100 network rules")
    assert "program for file_open: raw_tracepoint/sys_exit" in lines
    assert "program for socket_connect: cgroup/connect4" in lines
    assert len([line for line in lines if line.startswith(("file_open ", "socket_connect "))]) == 6
    connect_off = next(line for line in lines if line.startswith("socket_connect  off"))
    assert connect_off.split()[2] == "-"  # no runs: no ns per call
    assert "  file_open       open /tmp/x/cache-0/ab.tmp: killed (SIGKILL), 1 denied" in lines
    assert any(line.split() == ["socket_connect_hook_bare_scope_vs_off", "-"] for line in lines)
    assert (
        "  - file_open is decided by the sys_exit raw tracepoint, which runs on EVERY syscall exit" in lines
    )
    assert lines[-1] == "target: the 100 ns file_open target is the BPF-LSM hook's"


def test_the_text_leaves_out_empty_sections_and_shows_degradation() -> None:
    result = compat_result() | {"backend": "lsm", "scope_check": {}, "notes": [], "degraded": ["no paths"]}
    text = render_kernel_benchmark(result)
    assert "backend lsm" in text
    assert "degraded: no paths" in text
    assert "scope check" not in text
    assert "notes:" not in text
