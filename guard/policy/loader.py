"""Policy files: TOML rules (``[[rule]]`` tables) loaded, validated and compiled to IR.

A policy is a file or a directory of ``*.guard`` / ``*.toml`` files. Each rule::

    [[rule]]
    id = "block-tmp-exec"           # unique in the policy
    name = "Execution from /tmp"
    severity = "high"               # low | medium | high | critical
    action = "block"                # block | alert | kill
    mode = "detect"                 # optional per-rule override: off | detect | enforce
    overflow = "evict_oldest"       # optional, sequences: evict_oldest | drop_new (budget full)
    runtime = "lua"                 # optional: python (default) | wasm | lua; a file-level
                                    # ``runtime = "..."`` sets it for every rule of the file
    fail_mode = "closed"            # optional: open (default) | closed: the answer for an event
                                    # whose wasm/lua predicate exceeded its budget or failed
    query = '''process where ...'''
    [[rule.tests]]                  # optional: events and whether the rule must match them
    events = [{ "event.category" = "process", "process.executable" = "/tmp/x" }]
    expect = "match"                # match | no_match

User functions (``lua:entropy(process.command_line) > 4.5``) come from the ``*.lua``, ``*.wat`` and
``*.wasm`` modules beside the policy (under a policy directory, or beside a policy file); a rule
that calls one runs on that module's runtime.

Every error names the file, the rule and the field, on one line.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from guard.errors import PolicyError, PolicySemanticError, PolicySyntaxError
from guard.policy.analyzer import analyze
from guard.policy.ir import QueryIR
from guard.policy.limits import MAX_DOCUMENT_DEPTH, nesting_overflow
from guard.policy.parser import parse_query
from guard.policy.predicates.abi import RUNTIMES, UserModule
from guard.policy.predicates.batch import FAIL_MODES
from guard.policy.predicates.lowering import user_calls
from guard.policy.schema import ECS, Schema

__all__ = [
    "ACTIONS",
    "MODES",
    "MODULE_SUFFIXES",
    "OVERFLOW_POLICIES",
    "POLICY_SUFFIXES",
    "SEVERITIES",
    "Policy",
    "Rule",
    "RuleTest",
    "load_policy",
]

ACTIONS: Final = ("block", "alert", "kill")
MODES: Final = ("off", "detect", "enforce")
SEVERITIES: Final = ("low", "medium", "high", "critical")
#: what a sequence rule does when its pending-match budget is full: evict its least recently used
#: partial match, or refuse the new one
OVERFLOW_POLICIES: Final = ("evict_oldest", "drop_new")
_RULE_KEYS: Final = frozenset(
    {"id", "name", "severity", "action", "mode", "query", "tests", "runtime", "description", "overflow",
     "fail_mode"}
)  # fmt: skip
POLICY_SUFFIXES: Final = (".guard", ".toml")
#: user-function modules read beside the policy
MODULE_SUFFIXES: Final = {".lua": "lua", ".wat": "wasm", ".wasm": "wasm"}


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
    fail_mode: str = "open"


@dataclass(frozen=True, slots=True)
class Policy:
    """A set of rules and the digest of the files they came from."""

    rules: tuple[Rule, ...]
    source: str
    digest: str
    modules: tuple[UserModule, ...] = ()

    def rule(self, rule_id: str) -> Rule:
        """Return a rule by id (KeyError when absent)."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in POLICY_SUFFIXES and p.is_file())
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


def _modules(path: Path) -> list[Path]:
    base = path if path.is_dir() else path.parent
    found = base.rglob("*") if path.is_dir() else base.glob("*")
    return sorted(p for p in found if p.suffix in MODULE_SUFFIXES and p.is_file())


def _runtime(where: str, declared: str, inherited: str, ir: QueryIR) -> str:
    """Return a rule's runtime: what it declares, else its user calls' language, else the file's."""
    langs = {
        call.name.partition(":")[0].lower()
        for step in [*ir.steps, *([ir.until] if ir.until else [])]
        for call in user_calls(step.condition)
    }
    if len(langs) > 1:
        raise PolicyError(f"{where}: query: calls both lua: and wasm: functions; a rule runs on one runtime")
    if langs:
        (lang,) = langs
        if declared and declared != lang:
            raise PolicyError(f"{where}: runtime: '{declared}', but the query calls {lang}: functions")
        return lang
    return declared or inherited


def _toml(f: Path, text: str) -> dict[str, Any]:
    """Parse a policy file, refusing one nested deeper than ``tomllib`` may safely recurse."""
    offset = nesting_overflow(text)
    if offset is not None:
        line = text.count("\n", 0, offset) + 1
        raise PolicyError(f"{f}:{line}: nested deeper than {MAX_DOCUMENT_DEPTH} levels of [ and {{")
    return tomllib.loads(text)


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
            data = _toml(f, raw.decode("utf-8"))
        except OSError as exc:
            raise PolicyError(f"{f}: cannot read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise PolicyError(f"{f}: not UTF-8 text (byte {exc.start})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{f}: invalid TOML: {exc}") from exc
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0" + raw + b"\0")
        unknown = set(data) - {"rule", "runtime"}
        if unknown:
            raise PolicyError(f"{f}: unknown top-level key(s) {sorted(unknown)}: rules go in [[rule]] tables")
        file_runtime = _text(str(f), data, "runtime", required=False, choices=RUNTIMES) or "python"
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
            declared = _text(where, table, "runtime", required=False, choices=RUNTIMES)
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
                    runtime=_runtime(where, declared, file_runtime, ir),
                    description=_text(where, table, "description", required=False),
                    overflow=_text(where, table, "overflow", required=False, choices=OVERFLOW_POLICIES)
                    or "evict_oldest",
                    fail_mode=_text(where, table, "fail_mode", required=False, choices=FAIL_MODES) or "open",
                )
            )
    modules: list[UserModule] = []
    for m in _modules(path):
        try:
            source = m.read_bytes()
        except OSError as exc:
            raise PolicyError(f"{m}: cannot read: {exc.strerror}") from exc
        if path.is_dir():
            digest.update(str(m.relative_to(path)).encode() + b"\0" + source + b"\0")
        modules.append(UserModule(MODULE_SUFFIXES[m.suffix], m, source))
    if not path.is_dir() and any(r.runtime != "python" for r in rules):
        for um in modules:
            digest.update(um.path.name.encode() + b"\0" + um.source + b"\0")
    return Policy(tuple(rules), str(path), digest.hexdigest(), tuple(modules))
