"""Policy files: TOML rules (``[[rule]]`` tables) loaded, validated and compiled to IR.

A policy is a file or a directory of ``*.guard`` / ``*.toml`` files. Each rule::

    [[rule]]
    id = "block-tmp-exec"           # unique in the policy
    name = "Execution from /tmp"
    severity = "high"               # low | medium | high | critical
    action = "block"                # block | alert | kill
    mode = "detect"                 # optional per-rule override: off | detect | enforce
    overflow = "evict_oldest"       # optional, sequences: evict_oldest | drop_new (budget full)
    query = '''process where ...'''
    [[rule.tests]]                  # optional: events and whether the rule must match them
    events = [{ "event.category" = "process", "process.executable" = "/tmp/x" }]
    expect = "match"                # match | no_match

Every error names the file, the rule and the field, on one line.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from guard.errors import PolicyError, PolicySemanticError, PolicySyntaxError
from guard.policy.analyzer import analyze
from guard.policy.ir import QueryIR
from guard.policy.parser import parse_query
from guard.policy.schema import ECS, Schema

__all__ = ["ACTIONS", "MODES", "OVERFLOW_POLICIES", "SEVERITIES", "Policy", "Rule", "RuleTest", "load_policy"]

ACTIONS: Final = ("block", "alert", "kill")
MODES: Final = ("off", "detect", "enforce")
SEVERITIES: Final = ("low", "medium", "high", "critical")
RUNTIMES: Final = ("python", "wasm", "lua")
#: what a sequence rule does when its pending-match budget is full: evict its least recently used
#: partial match, or refuse the new one
OVERFLOW_POLICIES: Final = ("evict_oldest", "drop_new")
_RULE_KEYS: Final = frozenset(
    {"id", "name", "severity", "action", "mode", "query", "tests", "runtime", "description", "overflow"}
)
_SUFFIXES: Final = (".guard", ".toml")


@dataclass(frozen=True, slots=True)
class RuleTest:
    """An embedded test case: events, and whether the rule must match them."""

    events: tuple[Mapping[str, object], ...]
    expect: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule."""

    id: str
    name: str
    severity: str
    action: str
    mode: str | None
    query: str
    ir: QueryIR
    path: str
    tests: tuple[RuleTest, ...] = ()
    runtime: str = "python"
    description: str = ""
    overflow: str = "evict_oldest"


@dataclass(frozen=True, slots=True)
class Policy:
    """A set of rules and the digest of the files they came from."""

    rules: tuple[Rule, ...]
    source: str
    digest: str

    def rule(self, rule_id: str) -> Rule:
        """Return a rule by id (KeyError when absent)."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    if path.is_file():
        return [path]
    raise PolicyError(f"{path}: no such policy file or directory")


def _text(
    where: str, table: Mapping[str, object], key: str, *, required: bool = True, choices: tuple[str, ...] = ()
) -> str:
    value = table.get(key)
    if value is None:
        if required:
            raise PolicyError(f"{where}: {key}: missing")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise PolicyError(f"{where}: {key}: expected a non-empty string, got {value!r}")
    if choices and value not in choices:
        raise PolicyError(f"{where}: {key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _tests(where: str, raw: object) -> tuple[RuleTest, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: tests: expected an array of tables")
    out = []
    for n, case in enumerate(raw, 1):
        at = f"{where}: tests[{n}]"
        if not isinstance(case, dict) or set(case) - {"events", "expect", "name"}:
            raise PolicyError(f"{at}: expected a table with events and expect")
        events = case.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
            raise PolicyError(f"{at}: events: expected a non-empty array of event tables")
        expect = _text(at, case, "expect", choices=("match", "no_match"))
        out.append(RuleTest(tuple(events), expect))
    return tuple(out)


def _compile(where: str, query: str, schema: Schema) -> QueryIR:
    try:
        return analyze(parse_query(query), schema)
    except PolicySyntaxError as exc:
        raise PolicySyntaxError(
            f"query: {exc.message}", path=where, line=exc.line, column=exc.column, source=exc.source
        ) from None
    except PolicySemanticError as exc:
        raise PolicySemanticError(f"{where}: query: {exc}") from None


def load_policy(path: Path, schema: Schema = ECS) -> Policy:
    """Load and compile every rule under ``path``; ids must be unique."""
    files = _files(path)
    if not files:
        raise PolicyError(f"{path}: no *.guard or *.toml policy files")
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    digest = hashlib.sha256()
    for f in files:
        try:
            raw = f.read_bytes()
            data = tomllib.loads(raw.decode("utf-8"))
        except OSError as exc:
            raise PolicyError(f"{f}: cannot read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise PolicyError(f"{f}: not UTF-8 text (byte {exc.start})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{f}: invalid TOML: {exc}") from exc
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0" + raw + b"\0")
        unknown = set(data) - {"rule"}
        if unknown:
            raise PolicyError(f"{f}: unknown top-level key(s) {sorted(unknown)}: rules go in [[rule]] tables")
        tables = data.get("rule", [])
        if not isinstance(tables, list) or not tables:
            raise PolicyError(f"{f}: no [[rule]] tables")
        for n, table in enumerate(tables, 1):
            where = f"{f}: rule #{n}"
            rule_id = _text(where, table, "id")
            where = f"{f}: rule '{rule_id}'"
            extra = set(table) - _RULE_KEYS
            if extra:
                raise PolicyError(f"{where}: unknown field(s) {sorted(extra)}")
            if rule_id in seen:
                raise PolicyError(f"{where}: id: duplicate, first defined in {seen[rule_id]}")
            seen[rule_id] = str(f)
            query = _text(where, table, "query")
            ir = _compile(where, query, schema)
            if ir.head is not None or ir.tail is not None:
                raise PolicyError(
                    f"{where}: query: '| head' / '| tail' select search results; a rule alerts on every match"
                )
            rules.append(
                Rule(
                    id=rule_id,
                    name=_text(where, table, "name"),
                    severity=_text(where, table, "severity", choices=SEVERITIES),
                    action=_text(where, table, "action", choices=ACTIONS),
                    mode=_text(where, table, "mode", required=False, choices=MODES) or None,
                    query=query,
                    ir=ir,
                    path=str(f),
                    tests=_tests(where, table.get("tests")),
                    runtime=_text(where, table, "runtime", required=False, choices=RUNTIMES) or "python",
                    description=_text(where, table, "description", required=False),
                    overflow=_text(where, table, "overflow", required=False, choices=OVERFLOW_POLICIES)
                    or "evict_oldest",
                )
            )
    return Policy(tuple(rules), str(path), digest.hexdigest())
