"""guardctl: the command line. Thin: parse arguments, resolve the configuration, call the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import structlog

from guard import __version__
from guard.config import DEFAULT_CONFIG_PATH, GuardConfig, apply_env, apply_overrides, load_config
from guard.errors import (
    EXIT_CODES,
    BtfLookupError,
    GuardError,
    PolicySyntaxError,
    PrivilegeError,
    exit_code_for,
)
from guard.logsetup import configure_logging
from guard.lsm.btf import DEFAULT_BTF_PATH, Btf
from guard.lsm.probe import ProbeReport, probe_kernel
from guard.policy.analyzer import compile_query
from guard.policy.conformance import default_corpus, eql_evaluator, run_corpus

__all__ = ["main"]

log = structlog.get_logger(__name__)

_EXIT_HELP: Final = "\n".join(
    ["exit codes:", "  0  success", "  2  usage error (bad arguments)"]
    + [f"  {code}  {text}" for _, code, text in sorted(EXIT_CODES, key=lambda e: e[1])]
)

_EPILOG: Final = f"""\
examples:
  guardctl probe                 what this kernel offers, and which backend the agent would run
  guardctl probe --json          the same as one JSON object (keys: backend, reasons, features, hooks, ...)
  guardctl btf offset file.f_path task_struct.tgid
  guardctl btf hook file_open    an LSM hook's prototype from the kernel's BTF
  guardctl config show           the effective configuration (defaults < file < GUARD_* env < flags)
  guardctl eql check 'process where process.name : "sh"'     parse and check a rule's query
  guardctl eql conformance       Elastic's 264 EQL spec queries against our evaluator

