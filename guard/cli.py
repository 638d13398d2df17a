"""guardctl: the command line. Thin: parse arguments, resolve the configuration, call the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import structlog

from guard import __version__
from guard.audit import query as audit_query
from guard.audit import report as audit_report
from guard.audit.chain import AuditWriter
from guard.audit.record import read_records
from guard.audit.verify import verify_logs
from guard.bench.audit import run_benchmark
from guard.bench.engine import render_engine_benchmark, run_engine_benchmark
from guard.bench.kernel import BENCH_BACKENDS, render_kernel_benchmark, run_kernel_benchmark
from guard.bundles.bundle import (
    DEFAULT_TRUST_DIR,
    BundleStore,
    build_bundle,
    load_trust_store,
    parse_expires,
    sign_bundle,
    verify_bundle,
)
from guard.config import DEFAULT_CONFIG_PATH, GuardConfig, apply_env, apply_overrides, load_config
from guard.errors import (
    EXIT_CODES,
    BtfLookupError,
    BundleError,
    GuardError,
    PolicySyntaxError,
    PrivilegeError,
    exit_code_for,
)
from guard.logsetup import configure_logging
from guard.lsm.btf import DEFAULT_BTF_PATH, Btf
from guard.lsm.probe import FEATURES, Feature, ProbeReport, hook_enforcement, probe_kernel
from guard.model import HOOKS, BackendName, Hook, Mode
from guard.offline.policy_test import run_policy_tests
from guard.offline.query import run_query
from guard.offline.replay import replay, summarize
from guard.plan.explain import RuleExplanation, explain_policy
from guard.policy.analyzer import compile_query
from guard.policy.conformance import default_corpus, engine_evaluator, eql_evaluator, run_corpus
from guard.policy.elastic import import_elastic, write_policy
from guard.policy.engine import Engine
from guard.policy.loader import Rule, load_policy
from guard.policy.predicates.abi import RUNTIMES
from guard.policy.recording import RecordingHeader, load_recording, read_recording
from guard.policy.schema import ECS
from guard.signing import Verifier, generate_keypair, load_signer, load_verifier

__all__ = ["main"]

log = structlog.get_logger(__name__)

_EXIT_HELP: Final = "\n".join(
    ["exit codes:", "  0  success", "  2  usage error (bad arguments)"]
    + [f"  {code}  {text}" for _, code, text in sorted(EXIT_CODES, key=lambda e: e[1])]
)

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

{_EXIT_HELP}
"""


def _need_root(command: str) -> None:
    if os.geteuid() != 0:
        raise PrivilegeError(f"guardctl {command} needs root (it loads BPF programs); run it with sudo")


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _render_probe(report: ProbeReport) -> str:
    rows = [f"kernel {report.kernel}", "", f"{'FEATURE':<18} {'OK':<4} DETAIL"]
    rows += [f"{f.name:<18} {'yes' if f.available else 'no':<4} {f.detail}" for f in report.features]
    rows += ["", f"{'HOOK':<21} {'LSM PROG':<9} {'ENFORCEMENT (' + report.backend.value + ')':<24} PROTOTYPE"]
    rows += [
        f"{h.hook.value:<21} {'yes' if h.lsm_program else 'no':<9} {h.enforcement:<24} {h.prototype or '-'}"
        for h in report.hooks
    ]
    rows += ["", f"backend: {report.backend.value}"]
    rows += [f"  - {r}" for r in report.reasons]
    return "\n".join(rows)


