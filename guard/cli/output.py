"""A command's result on stdout: one JSON document under ``--json``, else its text."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

__all__ = ["emit", "print_json"]


def print_json(data: object, *, ensure_ascii: bool = True) -> None:
    """Print ``data`` as JSON indented by 2, keys in their order."""
    print(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=ensure_ascii))


def emit(
    args: argparse.Namespace,
    data: Callable[[], object],
    text: Callable[[], str],
    *,
    ensure_ascii: bool = True,
) -> None:
    """Print ``data()`` as JSON when ``args.json`` is set, else ``text()`` (an empty text prints nothing)."""
    if getattr(args, "json", False):
        print_json(data(), ensure_ascii=ensure_ascii)
        return
    rendered = text()
    if rendered:
        print(rendered)
