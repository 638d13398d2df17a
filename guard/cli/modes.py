"""``guardctl enforce|detect|off`` and ``guardctl confirm``: switch modes, every hook or one rule."""

from __future__ import annotations

import argparse
from typing import Final

from guard.cli.command import Subparsers, command
from guard.cli.output import emit
from guard.cli.status import render_status
from guard.config import GuardConfig
from guard.model import Mode

__all__ = ["register"]

_MODES: Final = (
    ("enforce", "deny what the rules block"),
    ("detect", "decide but never deny: record would-block"),
    ("off", "hooks return at once"),
)
_CONFIRM_EXAMPLE: Final = (
    "  guardctl enforce --confirm-within 300   reverts in 5 min unless `guardctl confirm`\n"
)


def _cmd_mode(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import change_mode

    result = change_mode(
        cfg, Mode(args.command), rule=args.rule, reason=args.reason or "", confirm_within=args.confirm_within
    )

    def text() -> str:
        if result.get("agent") is False:
            target = f"rule {args.rule}" if args.rule else "every hook"
            return f"{target}: {args.command} (no agent running: written to the pinned maps, audited)"
        return render_status(result)

    emit(args, lambda: result, text)
    return 0


def _cmd_confirm(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import confirm

    result = confirm(cfg, reason=args.reason or "")
    print(f"confirmed: mode {result.get('mode')}")
    return 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl enforce|detect|off`` and ``guardctl confirm``."""
    for mode, text in _MODES:
        q = command(
            sub, mode, _cmd_mode,
            f"switch to {mode}: {text} (every hook, or one --rule)",
            "examples:\n"
            f"  guardctl {mode}\n  guardctl {mode} --rule block_tmp_exec --reason 'ticket 42'\n"
            + (_CONFIRM_EXAMPLE if mode == "enforce" else "")
            + "\nA switch is one write to a kernel map: through the running agent, or (no agent)\n"
            "to the maps it pinned. Needs root or the [agent] control_group; audited with your uid\n"
            "and --reason.",
        )  # fmt: skip
        q.add_argument("--rule", metavar="ID", help="only this rule")
        q.add_argument("--reason", metavar="TEXT", help="why (recorded in the audit trail)")
        q.add_argument("--json", action="store_true", help="print JSON")
        if mode == "enforce":
            q.add_argument(
                "--confirm-within", type=float, metavar="SECONDS", help="revert unless confirmed in time"
            )
        else:
            q.set_defaults(confirm_within=None)
    q = command(sub, "confirm", _cmd_confirm, "keep the modes a --confirm-within switch set")
    q.add_argument("--reason", metavar="TEXT", help="recorded in the audit trail")
