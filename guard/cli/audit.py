"""``guardctl audit verify|query|report``: the hash-chained audit trail."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from guard.audit import query as audit_query
from guard.audit import report as audit_report
from guard.audit.record import iter_records
from guard.audit.verify import verify_logs
from guard.cli.command import Handler, Subparsers, group
from guard.cli.output import emit
from guard.config import GuardConfig
from guard.signing import Verifier, load_verifier

__all__ = ["register"]


def _audit_paths(args: argparse.Namespace, cfg: GuardConfig) -> list[Path]:
    return [Path(p) for p in args.paths] if args.paths else [Path(cfg.audit.path)]


def _verifiers(args: argparse.Namespace, cfg: GuardConfig) -> dict[str, Verifier]:
    """Return the trusted verifiers by key id: ``--key``, else the ``[audit]`` key's ``.pub`` (or the key)."""
    if args.key:
        paths = [Path(k) for k in args.key]
    else:
        private = Path(cfg.audit.key_path)
        paths = [private.with_suffix(".pub") if private.with_suffix(".pub").exists() else private]
    loaded = [load_verifier(p) for p in paths]
    return {v.key_id: v for v in loaded}


def _filter(args: argparse.Namespace) -> audit_query.Filter:
    now = time.time_ns()
    return audit_query.Filter(
        since_ns=audit_query.parse_time(args.since, now_ns=now) if args.since else None,
        until_ns=audit_query.parse_time(args.until, now_ns=now) if args.until else None,
        rules=tuple(args.rule or ()),
        kinds=tuple(args.kind or ()),
        verdicts=tuple(args.verdict or ()),
        exe=args.exe,
        users=tuple(args.user or ()),
        pids=tuple(args.pid or ()),
    )


def _cmd_audit_verify(args: argparse.Namespace, cfg: GuardConfig) -> int:
    result = verify_logs(_audit_paths(args, cfg), _verifiers(args, cfg))
    emit(args, result.to_json, result.render_text)
    return 0 if result.ok else 1


def _cmd_audit_query(args: argparse.Namespace, cfg: GuardConfig) -> int:
    stream = iter_records(_audit_paths(args, cfg))  # streamed: only the matches are kept
    if args.ndjson:
        flt = _filter(args)
        for record in stream:
            if audit_query.select([record], flt):
                sys.stdout.write(audit_query.render_ndjson([record]))
        return 0
    records = audit_query.select(stream, _filter(args))
    # the records keep their non-ASCII text, as in the trail
    emit(args, lambda: records, lambda: audit_query.render_table(records), ensure_ascii=False)
    return 0


def _cmd_audit_report(args: argparse.Namespace, cfg: GuardConfig) -> int:
    paths = _audit_paths(args, cfg)
    flt = _filter(args)
    verification = verify_logs(paths, _verifiers(args, cfg)) if not args.no_verify else None
    records = audit_query.select(iter_records(paths), flt)
    report = audit_report.build_report(records, verification, since_ns=flt.since_ns, until_ns=flt.until_ns)
    render = {
        "text": audit_report.render_text,
        "json": audit_report.render_json,
        "html": audit_report.render_html,
    }
    text = render[args.format](report)
    if args.output:
        Path(args.output).write_text(text if text.endswith("\n") else text + "\n")
        print(f"wrote {args.output} ({args.format})")
    else:
        print(text)
    return 0


def _add_keys(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key",
        action="append",
        metavar="PUB",
        help="trusted public key (repeatable; default: [audit] .pub)",
    )


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="ISO time or relative (90s, 15m, 2h, 7d)")
    p.add_argument("--until", help="ISO time or relative")
    p.add_argument("--rule", action="append", help="rule id (repeatable)")
    p.add_argument("--kind", action="append", help="event kind: deny, would_block, kill, ... (repeatable)")
    p.add_argument("--verdict", action="append", help="verdict (repeatable)")
    p.add_argument("--exe", help="executable glob, e.g. '/tmp/*'")
    p.add_argument("--user", action="append", help="uid (repeatable)")
    p.add_argument("--pid", action="append", type=int, help="pid (repeatable)")


def _audit_command(sub: Subparsers, name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=text, description=text)
    p.set_defaults(handler=handler)
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help="log files or directories (default: [audit] path)"
    )
    return p


def register(sub: Subparsers) -> None:
    """Add ``guardctl audit verify|query|report``."""
    audit_sub = group(sub, "audit", "the audit trail: verify, query, report")
    q = _audit_command(
        audit_sub,
        "verify",
        _cmd_audit_verify,
        "prove the hash chain and signed checkpoints (exit 1 on failure)",
    )
    _add_keys(q)
    q.add_argument("--json", action="store_true", help="print JSON")
    q = _audit_command(audit_sub, "query", _cmd_audit_query, "filter records")
    _add_filters(q)
    fmt = q.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON array")
    fmt.add_argument("--ndjson", action="store_true", help="one JSON record per line")
    q = _audit_command(
        audit_sub,
        "report",
        _cmd_audit_report,
        "summary by rule, binary, user and hour; history; verification",
    )
    _add_filters(q)
    _add_keys(q)
    q.add_argument("--format", choices=["text", "json", "html"], default="text")
    q.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    q.add_argument("--no-verify", action="store_true", help="skip chain verification in the report")
