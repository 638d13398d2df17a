"""guardctl's core: the parser assembled from the command modules, the configuration, errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from guard import __version__
from guard.cli import (
    agent,
    audit,
    bench,
    btf,
    bundle,
    config,
    demo,
    eql,
    keygen,
    modes,
    policy,
    probe,
    query,
    replay,
    rules,
    status,
)
from guard.cli.command import EXIT_HELP, Handler
from guard.config import DEFAULT_CONFIG_PATH, GuardConfig, apply_env, apply_overrides, load_config
from guard.errors import GuardError, exit_code_for
from guard.logsetup import configure_logging

__all__ = ["build_parser", "main", "resolve_config"]

#: the command modules, in the order ``guardctl --help`` lists their commands
_COMMANDS: Final = (
    probe, btf, keygen, audit, replay, query, bundle, policy,
    agent, modes, status, demo, rules, bench, eql, config,
)  # fmt: skip

_EPILOG: Final = f"""\
examples:
  guardctl probe                 what this kernel offers, and which backend the agent would run
  guardctl probe --json          the same as one JSON object (keys: backend, reasons, features, hooks, ...)
  guardctl btf offset file.f_path task_struct.tgid
  guardctl btf hook file_open    an LSM hook's prototype from the kernel's BTF
  guardctl config show           the effective configuration (defaults < file < GUARD_* env < flags)
  guardctl eql check 'process where process.name : "sh"'     parse and check a rule's query
  guardctl eql conformance       Elastic's 264 EQL spec queries against our evaluator
  guardctl keygen -o /etc/guard --name audit                  an Ed25519 key pair (name.key, name.pub)
  guardctl bundle build policies/ -o p.bundle --version 7 && guardctl bundle sign p.bundle --key a.key
  guardctl bundle verify p.bundle --trust /etc/guard/trust    signatures, threshold, expiry, version, hashes
  guardctl audit verify /var/log/guard/audit.jsonl --key /etc/guard/audit.pub
  guardctl audit query --since 2h --kind deny --exe '/tmp/*'
  guardctl audit report --format html -o report.html
  guardctl replay events.jsonl --policy policies/ --audit replay-audit.jsonl --key replay.key
  guardctl query 'sequence by process.entity_id [process where true] [network where true]' events.jsonl
  guardctl rules import-elastic detection-rules/rules/linux -o policies/elastic
  guardctl bench engine          events/s with every rule loaded, against the eql library
  guardctl bench runtimes        per-event cost of the python, wasm and lua predicate runtimes
  guardctl bench kernel --json   hook run time off / bare scope / 1,000 rules, on the agent's plane

{EXIT_HELP}
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser: the global options, then each command module's subcommands."""
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
    for module in _COMMANDS:
        module.register(sub)
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
    """Run guardctl; return the exit code (a ``GuardError``: one line, its traceback too with --debug)."""
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
