"""``guardctl config show``: the effective configuration (defaults < file < GUARD_* env < flags)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from guard.cli.command import Subparsers, group, leaf
from guard.cli.output import emit
from guard.config import GuardConfig

__all__ = ["register", "render_config"]


def render_config(data: dict[str, object]) -> str:
    """Return the configuration as TOML-like text: top-level keys, then one ``[section]`` per table."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines)


def _cmd_config_show(args: argparse.Namespace, cfg: GuardConfig) -> int:
    data = dataclasses.asdict(cfg)
    emit(args, lambda: data, lambda: render_config(data))
    return 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl config show``."""
    cfg_sub = group(sub, "config", "show the effective configuration")
    leaf(cfg_sub, "show", _cmd_config_show, "print the effective configuration")
