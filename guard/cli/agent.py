"""``guardctl agent run``: the agent daemon in the foreground."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from guard.cli.command import Subparsers, group
from guard.config import GuardConfig
from guard.model import Mode

__all__ = ["register"]


def _cmd_agent_run(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import run_agent

    with tempfile.TemporaryDirectory(prefix="guard-bcc-") as cache:
        return run_agent(
            cfg,
            policy=Path(args.policy) if args.policy else None,
            bundle=Path(args.bundle) if args.bundle else None,
            backend=args.backend or cfg.agent.backend,
            mode=Mode(args.mode) if args.mode else None,
            cgroups=[Path(c) for c in args.cgroup or []],
            pids=list(args.pid or []),
            all_tasks=args.all,
            cache_dir=Path(cache),
            alerts=Path(args.alerts or cfg.agent.alerts_path),
        )


def register(sub: Subparsers) -> None:
    """Add ``guardctl agent run``."""
    agent_sub = group(sub, "agent", "the agent daemon")
    q = agent_sub.add_parser(
        "run",
        help="run the agent in the foreground (root)",
        description="Load the policy, compile it to kernel verdicts, and enforce it on the scope until "
        "SIGTERM/SIGINT. Decisions go to the audit trail, alerts to [agent] alerts_path.",
        epilog="examples:\n"
        "  guardctl agent run --policy policies/ --cgroup /sys/fs/cgroup/workloads.slice/app\n"
        "  guardctl agent run --policy policies/ --pid 4242 --mode detect\n"
        "  guardctl agent run --policy /etc/guard/policies --all   (as deploy/kestrel-guard.service does)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.set_defaults(handler=_cmd_agent_run)
    src = q.add_mutually_exclusive_group()
    src.add_argument("--policy", metavar="DIR", help="policy file or directory")
    src.add_argument(
        "--bundle", metavar="FILE", help="a signed bundle (verified against [agent] trust_dir, then kept)"
    )
    q.add_argument(
        "--cgroup", action="append", metavar="PATH", help="a cgroup v2 directory to govern (repeatable)"
    )
    q.add_argument("--pid", action="append", type=int, metavar="N", help="a process to govern (repeatable)")
    q.add_argument("--all", action="store_true", help="govern every task on the machine but the agent")
    q.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        help="initial mode (default: the modes the last agent left in the pinned maps, else enforce)",
    )
    q.add_argument("--backend", choices=["auto", "lsm", "compat", "fake"], help="default: [agent] backend")
    q.add_argument("--alerts", metavar="PATH", help="alerts as ECS JSON lines (default: [agent] alerts_path)")
