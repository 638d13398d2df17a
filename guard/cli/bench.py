"""``guardctl bench <area>``: benchmarks against a baseline measured in the same run."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import guard.cli
from guard.bench.audit import render_audit_benchmark, run_benchmark
from guard.bench.engine import render_engine_benchmark, run_engine_benchmark
from guard.bench.kernel import BENCH_BACKENDS, render_kernel_benchmark
from guard.cli.command import Subparsers, group, leaf, need_root
from guard.cli.output import emit
from guard.config import GuardConfig

__all__ = ["register"]


def _cmd_bench_engine(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    result = run_engine_benchmark(Path(args.rules) if args.rules else None, args.events)
    emit(args, lambda: result, lambda: render_engine_benchmark(result))
    return 0


def _cmd_bench_runtimes(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    from guard.bench.runtimes import render_runtime_benchmark, run_runtime_benchmark

    rows = run_runtime_benchmark(args.batch, args.repeats)
    emit(
        args,
        lambda: {"batch": args.batch, "rows": [r.to_json() for r in rows]},
        lambda: render_runtime_benchmark(rows, args.batch),
    )
    return 0


def _cmd_bench_audit(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    result = run_benchmark(args.records)
    emit(args, lambda: result, lambda: render_audit_benchmark(result))
    return 0


def _cmd_bench_dfa(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    from guard.bench.dfa import render_dfa_benchmark, run_dfa_benchmark

    result = run_dfa_benchmark(args.paths, args.seed, single_lane=args.single_lane)
    emit(args, lambda: result, lambda: render_dfa_benchmark(result))
    return 0


def _cmd_bench_parse(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    from guard.bench.parse import render_parse_benchmark, run_parse_benchmark

    result = run_parse_benchmark(args.rounds)
    emit(args, lambda: result, lambda: render_parse_benchmark(result))
    return 0


def _cmd_bench_agent(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import make_backend
    from guard.bench.agent import render_agent_benchmark, run_agent_benchmark

    need_root("bench agent")
    with tempfile.TemporaryDirectory(prefix="guard-bcc-") as cache:
        result = run_agent_benchmark(
            lambda: make_backend(args.backend, cfg, Path(cache), pin=False),
            rate=args.rate,
            seconds=args.seconds,
        )
    emit(args, lambda: result, lambda: render_agent_benchmark(result))
    return 0


def _cmd_bench_kernel(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    need_root("bench kernel")
    with tempfile.TemporaryDirectory(prefix="guard-bcc-") as cache:
        result = guard.cli.run_kernel_benchmark(
            iterations=args.iterations, rules=args.rules, cache_dir=Path(cache), backend=args.backend
        )
    emit(args, lambda: result, lambda: render_kernel_benchmark(result))
    return 0


def _register_kernel(bench_sub: Subparsers) -> None:
    q = leaf(
        bench_sub, "kernel", _cmd_bench_kernel,
        "per-hook run time (bpf_stats) and open()/connect() loops: off vs bare scope vs enforce",
        "Load a data plane and measure, in one run, the file_open and socket_connect hooks\n"
        "off, as a bare scope check, and in enforce with --rules rules per hook (needs root).\n"
        "--backend lsm measures the BPF-LSM programs; compat the cgroup connect4 program and\n"
        "the sys_exit raw tracepoint (which runs on every syscall exit: read its ns per op).",
        epilog="examples:\n"
        "  guardctl bench kernel                   the plane the agent would run here (guardctl probe)\n"
        "  guardctl bench kernel --backend compat  cgroup sock_addr programs and raw tracepoints\n"
        "  guardctl bench kernel --json --iterations 2000 --rules 100 | jq .ratios",
    )  # fmt: skip
    q.add_argument("--iterations", type=int, default=20_000, help="calls per round (default: %(default)s)")
    q.add_argument("--rules", type=int, default=1_000, help="rules per hook (default: %(default)s)")
    q.add_argument(
        "--backend",
        choices=BENCH_BACKENDS,
        default="auto",
        help="the plane to measure: auto (the probe's choice, as the agent would run), lsm or compat "
        "(default: %(default)s)",
    )


def _register_engine_agent(bench_sub: Subparsers) -> None:
    q = leaf(
        bench_sub, "engine", _cmd_bench_engine,
        "detection engine events/s with every rule loaded, against the eql library on the same input",
        "Generate (or load) a rule set and a synthetic ECS stream; measure our engine's events/s "
        "with all rules loaded and the eql library's PythonEngine on the same rules and events; print both, "
        "the ratio and our peak RSS.",
    )  # fmt: skip
    q.add_argument(
        "--rules", metavar="DIR", help="a policy dir or a dir of Elastic detection-rules TOML files"
    )
    q.add_argument("--events", type=int, default=200_000, help="events in the stream (default: %(default)s)")
    q = leaf(
        bench_sub, "agent", _cmd_bench_agent,
        "arming latency: ring-buffer entry to armed verdict in the map, idle and at --rate events/s",
        "Run the agent on the real plane with a sequence rule whose first step arms its last, and a\n"
        "load process (in a cgroup this creates) opening files at --rate per second; report arming\n"
        "latency p50/p99/max idle and loaded, the loaded/idle ratio and the events/s consumed.",
    )  # fmt: skip
    q.add_argument("--rate", type=float, default=10_000, help="events/s under load (default: %(default)s)")
    q.add_argument("--seconds", type=float, default=5.0, help="per phase (default: %(default)s)")
    q.add_argument("--backend", choices=["auto", "lsm", "compat"], default="auto")


def _register_runtimes_audit(bench_sub: Subparsers) -> None:
    q = leaf(
        bench_sub, "runtimes", _cmd_bench_runtimes,
        "per-event cost of the python, wasm and lua predicate runtimes on the same batch",
        "Decide the same batch of process events with each predicate runtime: the codegen predicate\n"
        "per event (the baseline), and wasm and lua a batch per call (end to end, and the runtime\n"
        "call alone); print microseconds per event and the ratio to python. Fails if any runtime's\n"
        "answers differ.",
    )  # fmt: skip
    q.add_argument("--batch", type=int, default=4096, help="events per batch (default: %(default)s)")
    q.add_argument("--repeats", type=int, default=7, help="timed runs, best kept (default: %(default)s)")
    q = leaf(bench_sub, "audit", _cmd_bench_audit, "audit records/s vs plain JSON lines")
    q.add_argument("--records", type=int, default=20_000)


def _register_dfa_parse(bench_sub: Subparsers) -> None:
    q = leaf(
        bench_sub, "dfa", _cmd_bench_dfa,
        "the path-pattern DFA of a realistic rule set: build, size, walk per path against re",
        "Build the DFA of ~200 contains literals and ~100 globs; report build time, states, byte\n"
        "classes, the bytes the BPF maps must hold, lookups per walked byte, and the user-space walk\n"
        "per path against Python's re on the same generated paths (disagreements counted).",
    )  # fmt: skip
    q.add_argument("--paths", type=int, default=100_000, help="generated paths walked (default: %(default)s)")
    q.add_argument("--seed", type=int, default=1, help="path generator seed (default: %(default)s)")
    q.add_argument(
        "--single-lane", action="store_true", help="compile with split_anchored=False (one product automaton)"
    )
    q = leaf(
        bench_sub, "parse", _cmd_bench_parse,
        "parse time of a ~300-character EQL sequence query against CPython's ast.parse (target: < 1 ms)",
    )  # fmt: skip
    q.add_argument("--rounds", type=int, default=2000, help="timed parses (default: %(default)s)")


def register(sub: Subparsers) -> None:
    """Add ``guardctl bench kernel|engine|agent|runtimes|audit|dfa|parse``."""
    bench_sub = group(sub, "bench", "benchmarks (ratios against a baseline measured in the same run)")
    _register_kernel(bench_sub)
    _register_engine_agent(bench_sub)
    _register_runtimes_audit(bench_sub)
    _register_dfa_parse(bench_sub)
