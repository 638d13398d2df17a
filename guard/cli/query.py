"""``guardctl query``: search an event recording with EQL."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from guard.cli.command import Subparsers, command
from guard.cli.output import emit
from guard.config import GuardConfig
from guard.offline.query import run_query
from guard.policy.analyzer import compile_query
from guard.policy.loader import Rule
from guard.policy.recording import open_recording

__all__ = ["register"]


def _cmd_query(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    ir = compile_query(args.query)
    rule = Rule("query", "query", "low", "alert", None, args.query, ir, "<command line>")
    with open_recording(Path(args.log)) as recording:  # streamed: memory bounded by a batch, not the file
        matches = run_query(rule, recording.events())
        count = recording.count

    def text() -> str:
        lines = []
        for m in matches:
            if not ir.is_sequence:
                lines.append(json.dumps(m.events[0], sort_keys=True))
                continue
            keys = ", ".join(json.dumps(k) for k in m.join_keys or ())
            lines.append(f"sequence [{keys}]" if keys else "sequence")
            lines += [
                "  " + ("(missing)" if ev is None else json.dumps(ev, sort_keys=True)) for ev in m.events
            ]
        return "\n".join(lines)

    emit(
        args,
        lambda: {
            "query": ir.query.render(),
            "events": count,
            "count": len(matches),
            "matches": [
                {
                    "join_keys": list(m.join_keys) if m.join_keys is not None else None,
                    "events": list(m.events),
                }
                for m in matches
            ],
        },
        text,
    )
    if not args.json:
        print(f"{len(matches)} match(es) in {count} events", file=sys.stderr)
    return 0


def register(sub: Subparsers) -> None:
    """Add ``guardctl query``."""
    q = command(
        sub,
        "query",
        _cmd_query,
        "search an event recording with EQL (sequences included; | head and | tail apply)",
        "examples:\n  guardctl query 'process where process.name == \"curl\"' events.jsonl\n"
        "  guardctl query 'sequence by process.entity_id [process where true] [network where true] | head 5' "
        "events.jsonl --json",
    )
    q.add_argument("query", metavar="EQL", help="the query")
    q.add_argument("log", metavar="LOG", help="JSON Lines of ECS events")
    q.add_argument("--json", action="store_true", help="print JSON")