def _cmd_probe(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    _need_root("probe")
    report = probe_kernel(args.btf)
    if args.json:
        _print_json(report.to_json())
    else:
        print(_render_probe(report))
    return 0


def _cmd_btf_offset(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    btf = Btf.from_file(args.btf)
    results = []
    for spec in args.member:
        struct, sep, path = spec.partition(".")
        if not sep or not path:
            raise BtfLookupError(f"{spec!r}: expected STRUCT.MEMBER[.MEMBER...]")
        results.append(btf.member_offset(struct, path))
    if args.json:
        _print_json(
            [
                {"struct": r.struct, "member": r.path, "offset": r.offset, "size": r.size, "type": r.type}
                | ({"bit_offset": r.bit_offset, "bitfield_size": r.bitfield_size} if r.bitfield_size else {})
                for r in results
            ]
        )
    else:
        for r in results:
            bits = f" (bitfield: bit {r.bit_offset}, {r.bitfield_size} bits)" if r.bitfield_size else ""
            print(f"{r.struct}.{r.path}: offset {r.offset}, size {r.size}, type {r.type}{bits}")
    return 0


def _cmd_btf_hook(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    btf = Btf.from_file(args.btf)
    protos = [btf.lsm_hook(name) for name in args.hook]
    if args.json:
        _print_json(
            [
                {
                    "hook": h,
                    "function": p.name,
                    "return_type": p.return_type,
                    "params": [{"name": a.name, "type": a.type} for a in p.params],
                }
                for h, p in zip(args.hook, protos, strict=True)
            ]
        )
    else:
        for p in protos:
            print(p.render())
    return 0


def _cmd_btf_size(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    btf = Btf.from_file(args.btf)
    sizes = {name: btf.type_size(name) for name in args.type}
    if args.json:
        _print_json(sizes)
    else:
        for name, size in sizes.items():
            print(f"{name}: {size}")
    return 0


def _cmd_config_show(args: argparse.Namespace, cfg: GuardConfig) -> int:
    data = dataclasses.asdict(cfg)
    if args.json:
        _print_json(data)
        return 0
    for key, value in data.items():
        if isinstance(value, dict):
            print(f"[{key}]")
            for k, v in value.items():
                print(f"{k} = {json.dumps(v)}")
        else:
            print(f"{key} = {json.dumps(value)}")
    return 0


def _cmd_eql_check(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    try:
        ir = compile_query(args.query)
    except PolicySyntaxError as exc:
        caret = exc.caret()
        if caret and not args.json:
            print(caret, file=sys.stderr)
        raise
    if args.json:
        _print_json(
            {
                "query": ir.query.render(),
                "kind": "sequence" if ir.is_sequence else "event",
                "fields": {name: kind.value for name, kind in sorted(ir.field_kinds.items())},
            }
        )
    else:
        print(ir.query.render())
    return 0


def _cmd_eql_conformance(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    corpus = Path(args.corpus) if args.corpus else default_corpus()
    evaluator = engine_evaluator(runtime=args.runtime) if args.runtime else eql_evaluator()
    report = run_corpus(corpus, evaluator)
    if args.json:
        _print_json(report.to_json())
    else:
        print(report.render_text())
    return 0 if report.failed == 0 else 1


def _audit_paths(args: argparse.Namespace, cfg: GuardConfig) -> list[Path]:
    return [Path(p) for p in args.paths] if args.paths else [Path(cfg.audit.path)]


def _verifiers(args: argparse.Namespace, cfg: GuardConfig) -> dict[str, Verifier]:
    if args.key:
        paths = [Path(k) for k in args.key]
    else:
        private = Path(cfg.audit.key_path)
        paths = [private.with_suffix(".pub") if private.with_suffix(".pub").exists() else private]
    verifiers = [load_verifier(p) for p in paths]
    return {v.key_id: v for v in verifiers}


def _cmd_keygen(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    key, pub, key_id = generate_keypair(Path(args.output), args.name)
    print(f"key id {key_id}\nprivate key: {key} (mode 0600)\npublic key:  {pub}")
    return 0


def _bundle_store(cfg: GuardConfig) -> BundleStore:
    return BundleStore(Path(cfg.agent.state_dir) / "bundles", keep=cfg.agent.keep_bundles)


def _cmd_bundle_build(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    bundle = build_bundle(
        Path(args.dir),
        Path(args.output),
        version=args.version,
        now=datetime.now(UTC),
        expires=parse_expires(args.expires) if args.expires else None,
        min_agent_version=args.min_agent_version or __version__,
    )
    if args.json:
        _print_json({"file": args.output, "sha256": bundle.digest, "manifest": bundle.manifest.to_json()})
        return 0
    print(
        f"{args.output}: version {bundle.manifest.version}, {len(bundle.files)} policy file(s), "
        f"sha256 {bundle.digest}; unsigned: sign it with guardctl bundle sign"
    )
    return 0


def _cmd_bundle_sign(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    signers = [load_signer(Path(k)) for k in args.key]
    bundle = sign_bundle(Path(args.file), signers)
    ids = ", ".join(s.key_id for s in signers)
    if args.json:
        _print_json(
            {
                "file": args.file,
                "signed_by": [s.key_id for s in signers],
                "signatures": sorted(bundle.signatures),
            }
        )
        return 0
    print(f"{args.file}: signed by {ids}; signatures now: {', '.join(sorted(bundle.signatures))}")
    return 0


def _cmd_bundle_verify(args: argparse.Namespace, cfg: GuardConfig) -> int:
    try:
        trust = load_trust_store(Path(args.trust))
        active = args.active_version if args.active_version is not None else _bundle_store(cfg).active()
        verified = verify_bundle(
            Path(args.file),
            trust,
            active_version=active,
            now=datetime.now(UTC),
            agent_version=__version__,
            allow_older=args.allow_older,
        )
        verified.compile()
    except BundleError as exc:
        if not args.json:
            raise
        _print_json(
            {
                "ok": False,
                "check": exc.check,
                "error": str(exc),
                "file": args.file,
                "version": None,
                "signers": [],
            }
        )
        return 1
    if args.json:
        _print_json({"ok": True, "check": None, "error": None, **verified.to_json()})
        return 0
    expires = verified.to_json()["expires"] or "never"
    unknown = f"; untrusted signatures not counted: {', '.join(verified.unknown_signers)}"
    print(
        f"{args.file}: ok: version {verified.version}, signed by {', '.join(verified.signers)} "
        f"(threshold {verified.threshold}), expires {expires}, {len(verified.files)} policy file(s)"
        + (unknown if verified.unknown_signers else "")
    )
    return 0


def _cmd_bundle_deploy(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import deploy_bundle

    result = deploy_bundle(cfg, Path(args.file), reason=args.reason or "")
    if args.json:
        _print_json(result)
    else:
        where = (
            "swapped in by the running agent" if result.get("agent") else "kept; the next agent start runs it"
        )
        print(f"{args.file}: version {result['version']} deployed (was {result['previous']}): {where}")
    return 0


def _cmd_rollback(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import rollback_bundle

    result = rollback_bundle(cfg, args.to, reason=args.reason or "")
    if args.json:
        _print_json(result)
    else:
        where = (
            "swapped in by the running agent" if result.get("agent") else "active for the agent's next start"
        )
        print(f"rolled back to version {result['version']} (was {result['previous']}): {where}")
    return 0


def _cmd_bundle_list(args: argparse.Namespace, cfg: GuardConfig) -> int:
    store = _bundle_store(cfg)
    entries = store.list()
    if args.json:
        _print_json([e.to_json() for e in entries])
        return 0
    if not entries:
        print(f"no bundles kept in {store.root}")
        return 0
    print(f"{'VERSION':>8}  {'ACTIVE':6}  {'CREATED':20}  {'EXPIRES':20}  SIGNERS  PATH")
    for e in entries:
        data = e.to_json()
        print(
            f"{e.version:>8}  {'*' if e.active else '':6}  {data['created']!s:20}  "
            f"{data['expires'] or 'never'!s:20}  {','.join(e.signers) or '-'}  {e.path}"
        )
    return 0


def _cmd_audit_verify(args: argparse.Namespace, cfg: GuardConfig) -> int:
    result = verify_logs(_audit_paths(args, cfg), _verifiers(args, cfg))
    if args.json:
        _print_json(result.to_json())
    else:
        print(result.render_text())
    return 0 if result.ok else 1


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


def _cmd_audit_query(args: argparse.Namespace, cfg: GuardConfig) -> int:
    records = audit_query.select(read_records(_audit_paths(args, cfg)), _filter(args))
    if args.json:
        print(audit_query.render_json(records))
    elif args.ndjson:
        sys.stdout.write(audit_query.render_ndjson(records))
    else:
        print(audit_query.render_table(records))
    return 0


def _cmd_audit_report(args: argparse.Namespace, cfg: GuardConfig) -> int:
    paths = _audit_paths(args, cfg)
    flt = _filter(args)
    verification = verify_logs(paths, _verifiers(args, cfg)) if not args.no_verify else None
    records = audit_query.select(read_records(paths), flt)
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


def _cmd_replay(args: argparse.Namespace, cfg: GuardConfig) -> int:
    policy = load_policy(Path(args.policy))
    recording = load_recording(Path(args.log))
    events = recording.events
    from guard.agent.service import runtime_budget

    # rules whose mode is off are not loaded
    engine = Engine(policy.rules, runtime_budget=runtime_budget(cfg), modules=policy.modules)
    decisions = replay(policy, events, engine=engine)
    written = 0
    if args.audit:
        signer = load_signer(Path(args.key or cfg.audit.key_path))
        audit = cfg.audit
        with AuditWriter(
            Path(args.audit), signer, checkpoint_every=audit.checkpoint_every,
            checkpoint_seconds=audit.checkpoint_seconds, rotate_bytes=audit.rotate_bytes, fsync=audit.fsync,
        ) as writer:  # fmt: skip
            for d in decisions:
                if d.kind != "alert":
                    writer.append(d.to_audit(args.log))
                    written += 1
    rows = summarize(decisions, policy)
    header = recording.header
    notes = _recording_notes(header, engine.ruleset_hash)
    if args.json:
        _print_json(
            {
                "policy": policy.source,
                "policy_digest": policy.digest,
                "ruleset_hash": engine.ruleset_hash,
                "schema": ECS.name,
                "schema_version": ECS.version,
                "recording": header.to_json() if header is not None else None,
                "notes": notes,
                "events": len(events),
                "late_events": engine.late_events,
                "rules": rows,
                "budgets": {rule_id: st.to_json() for rule_id, st in engine.stats.items()},
                "audit_records": written,
                "decisions": [
                    {"rule": d.rule.id, "kind": d.kind, "ts_ns": d.ts_ns, "event_ids": list(d.event_ids)}
                    for d in decisions
                ],
            }
        )  # fmt: skip
        return 0
    print(f"replayed {len(events)} events against {len(policy.rules)} rules ({policy.source})")
    print(f"rule set {engine.ruleset_hash[:16]}, schema {ECS.name} {ECS.version}")
    for note in notes:
        print(f"note: {note}")
    print(f"{'RULE':<32} {'ACTION':<7} {'MODE':<8} {'DENY':>6} {'WOULD':>6} {'KILL':>6} {'ALERT':>6}")
    for r in rows:
        print(
            f"{r['rule']!s:<32} {r['action']!s:<7} {r['mode']!s:<8} {r['deny']!s:>6} {r['would_block']!s:>6} "
            f"{r['kill']!s:>6} {r['alert']!s:>6}"
        )
    for ev in engine.budget_events():
        print(f"budget: rule {ev.rule_id}: {ev.kind} x{ev.count}")
    if args.audit:
        print(f"wrote {written} audit records to {args.audit}")
    return 0


def _recording_notes(header: RecordingHeader | None, ruleset_hash: str) -> list[str]:
    """Say what differs between the recording's producer and this replay."""
    if header is None:
        return ["the recording has no header: producer rule set and schema version unknown"]
    notes = []
    if header.ruleset_hash != ruleset_hash:
        notes.append(f"recorded under rule set {header.ruleset_hash[:16]}, replaying {ruleset_hash[:16]}")
    if (header.schema, header.schema_version) != (ECS.name, ECS.version):
        recorded = f"{header.schema} {header.schema_version}"
        notes.append(f"recorded with schema {recorded}, replaying with {ECS.name} {ECS.version}")
    return notes


def _cmd_query(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    ir = compile_query(args.query)
    rule = Rule("query", "query", "low", "alert", None, args.query, ir, "<command line>")
    events = read_recording(Path(args.log))
    matches = run_query(rule, events)
    if args.json:
        _print_json(
            {
                "query": ir.query.render(),
                "events": len(events),
                "count": len(matches),
                "matches": [
                    {
                        "join_keys": list(m.join_keys) if m.join_keys is not None else None,
                        "events": list(m.events),
                    }
                    for m in matches
                ],
            }
        )
        return 0
    for m in matches:
        if not ir.is_sequence:
            print(json.dumps(m.events[0], sort_keys=True))
            continue
        keys = ", ".join(json.dumps(k) for k in m.join_keys or ())
        print(f"sequence [{keys}]" if keys else "sequence")
        for ev in m.events:
            print("  " + ("(missing)" if ev is None else json.dumps(ev, sort_keys=True)))
    print(f"{len(matches)} match(es) in {len(events)} events", file=sys.stderr)
    return 0


def _cmd_policy_explain(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    policy = load_policy(Path(args.path))
    if args.backend == "auto":
        _need_root("policy explain (it probes the kernel; --backend lsm|compat explains without probing)")
        report = probe_kernel(args.btf)
        backend = report.backend
        levels = {h.hook: h.enforcement for h in report.hooks}
    else:
        backend = BackendName(args.backend)
        assumed = {name: Feature(name, True, "assumed") for name in FEATURES}
        levels = {hook: hook_enforcement(backend, hook, assumed, lsm_loads=True) for hook in HOOKS}
    rows = explain_policy(policy, backend, levels)
    if args.json:
        _print_json({"policy": policy.source, "backend": backend.value, "rules": [r.to_json() for r in rows]})
        return 0
    print(f"policy {policy.source}: {len(rows)} rules, backend {backend.value}")
    print(f"{'RULE':<28} {'ACTION':<7} {'PATH':<15} {'HOOK':<21} {'ENFORCEMENT':<14} WHY")
    for row in rows:
        hooks: list[tuple[Hook | None, str]] = [*row.hooks.items()] or [(None, "-")]
        for n, (hook, level) in enumerate(hooks):
            first = n == 0
            print(
                f"{row.rule.id if first else '':<28} {row.rule.action if first else '':<7} "
                f"{row.path if first else '':<15} {hook.value if hook else '-':<21} {level:<14} "
                f"{_runtime_note(row) + row.note if first else ''}".rstrip()
            )
    return 0


def _runtime_note(row: RuleExplanation) -> str:
    """Say which runtime decides a rule's predicates in the engine when it is not the default."""
    if row.runtime in ("kernel", "python"):
        return ""
    return f"[{row.runtime} predicates, fail {row.rule.fail_mode}] "


def _cmd_policy_test(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    policy = load_policy(Path(args.path))
    results = run_policy_tests(policy)
    failed = [r for r in results if not r.passed]
    untested = [r.id for r in policy.rules if not r.tests]
    if args.json:
        _print_json(
            {
                "policy": policy.source,
                "passed": len(results) - len(failed),
                "failed": len(failed),
                "untested": untested,
                "cases": [r.to_json() for r in results],
            }
        )
    else:
        for r in results:
            verdict = "ok  " if r.passed else "FAIL"
            outcome = "matched" if r.matched else "no match"
            print(f"{verdict} {r.rule} case {r.case}: expect {r.expect}, {outcome}")
        for rule_id in untested:
            print(f"note {rule_id}: no test cases")
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed ({len(policy.rules)} rules)")
    return 1 if failed else 0


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


def _render_status(data: dict[str, object]) -> str:
    lines = [f"agent pid {data.get('pid')}: backend {data.get('backend')}, mode {data.get('mode')}"]
    rule_modes = data.get("rule_modes") or {}
    if isinstance(rule_modes, dict) and rule_modes:
        lines.append("rule modes: " + ", ".join(f"{r}={m}" for r, m in rule_modes.items()))
    if data.get("confirm_pending_s") is not None:
        lines.append(
            f"pending confirmation: reverts in {data['confirm_pending_s']} s unless `guardctl confirm`"
        )
    rules = data.get("rules") or {}
    if isinstance(rules, dict):
        for path, ids in rules.items():
            lines.append(f"{path:<15} {', '.join(ids) if isinstance(ids, list) else ids}")
    counters = data.get("counters") or {}
    if isinstance(counters, dict):
        lines.append(f"{'HOOK':<21} {'CALLS':>10} {'DENIES':>8} {'WOULD':>8} {'DROPS':>6}")
        for hook, c in counters.items():
            if isinstance(c, dict):
                lines.append(
                    f"{hook:<21} {c.get('calls', 0):>10} {c.get('denies', 0):>8} "
                    f"{c.get('would_block', 0):>8} {c.get('ringbuf_drops', 0):>6}"
                )
    predicates = data.get("predicates") or {}
    if isinstance(predicates, dict) and predicates:
        lines.append(f"{'PREDICATE':<10} {'RUNTIME':<8} {'EVENTS':>8} {'ESCAPED':>8} {'TRAPPED':>8}  RULES")
        for name, p in predicates.items():
            if isinstance(p, dict):
                trapped = sum(int(p.get(k, 0)) for k in ("fuel", "memory", "stack", "error"))
                rules = ", ".join(p.get("rules") or [])
                lines.append(
                    f"{name:<10} {p.get('runtime')!s:<8} {p.get('events', 0):>8} {p.get('escaped', 0):>8} "
                    f"{trapped:>8}  {rules}"
                )
    recent = data.get("recent") or []
    if isinstance(recent, list) and recent:
        lines.append("recent decisions:")
        for r in recent[-10:]:
            if isinstance(r, dict):
                lines.append(
                    f"  {r.get('event'):<12} {r.get('rule')!s:<28} pid {r.get('pid')} {r.get('what')}"
                )
    return "\n".join(lines)


def _cmd_mode(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import change_mode

    result = change_mode(
        cfg, Mode(args.command), rule=args.rule, reason=args.reason or "", confirm_within=args.confirm_within
    )
    if args.json:
        _print_json(result)
    elif result.get("agent") is False:
        target = f"rule {args.rule}" if args.rule else "every hook"
        print(f"{target}: {args.command} (no agent running: written to the pinned maps, audited)")
    else:
        print(_render_status(result))
    return 0


def _cmd_confirm(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import confirm

    result = confirm(cfg, reason=args.reason or "")
    print(f"confirmed: mode {result.get('mode')}")
    return 0


def _cmd_status(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import status

    result = status(cfg)
    if args.json:
        _print_json(result)
    else:
        print(_render_status(result))
    return 0


def _cmd_demo(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.demo import render_rows, rows_json, run_demo
    from guard.agent.service import make_backend

    _need_root("demo")
    with tempfile.TemporaryDirectory(prefix="guard-bcc-") as cache:
        rows = run_demo(
            Path(args.policy),
            lambda: make_backend(args.backend, cfg, Path(cache), pin=False),
            log=(lambda m: None) if args.json else (lambda m: print(m, flush=True)),
        )
    if args.json:
        print(rows_json(rows))
    else:
        print()
        print(render_rows(rows))
    return 0 if all(r.ok for r in rows) else 1


def _cmd_rules_import(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    report = import_elastic([Path(p) for p in args.paths])
    written = write_policy(report, Path(args.output)) if args.output and report.imported else []
    if args.json:
        data = report.to_json()
        data["written"] = [str(p) for p in written]
        _print_json(data)
    else:
        print(report.render_text())
        if args.output:
            print(f"wrote {len(written)} policy file(s) to {args.output}")
    return 0


def _cmd_bench_engine(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    result = run_engine_benchmark(Path(args.rules) if args.rules else None, args.events)
    if args.json:
        _print_json(result)
    else:
        print(render_engine_benchmark(result))
    return 0


def _cmd_bench_runtimes(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    from guard.bench.runtimes import render_runtime_benchmark, run_runtime_benchmark

    rows = run_runtime_benchmark(args.batch, args.repeats)
    if args.json:
        _print_json({"batch": args.batch, "rows": [r.to_json() for r in rows]})
    else:
        print(render_runtime_benchmark(rows, args.batch))
    return 0


def _cmd_bench_audit(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    result = run_benchmark(args.records)
    if args.json:
        _print_json(result)
    else:
        print(
            f"{result['records']} records, 10% denies\n"
            f"  plain JSON lines:                {result['plain_jsonl_per_s']:>9} records/s (baseline)\n"
            f"  chained, default fsync policy:   {result['chained_default_fsync_per_s']:>9} records/s "
            f"({result['ratio_default_to_plain']}x)\n"
            f"  chained, fsync at checkpoints:   {result['chained_checkpoint_fsync_per_s']:>9} records/s "
            f"({result['ratio_checkpoint_only_to_plain']}x)"
        )
    return 0


def _cmd_bench_agent(args: argparse.Namespace, cfg: GuardConfig) -> int:
    from guard.agent.service import make_backend
    from guard.bench.agent import render_agent_benchmark, run_agent_benchmark

    _need_root("bench agent")
    with tempfile.TemporaryDirectory(prefix="guard-bcc-") as cache:
        result = run_agent_benchmark(
            lambda: make_backend(args.backend, cfg, Path(cache), pin=False),
            rate=args.rate,
            seconds=args.seconds,
        )
    if args.json:
        _print_json(result)
    else:
        print(render_agent_benchmark(result))
    return 0


def _cmd_bench_kernel(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    _need_root("bench kernel")
    with tempfile.TemporaryDirectory(prefix="guard-bcc-") as cache:
        result = run_kernel_benchmark(
            iterations=args.iterations, rules=args.rules, cache_dir=Path(cache), backend=args.backend
        )
    if args.json:
        _print_json(result)
    else:
        print(render_kernel_benchmark(result))
    return 0


Handler = Callable[[argparse.Namespace, GuardConfig], int]

_CONFIRM_EXAMPLE: Final = (
    "  guardctl enforce --confirm-within 300   reverts in 5 min unless `guardctl confirm`\n"
)


def _no_handler(args: argparse.Namespace, _cfg: GuardConfig) -> int:  # pragma: no cover - subcommand required
    raise AssertionError(f"command group {args.command!r} dispatched without a subcommand")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (exposed for tests and docs)."""
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

    def add(name: str, handler: Handler, help_text: str, epilog: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    p = add(
        "probe",
        _cmd_probe,
        "report what this kernel offers and which backend the agent would run (root)",
        "examples:\n  guardctl probe\n  guardctl probe --json | jq .backend\n\n"
        "It loads allow-all no-op programs (LSM, cgroup connect4, raw tracepoint) with the raw bpf(2) call,\n"
        "so the kernel's own errno is shown; everything is released before it exits.\n\n" + _EXIT_HELP,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--btf", default=DEFAULT_BTF_PATH, metavar="PATH", help="BTF file (default: %(default)s)")

    btf = add("btf", _no_handler, "read the kernel's BTF: member offsets, type sizes, LSM hook prototypes")
    btf_sub = btf.add_subparsers(dest="btf_command", metavar="SUBCOMMAND", required=True)
    for name, handler, help_text, arg, arg_help in (
        ("offset", _cmd_btf_offset, "byte offset of struct members", "member", "STRUCT.MEMBER[.MEMBER...]"),
        (
            "hook",
            _cmd_btf_hook,
            "prototype of LSM hooks (bpf_lsm_<hook>)",
            "hook",
            "hook name, e.g. file_open",
        ),
        ("size", _cmd_btf_size, "size of types", "type", "type name, e.g. 'struct file' or task_struct"),
    ):
        q = btf_sub.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(handler=handler)
        q.add_argument(arg, nargs="+", help=arg_help)
        q.add_argument("--json", action="store_true", help="print JSON")
        q.add_argument(
            "--btf", default=DEFAULT_BTF_PATH, metavar="PATH", help="BTF file (default: %(default)s)"
        )

    q = add("keygen", _cmd_keygen, "create an Ed25519 key pair (for audit checkpoints and bundles)")
    q.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for NAME.key and NAME.pub")
    q.add_argument("--name", default="guard", help="file name stem (default: %(default)s)")

    audit = add("audit", _no_handler, "the audit trail: verify, query, report")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)

    def audit_cmd(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        p = audit_sub.add_parser(name, help=text, description=text)
        p.set_defaults(handler=handler)
        p.add_argument(
            "paths", nargs="*", metavar="PATH", help="log files or directories (default: [audit] path)"
        )
        return p

    def keys(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--key",
            action="append",
            metavar="PUB",
            help="trusted public key (repeatable; default: [audit] .pub)",
        )

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--since", help="ISO time or relative (90s, 15m, 2h, 7d)")
        p.add_argument("--until", help="ISO time or relative")
        p.add_argument("--rule", action="append", help="rule id (repeatable)")
        p.add_argument(
            "--kind", action="append", help="event kind: deny, would_block, kill, ... (repeatable)"
        )
        p.add_argument("--verdict", action="append", help="verdict (repeatable)")
        p.add_argument("--exe", help="executable glob, e.g. '/tmp/*'")
        p.add_argument("--user", action="append", help="uid (repeatable)")
        p.add_argument("--pid", action="append", type=int, help="pid (repeatable)")

    q = audit_cmd(
        "verify", _cmd_audit_verify, "prove the hash chain and signed checkpoints (exit 1 on failure)"
    )
    keys(q)
    q.add_argument("--json", action="store_true", help="print JSON")
    q = audit_cmd("query", _cmd_audit_query, "filter records")
    filters(q)
    fmt = q.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON array")
    fmt.add_argument("--ndjson", action="store_true", help="one JSON record per line")
    q = audit_cmd(
        "report", _cmd_audit_report, "summary by rule, binary, user and hour; history; verification"
    )
    filters(q)
    keys(q)
    q.add_argument("--format", choices=["text", "json", "html"], default="text")
    q.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    q.add_argument("--no-verify", action="store_true", help="skip chain verification in the report")

    q = add("replay", _cmd_replay, "run a policy over an event recording: what would it have decided?")
    q.add_argument("log", metavar="LOG", help="JSON Lines of ECS events")
    q.add_argument("--policy", required=True, metavar="DIR", help="policy file or directory")
    q.add_argument("--audit", metavar="PATH", help="also write the decisions as an audit trail")
    q.add_argument("--key", metavar="KEY", help="signing key for --audit (default: [audit] key_path)")
    q.add_argument("--json", action="store_true", help="print JSON")

    q = add(
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

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Handler,
        help_text: str,
        description: str = "",
        json_help: str = "print JSON",
        epilog: str = "",
    ) -> argparse.ArgumentParser:
        p = group.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            epilog=epilog or None,
            # only an epilog's examples are laid out by hand; descriptions wrap as before
            formatter_class=argparse.RawDescriptionHelpFormatter if epilog else argparse.HelpFormatter,
        )
        p.set_defaults(handler=handler)
        p.add_argument("--json", action="store_true", help=json_help)
        return p

    bundle = add("bundle", _no_handler, "signed policy bundles: build, sign, verify, list the kept ones")
    bundle_sub = bundle.add_subparsers(dest="bundle_command", metavar="SUBCOMMAND", required=True)
    q = leaf(
        bundle_sub, "build", _cmd_bundle_build,
        "compile a policy directory and write an unsigned bundle (manifest with every file's SHA-256)",
        epilog="examples:\n"
        "  guardctl bundle build policies/ -o policy-7.bundle --version 7 --expires 2026-12-31",
    )  # fmt: skip
    q.add_argument("dir", metavar="DIR", help="policy directory (*.guard, *.toml)")
    q.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle to write")
    q.add_argument(
        "--version", required=True, type=int, metavar="N", help="bundle version (above the active one)"
    )
    q.add_argument("--expires", metavar="DATE", help="a UTC date (its midnight) or ISO-8601 time")
    q.add_argument("--min-agent-version", metavar="V", help=f"default: this agent's ({__version__})")
    q = leaf(
        bundle_sub, "sign", _cmd_bundle_sign,
        "sign a bundle's manifest (replaces an earlier signature by the same key)",
        epilog="examples:\n  guardctl bundle sign policy-7.bundle --key alice.key --key bob.key",
    )  # fmt: skip
    q.add_argument("file", metavar="FILE", help="the bundle")
    q.add_argument(
        "--key", required=True, action="append", metavar="KEY", help="Ed25519 private key (repeatable)"
    )
    q = leaf(
        bundle_sub, "verify", _cmd_bundle_verify,
        "verify a bundle as the agent would (exit 1 naming the failed check)",
        "Check the archive (limits, entries), the manifest, the trusted signatures against the\n"
        "threshold, expiry, the version against the active one, the minimum agent version, every\n"
        "file's SHA-256, and that the policy compiles.",
        'print {"ok", "check", "error", "version", "signers", ...}',
        epilog="examples:\n  guardctl bundle verify policy-7.bundle --trust /etc/guard/trust\n"
        "  guardctl bundle verify policy-7.bundle --json | jq .check",
    )  # fmt: skip
    q.add_argument("file", metavar="FILE", help="the bundle")
    q.add_argument(
        "--trust",
        default=DEFAULT_TRUST_DIR,
        metavar="DIR",
        help="*.pub keys and trust.toml (default: %(default)s)",
    )
    q.add_argument(
        "--active-version", type=int, metavar="N",
        help="refuse versions <= N (default: the active version in [agent] state_dir/bundles, if any)",
    )  # fmt: skip
    q.add_argument("--allow-older", action="store_true", help="skip the version check (a rollback)")
    q = leaf(bundle_sub, "list", _cmd_bundle_list, "the bundles kept in [agent] state_dir/bundles")
    q = leaf(
        bundle_sub, "deploy", _cmd_bundle_deploy,
        "verify, compile and swap in a bundle atomically (through the agent; else kept for its next start)",
        "Verify the bundle against [agent] trust_dir (signatures, threshold, expiry, a version above the\n"
        "active one, hashes), compile it, and swap the kernel maps and the engine with no instant where\n"
        "neither policy applies; keep it among the last [agent] keep_bundles. A rejected bundle changes\n"
        "nothing and is audited as bundle_rejected with the failed check.",
    )  # fmt: skip
    q.add_argument("file", metavar="FILE", help="the bundle")
    q.add_argument("--reason", metavar="TEXT", help="recorded in the audit trail")
    q = add(
        "rollback", _cmd_rollback,
        "swap back to a kept bundle (re-verified; default: the newest one below the active version)",
    )  # fmt: skip
    q.add_argument("--to", type=int, metavar="VERSION", help="the kept version to return to")
    q.add_argument("--reason", metavar="TEXT", help="recorded in the audit trail")
    q.add_argument("--json", action="store_true", help="print JSON")

    policy_cmd = add(
        "policy", _no_handler, "policy inspection: what each rule's enforcement can achieve here"
    )
    policy_sub = policy_cmd.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    q = leaf(
        policy_sub, "explain", _cmd_policy_explain,
        "per rule: the hook that decides it and what the backend achieves there",
        "For every rule: the hook its deciding event reaches (a sequence: its last step) and the\n"
        "enforcement the backend achieves there: inline deny, kill reaction, detect only or none.\n"
        "--backend auto probes this kernel (root); lsm or compat explain a backend as such.",
        epilog="examples:\n"
        "  guardctl policy explain policies/\n"
        "  guardctl policy explain policies/ --backend compat --json | jq '.rules[].hooks'",
    )  # fmt: skip
    q.add_argument("path", metavar="PATH", help="policy file or directory")
    q.add_argument("--backend", choices=["auto", "lsm", "compat", "fake"], default="auto")
    q.add_argument("--btf", default=DEFAULT_BTF_PATH, help="BTF file for the probe (default: %(default)s)")
    q = leaf(
        policy_sub, "test", _cmd_policy_test,
        "run every rule's embedded test cases (exit 1 when any fails)",
        "Run each rule's [[rule.tests]] cases through the engine: the events, and whether the rule\n"
        "must match them. One line per case, then the totals.",
        epilog="examples:\n  guardctl policy test policies/\n"
        "  guardctl policy test policies/ --json | jq .failed",
    )  # fmt: skip
    q.add_argument("path", metavar="PATH", help="policy file or directory")

    agent = add("agent", _no_handler, "the agent daemon")
    agent_sub = agent.add_subparsers(dest="agent_command", metavar="SUBCOMMAND", required=True)
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

    for mode, text in (
        ("enforce", "deny what the rules block"),
        ("detect", "decide but never deny: record would-block"),
        ("off", "hooks return at once"),
    ):
        q = add(
            mode, _cmd_mode,
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
    q = add("confirm", _cmd_confirm, "keep the modes a --confirm-within switch set")
    q.add_argument("--reason", metavar="TEXT", help="recorded in the audit trail")
    q = add(
        "status", _cmd_status, "the running agent: mode, backend, rules by path, counters, recent denials"
    )
    q.add_argument("--json", action="store_true", help="print JSON")
    q = add(
        "demo", _cmd_demo,
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

    rules = add("rules", _no_handler, "rule management: import Elastic detection rules")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    q = leaf(
        rules_sub, "import-elastic", _cmd_rules_import,
        "turn Elastic detection-rules TOML files (language = eql) into policy files",
        "Read Elastic detection-rules TOML files (or directories of them); import each EQL rule "
        "(action alert) and report per file: imported and compiled, or skipped with the exact reason.",
        "print JSON (imported, compiled, skipped, total, files)",
    )  # fmt: skip
    q.add_argument("paths", nargs="+", metavar="PATH", help="TOML files or directories")
    q.add_argument("-o", "--output", metavar="DIR", help="write the imported rules as policy files into DIR")

    bench = add("bench", _no_handler, "benchmarks (ratios against a baseline measured in the same run)")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", required=True)
    q = leaf(
        bench_sub, "kernel", _cmd_bench_kernel,
        "per-hook run time (bpf_stats) and open()/connect() loops: off vs bare scope vs enforce",
        "Load a data plane and measure, in one run, the file_open and socket_connect hooks\n"
        "off, as a bare scope check, and in enforce with --rules rules per hook (needs root).\n"
        "--backend lsm measures the BPF-LSM programs; compat the cgroup connect4 program and\n"
        "the sys_exit raw tracepoint (which runs on every syscall exit: read its ns per op).",
        epilog="examples:\n"
        "  guardctl bench kernel                   the plane the agent would run here (guardctl probe)\n"
        "  guardctl bench kernel --backend compat  cgroup sock_addr programs and raw tracepoints\n"
        "  guardctl bench kernel --json --iterations 2000 --rules 100 | jq .ratios",
    )  # fmt: skip
    q.add_argument("--iterations", type=int, default=20_000, help="calls per round (default: %(default)s)")
    q.add_argument("--rules", type=int, default=1_000, help="rules per hook (default: %(default)s)")
    q.add_argument(
        "--backend",
        choices=BENCH_BACKENDS,
        default="auto",
        help="the plane to measure: auto (the probe's choice, as the agent would run), lsm or compat "
        "(default: %(default)s)",
    )
    q = leaf(
        bench_sub, "engine", _cmd_bench_engine,
        "detection engine events/s with every rule loaded, against the eql library on the same input",
        "Generate (or load) a rule set and a synthetic ECS stream; measure our engine's events/s "
        "with all rules loaded and the eql library's PythonEngine on the same rules and events; print both, "
        "the ratio and our peak RSS.",
    )  # fmt: skip
    q.add_argument(
        "--rules", metavar="DIR", help="a policy dir or a dir of Elastic detection-rules TOML files"
    )
    q.add_argument("--events", type=int, default=200_000, help="events in the stream (default: %(default)s)")
    q = leaf(
        bench_sub, "agent", _cmd_bench_agent,
        "arming latency: ring-buffer entry to armed verdict in the map, idle and at --rate events/s",
        "Run the agent on the real plane with a sequence rule whose first step arms its last, and a\n"
        "load process (in a cgroup this creates) opening files at --rate per second; report arming\n"
        "latency p50/p99/max idle and loaded, the loaded/idle ratio and the events/s consumed.",
    )  # fmt: skip
    q.add_argument("--rate", type=float, default=10_000, help="events/s under load (default: %(default)s)")
    q.add_argument("--seconds", type=float, default=5.0, help="per phase (default: %(default)s)")
    q.add_argument("--backend", choices=["auto", "lsm", "compat"], default="auto")
    q = leaf(
        bench_sub, "runtimes", _cmd_bench_runtimes,
        "per-event cost of the python, wasm and lua predicate runtimes on the same batch",
        "Decide the same batch of process events with each predicate runtime: the codegen predicate\n"
        "per event (the baseline), and wasm and lua a batch per call (end to end, and the runtime\n"
        "call alone); print microseconds per event and the ratio to python. Fails if any runtime's\n"
        "answers differ.",
    )  # fmt: skip
    q.add_argument("--batch", type=int, default=4096, help="events per batch (default: %(default)s)")
    q.add_argument("--repeats", type=int, default=7, help="timed runs, best kept (default: %(default)s)")
    q = leaf(bench_sub, "audit", _cmd_bench_audit, "audit records/s vs plain JSON lines")
    q.add_argument("--records", type=int, default=20_000)

    eql = add("eql", _no_handler, "the EQL language: check a query, run Elastic's conformance corpus")
    eql_sub = eql.add_subparsers(dest="eql_command", metavar="SUBCOMMAND", required=True)
    q = leaf(
        eql_sub, "check", _cmd_eql_check,
        "parse and check a query against the ECS schema; print it in canonical form",
        "Parse and check a query against the ECS schema; print it in canonical form. "
        "Errors name the line, column, field or function.",
        "print JSON (canonical query, kind, fields read)",
    )  # fmt: skip
    q.add_argument("query", help="the EQL query")
    q = leaf(
        eql_sub, "conformance", _cmd_eql_conformance,
        "run Elastic's EQL spec queries (exit 1 when any fails)",
        "Run Elastic's EQL spec corpus (264 queries) through the parser, analyzer and "
        "offline evaluator, or with --runtime through the streaming engine with every predicate "
        "on that runtime; one line per file, every failure, and the total.",
        'print {"passed", "failed", "total", "failures"}',
    )  # fmt: skip
    q.add_argument(
        "--corpus", metavar="DIR", help="corpus directory (default: ../shared/conformance/elastic-eql)"
    )
    q.add_argument(
        "--runtime", choices=RUNTIMES,
        help="run the streaming engine with every predicate on this runtime (python: codegen)",
    )  # fmt: skip

    cfg = add("config", _no_handler, "show the effective configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    leaf(cfg_sub, "show", _cmd_config_show, "print the effective configuration")
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
    """Run guardctl; return the process exit code."""
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


if __name__ == "__main__":  # pragma: no cover - `python -m guard.cli`
    sys.exit(main())