{_EXIT_HELP}
"""


def _need_root(command: str) -> None:
    if os.geteuid() != 0:
        raise PrivilegeError(f"guardctl {command} needs root (it loads BPF programs); run it with sudo")


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _render_probe(report: ProbeReport) -> str:
    rows = [f"kernel {report.kernel}", "", f"{'FEATURE':<18} {'OK':<4} DETAIL"]
    rows += [f"{f.name:<18} {'yes' if f.available else 'no':<4} {f.detail}" for f in report.features]
    rows += ["", f"{'HOOK':<21} {'LSM PROG':<9} {'ENFORCEMENT (' + report.backend.value + ')':<24} PROTOTYPE"]
    rows += [
        f"{h.hook.value:<21} {'yes' if h.lsm_program else 'no':<9} {h.enforcement:<24} {h.prototype or '-'}"
        for h in report.hooks
    ]
    rows += ["", f"backend: {report.backend.value}"]
    rows += [f"  - {r}" for r in report.reasons]
    return "\n".join(rows)


def _cmd_probe(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    _need_root("probe")
    report = probe_kernel(args.btf)
    if args.json:
        _print_json(report.to_json())
    else:
        print(_render_probe(report))
    return 0


def _cmd_btf_offset(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    btf = Btf.from_file(args.btf)
    results = []
    for spec in args.member:
        struct, sep, path = spec.partition(".")
        if not sep or not path:
            raise BtfLookupError(f"{spec!r}: expected STRUCT.MEMBER[.MEMBER...]")
        results.append(btf.member_offset(struct, path))
    if args.json:
        _print_json(
            [
                {"struct": r.struct, "member": r.path, "offset": r.offset, "size": r.size, "type": r.type}
                | ({"bit_offset": r.bit_offset, "bitfield_size": r.bitfield_size} if r.bitfield_size else {})
                for r in results
            ]
        )
    else:
        for r in results:
            bits = f" (bitfield: bit {r.bit_offset}, {r.bitfield_size} bits)" if r.bitfield_size else ""
            print(f"{r.struct}.{r.path}: offset {r.offset}, size {r.size}, type {r.type}{bits}")
    return 0


def _cmd_btf_hook(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    btf = Btf.from_file(args.btf)
    protos = [btf.lsm_hook(name) for name in args.hook]
    if args.json:
        _print_json(
            [
                {
                    "hook": h,
                    "function": p.name,
                    "return_type": p.return_type,
                    "params": [{"name": a.name, "type": a.type} for a in p.params],
                }
                for h, p in zip(args.hook, protos, strict=True)
            ]
        )
    else:
        for p in protos:
            print(p.render())
    return 0


def _cmd_btf_size(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    btf = Btf.from_file(args.btf)
    sizes = {name: btf.type_size(name) for name in args.type}
    if args.json:
        _print_json(sizes)
    else:
        for name, size in sizes.items():
            print(f"{name}: {size}")
    return 0


def _cmd_config_show(args: argparse.Namespace, cfg: GuardConfig) -> int:
    data = dataclasses.asdict(cfg)
    if args.json:
        _print_json(data)
        return 0
    for key, value in data.items():
        if isinstance(value, dict):
            print(f"[{key}]")
            for k, v in value.items():
                print(f"{k} = {json.dumps(v)}")
        else:
            print(f"{key} = {json.dumps(value)}")
    return 0


def _cmd_eql_check(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    try:
        ir = compile_query(args.query)
    except PolicySyntaxError as exc:
        caret = exc.caret()
        if caret and not args.json:
            print(caret, file=sys.stderr)
        raise
    if args.json:
        _print_json(
            {
                "query": ir.query.render(),
                "kind": "sequence" if ir.is_sequence else "event",
                "fields": {name: kind.value for name, kind in sorted(ir.field_kinds.items())},
            }
        )
    else:
        print(ir.query.render())
    return 0


def _cmd_eql_conformance(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    corpus = Path(args.corpus) if args.corpus else default_corpus()
    report = run_corpus(corpus, eql_evaluator())
    if args.json:
        _print_json(report.to_json())
    else:
        print(report.render_text())
    return 0 if report.failed == 0 else 1


Handler = Callable[[argparse.Namespace, GuardConfig], int]


def _no_handler(args: argparse.Namespace, _cfg: GuardConfig) -> int:  # pragma: no cover - subcommand required
    raise AssertionError(f"command group {args.command!r} dispatched without a subcommand")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="guardctl",
        description="kestrel-guard: inline enforcement for Linux (BPF-LSM, EQL rules, audit trail).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kestrel-guard {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help=f"config file (default: $GUARD_CONFIG or {DEFAULT_CONFIG_PATH})"
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="ops log level")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler, help_text: str, epilog: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    p = add(
        "probe",
        _cmd_probe,
        "report what this kernel offers and which backend the agent would run (root)",
        "examples:\n  guardctl probe\n  guardctl probe --json | jq .backend\n\n"
        "It loads allow-all no-op programs (LSM, cgroup connect4, raw tracepoint) with the raw bpf(2) call,\n"
        "so the kernel's own errno is shown; everything is released before it exits.\n\n" + _EXIT_HELP,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--btf", default=DEFAULT_BTF_PATH, metavar="PATH", help="BTF file (default: %(default)s)")

    btf = add("btf", _no_handler, "read the kernel's BTF: member offsets, type sizes, LSM hook prototypes")
    btf_sub = btf.add_subparsers(dest="btf_command", metavar="SUBCOMMAND", required=True)
    for name, handler, help_text, arg, arg_help in (
        ("offset", _cmd_btf_offset, "byte offset of struct members", "member", "STRUCT.MEMBER[.MEMBER...]"),
        (
            "hook",
            _cmd_btf_hook,
            "prototype of LSM hooks (bpf_lsm_<hook>)",
            "hook",
            "hook name, e.g. file_open",
        ),
        ("size", _cmd_btf_size, "size of types", "type", "type name, e.g. 'struct file' or task_struct"),
    ):
        q = btf_sub.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(handler=handler)
        q.add_argument(arg, nargs="+", help=arg_help)
        q.add_argument("--json", action="store_true", help="print JSON")
        q.add_argument(
            "--btf", default=DEFAULT_BTF_PATH, metavar="PATH", help="BTF file (default: %(default)s)"
        )

    eql = add("eql", _no_handler, "the EQL language: check a query, run Elastic's conformance corpus")
    eql_sub = eql.add_subparsers(dest="eql_command", metavar="SUBCOMMAND", required=True)
    q = eql_sub.add_parser(
        "check", help="parse and check a query against the ECS schema; print it in canonical form",
        description="Parse and check a query against the ECS schema; print it in canonical form. "
        "Errors name the line, column, field or function.",
    )  # fmt: skip
    q.set_defaults(handler=_cmd_eql_check)
    q.add_argument("query", help="the EQL query")
    q.add_argument("--json", action="store_true", help="print JSON (canonical query, kind, fields read)")
    q = eql_sub.add_parser(
        "conformance", help="run Elastic's EQL spec queries (exit 1 when any fails)",
        description="Run Elastic's EQL spec corpus (264 queries) through the parser, analyzer and "
        "evaluator; one line per file, every failure, and the total.",
    )  # fmt: skip
    q.set_defaults(handler=_cmd_eql_conformance)
    q.add_argument(
        "--corpus", metavar="DIR", help="corpus directory (default: ../shared/conformance/elastic-eql)"
    )
    q.add_argument("--json", action="store_true", help='print {"passed", "failed", "total", "failures"}')

    cfg = add("config", _no_handler, "show the effective configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    q = cfg_sub.add_parser("show", help="print the effective configuration")
    q.set_defaults(handler=_cmd_config_show)
    q.add_argument("--json", action="store_true", help="print JSON")
    return parser


def resolve_config(args: argparse.Namespace, env: dict[str, str]) -> GuardConfig:
    """Apply the precedence defaults < file < GUARD_* env < flags."""
    explicit = args.config or env.get("GUARD_CONFIG")
    path = Path(explicit or DEFAULT_CONFIG_PATH)
    cfg = load_config(path) if explicit or path.exists() else GuardConfig()
    cfg = apply_env(cfg, env)
    if args.log_level:
        cfg = apply_overrides(cfg, {"log": {"level": args.log_level}})
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    """Run guardctl; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = resolve_config(args, dict(os.environ))
        configure_logging(cfg.log.level, cfg.log.format)
        handler: Handler = args.handler
        return handler(args, cfg)
    except GuardError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"guardctl: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into a reader that exited early (e.g. `| head`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover - `python -m guard.cli`
    sys.exit(main())
