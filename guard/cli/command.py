"""How a command module declares its subcommands: the handler type, group and leaf parsers, the root check."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Final, TypeAlias

from guard.config import GuardConfig
from guard.errors import EXIT_CODES, PrivilegeError

__all__ = ["EXIT_HELP", "Handler", "Subparsers", "command", "group", "leaf", "need_root"]

#: a command's handler: the parsed arguments and the resolved configuration in, the exit code out
Handler = Callable[[argparse.Namespace, GuardConfig], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_HELP: Final = "\n".join(
    ["exit codes:", "  0  success", "  2  usage error (bad arguments)"]
    + [f"  {code}  {text}" for _, code, text in sorted(EXIT_CODES, key=lambda e: e[1])]
)


def need_root(command: str) -> None:
    """Raise a ``PrivilegeError`` naming ``guardctl <command>`` unless the caller is root."""
    if os.geteuid() != 0:
        raise PrivilegeError(f"guardctl {command} needs root (it loads BPF programs); run it with sudo")


def command(
    sub: Subparsers, name: str, handler: Handler, help_text: str, epilog: str = ""
) -> argparse.ArgumentParser:
    """Add a top-level command whose description is its help and whose epilog is laid out by hand."""
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=handler)
    return p


def _no_handler(args: argparse.Namespace, _cfg: GuardConfig) -> int:  # pragma: no cover - subcommand required
    raise AssertionError(f"command group {args.command!r} dispatched without a subcommand")


def group(sub: Subparsers, name: str, help_text: str) -> Subparsers:
    """Add a command group (``guardctl <name> SUBCOMMAND``) and return its subcommands."""
    p = command(sub, name, _no_handler, help_text)
    return p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)


def leaf(
    sub: Subparsers,
    name: str,
    handler: Handler,
    help_text: str,
    description: str = "",
    json_help: str = "print JSON",
    epilog: str = "",
) -> argparse.ArgumentParser:
    """Add a subcommand with a ``--json`` flag; only an epilog's examples are laid out by hand."""
    p = sub.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=epilog or None,
        # descriptions wrap; an epilog's examples keep their lines
        formatter_class=argparse.RawDescriptionHelpFormatter if epilog else argparse.HelpFormatter,
    )
    p.set_defaults(handler=handler)
    p.add_argument("--json", action="store_true", help=json_help)
    return p
