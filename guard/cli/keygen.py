"""``guardctl keygen``: an Ed25519 key pair for audit checkpoints and bundles."""

from __future__ import annotations

import argparse
from pathlib import Path

from guard.cli.command import Subparsers, command
from guard.config import GuardConfig
from guard.signing import generate_keypair

__all__ = ["register"]


def _cmd_keygen(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    key, pub, key_id = generate_keypair(Path(args.output), args.name)
    print(f"key id {key_id}\nprivate key: {key} (mode 0600)\npublic key:  {pub}")
    return 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl keygen``."""
    q = command(sub, "keygen", _cmd_keygen, "create an Ed25519 key pair (for audit checkpoints and bundles)")
    q.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for NAME.key and NAME.pub")
    q.add_argument("--name", default="guard", help="file name stem (default: %(default)s)")
