"""``guardctl demo``: the agent enforcing policies/ against a scripted attack, in each mode."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from guard.cli.command import Subparsers, command, need_root
from guard.cli.output import emit
from guard.config import GuardConfig

__all__ = ["register"]


def _cmd_demo(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.demo import render_rows, run_demo
    from guard.agent.service import make_backend

    need_root("demo")
    with tempfile.TemporaryDirectory(prefix="guard-bcc-") as cache:
        rows = run_demo(
            Path(args.policy),
            lambda: make_backend(args.backend, cfg, Path(cache), pin=False),
            log=(lambda m: None) if args.json else (lambda m: print(m, flush=True)),
        )
    # the text follows the progress lines after a blank line
    emit(args, lambda: [r.to_json() for r in rows], lambda: "\n" + render_rows(rows))
    return 0 if all(r.ok for r in rows) else 1


def register(sub: Subparsers) -> None:
    """Add ``guardctl demo``."""
    q = command(
        sub, "demo", _cmd_demo,
        "the agent enforcing policies/ against a scripted attack, in enforce, detect and off (root)",
        "In a cgroup it creates, run each attack scenario (exec from /tmp and /dev/shm, reading an SSH\n"
        "private key and /etc/shadow, a connect to a blocked network, ptrace of a protected process, and\n"
        "the sequence download -> chmod +x -> exec) under each mode; print expected and actual outcomes.\n"
        "Exit 1 when any row differs.",
    )  # fmt: skip
    q.add_argument(
        "--json", action="store_true", help="rows as JSON objects: scenario, mode, expected, actual"
    )
    q.add_argument("--policy", default="policies", metavar="DIR", help="default: %(default)s")
    q.add_argument("--backend", choices=["auto", "lsm", "compat"], default="auto")
