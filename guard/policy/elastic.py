"""Import Elastic rule TOML files (one rule per file) into our policy format.

Two kinds of Elastic rule file are read, told apart by their ``[rule]`` table:

- **detection-rules** (`github.com/elastic/detection-rules`, ``rules/<os>/``): ``rule_id``,
  ``name``, ``severity``, ``language`` / ``type`` and ``query``. Only EQL rules import; they
  detect, so they become ``action = "alert"``.
- **Elastic Defend behaviour rules** (`github.com/elastic/protections-artifacts`,
  ``behavior/rules/<os>/``): ``id``, ``name``, ``os_list``, ``version`` and ``query`` in Endpoint
  EQL (no language, type or severity), and top-level ``[[actions]]`` tables. A ``kill_process``
  action (``field`` names the entity, ``state`` the sequence event it is taken from) becomes our
  ``action = "kill"``, which kills the process of the rule's last matching event; the rule's
  description then starts with one line naming the original actions (:func:`elastic_origin`), so
  ``guardctl policy explain`` can show what Elastic would have killed. These rules carry no
  severity: they import as :data:`DEFEND_SEVERITY`. Only rules whose ``os_list`` holds ``linux``.

Imported rules keep Elastic's id (``rule_id`` / ``id``). :func:`import_elastic` reads files (or
directories of them), keeps the rules whose query compiles against a schema, and explains in one
line why every other file was skipped. :func:`write_policy` writes the imported rules as our
policy files (one ``[[rule]]`` table per file), which :func:`load_policy` loads back unchanged.

Every file gives one :class:`ImportEntry`; the :class:`ImportReport` holds them in input order
(a directory's ``*.toml`` files sorted, recursively) and sums them per source kind.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from guard.errors import PolicyError, PolicySyntaxError
from guard.policy.analyzer import compile_query
from guard.policy.loader import SEVERITIES, Rule
from guard.policy.schema import ECS, Schema

__all__ = [
    "DEFEND",
    "DEFEND_SEVERITY",
    "DETECTION",
    "ImportEntry",
    "ImportReport",
    "ImportStatus",
    "SourceKind",
    "collect_files",
    "elastic_origin",
    "import_elastic",
    "write_policy",
]

ImportStatus = Literal["imported", "skipped"]
#: Which kind of Elastic rule a file holds ("unknown" when the file could not be read as either).
SourceKind = Literal["detection-rules", "defend-behavior", "unknown"]
DETECTION: Final = "detection-rules"
DEFEND: Final = "defend-behavior"
_UNKNOWN: Final = "unknown"

#: The action detection rules get: they detect, they never enforce.
_ALERT: Final = "alert"
#: Elastic Defend's process-killing action, and ours.
_KILL_PROCESS: Final = "kill_process"
_KILL: Final = "kill"
#: The severity Defend behaviour rules import with: they carry none, and they stop a process.
DEFEND_SEVERITY: Final = "high"
#: The first words of the description line :func:`elastic_origin` returns.
_ORIGIN: Final = "Elastic Defend"
_NAME_MAX: Final = 80
# Characters a TOML multi-line literal string cannot hold (tab and LF are allowed; CR only in CRLF).
_CONTROL: Final = frozenset(chr(c) for c in (*range(0x20), 0x7F)) - {"\t", "\n"}
_ESCAPES: Final = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
#: Skip reasons grouped for the summary: (pattern matched at the start of a reason, kind).
_KINDS: Final = (
    (re.compile(r"language is "), "language is not eql"),
    (re.compile(r"type is "), "type is not eql"),
    (re.compile(r"query: "), "query syntax error"),
    (re.compile(r"unsupported construct: "), "unsupported construct"),
    (re.compile(r"invalid TOML: "), "invalid TOML"),
    (re.compile(r"cannot read: "), "cannot read"),
    (re.compile(r"duplicate rule_id"), "duplicate rule_id"),
    (re.compile(r"severity is "), "unsupported severity"),
    (re.compile(r"os_list "), "not a linux rule"),
    (re.compile(r"actions"), "invalid actions"),
    (re.compile(r"(\w+): expected "), r"invalid \1"),
)


@dataclass(frozen=True, slots=True)
class ImportEntry:
    """What became of one file: imported (with its :class:`Rule`) or skipped (with a reason)."""

    path: str
    status: ImportStatus
    rule_id: str | None
    name: str | None
    reason: str | None
    rule: Rule | None
    source: SourceKind = _UNKNOWN


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The outcome of an import, one entry per file in input order."""

    entries: tuple[ImportEntry, ...]

    @property
    def imported(self) -> int:
        """Return the number of files imported."""
        return sum(1 for e in self.entries if e.status == "imported")

    @property
    def compiled(self) -> int:
        """Return the number of imported rules that compiled (all of them: only those are imported)."""
        return sum(1 for e in self.entries if e.rule is not None)

    @property
    def skipped(self) -> int:
        """Return the number of files skipped."""
        return sum(1 for e in self.entries if e.status == "skipped")

    @property
    def total(self) -> int:
        """Return the number of files read."""
        return len(self.entries)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Return the imported rules, in entry order."""
        return tuple(e.rule for e in self.entries if e.rule is not None)

    def reason_counts(self) -> list[tuple[str, int]]:
        """Return (reason kind, count) for the skipped files, most frequent first."""
        counts = Counter(_kind(e.reason or "") for e in self.entries if e.status == "skipped")
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def by_source(self) -> dict[str, tuple[int, int]]:
        """Return source kind -> (imported, total), kinds in the order they first appear."""
        out: dict[str, tuple[int, int]] = {}
        for e in self.entries:
            imported, total = out.get(e.source, (0, 0))
            out[e.source] = (imported + (e.status == "imported"), total + 1)
        return out

    def to_json(self) -> dict[str, object]:
        """Return the report as a JSON-ready dict: counts, counts per source kind and one object per file."""
        return {
            "imported": self.imported,
            "compiled": self.compiled,
            "skipped": self.skipped,
            "total": self.total,
            "sources": {
                kind: {"imported": imported, "skipped": total - imported, "total": total}
                for kind, (imported, total) in self.by_source().items()
            },
            "files": [
                {
                    "path": e.path,
                    "status": e.status,
                    "source": e.source,
                    "rule_id": e.rule_id,
                    "name": e.name,
                    "action": e.rule.action if e.rule is not None else None,
                    "reason": e.reason,
                }
                for e in self.entries
            ],
        }

    def render_text(self) -> str:
        """Return one line per file, a total line and the skip reasons by kind (no trailing newline)."""
        lines = []
        for e in self.entries:
            if e.status == "imported":
                lines.append(f"imported  {e.path}  {e.rule_id}  {e.name}")
            else:
                lines.append(f"skipped   {e.path}  {e.reason}")
        lines.append(f"imported {self.imported} of {self.total} files ({self.skipped} skipped)")
        sources = self.by_source()
        if len(sources) > 1 or _UNKNOWN in sources:
            lines.extend(f"  {kind}: imported {n} of {total}" for kind, (n, total) in sources.items())
        counts = self.reason_counts()
        if counts:
            width = len(str(counts[0][1]))
            lines.append("skip reasons:")
            lines.extend(f"  {n:>{width}} {kind}" for kind, n in counts)
        return "\n".join(lines)


def _kind(reason: str) -> str:
    for pattern, kind in _KINDS:
        m = pattern.match(reason)
        if m:
            return m.expand(kind)
    return reason


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _show(value: object) -> str:
    shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def collect_files(paths: Sequence[Path], suffixes: Iterable[str] = (".toml",)) -> list[Path]:
    """Return the files named and those under the directories named (recursively, sorted), once each.

    A path that does not exist raises :class:`~guard.errors.PolicyError`.
    """
    wanted = tuple(suffixes)
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in wanted and p.is_file()))
        elif path.exists():
            files.append(path)
        else:
            raise PolicyError(f"{path}: no such file or directory")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


class _Skip(Exception):
    """A file is skipped; the argument is the one-line reason."""


def _string(table: Mapping[str, object], key: str) -> str:
    value = table.get(key)
    if value is None:
        raise _Skip(f"missing {key}")
    if not isinstance(value, str) or not value.strip():
        raise _Skip(f"{key}: expected a non-empty string, got {_show(value)}")
    return value


def _check_language(table: Mapping[str, object]) -> None:
    language = table.get("language")
    if language is not None:
        if language != "eql":
            raise _Skip(f'language is {_show(language)}, not "eql"')
        return
    kind = table.get("type")
    if kind is None:
        raise _Skip("missing language and type")
    if kind != "eql":
        raise _Skip(f'type is {_show(kind)}, not "eql" (no language)')


def _source_kind(table: Mapping[str, object]) -> SourceKind:
    """Tell a Defend behaviour rule (``id``, no ``rule_id``) from a detection rule (anything else)."""
    return DEFEND if "rule_id" not in table and "id" in table else DETECTION


def _check_os(table: Mapping[str, object]) -> None:
    os_list = table.get("os_list")
    if not isinstance(os_list, list) or not all(isinstance(x, str) for x in os_list):
        raise _Skip(f"os_list: expected an array of strings, got {_show(os_list)}")
    if "linux" not in os_list:
        raise _Skip(f"os_list is {_show(os_list)}, without linux")


def _states(states: Sequence[int]) -> str:
    return f"state{'s' if len(states) > 1 else ''} {', '.join(map(str, states))}"


def _defend_actions(data: Mapping[str, object]) -> tuple[str, str]:
    """Return our action for a Defend rule's ``[[actions]]`` and the one-line origin naming them."""
    raw = data.get("actions", [])
    if not isinstance(raw, list):
        raise _Skip(f"actions: expected an array of tables, got {_show(raw)}")
    targets: dict[str, dict[str, list[int]]] = {}  # action -> field -> states, in file order
    for n, act in enumerate(raw, 1):
        if not isinstance(act, dict):
            raise _Skip(f"actions #{n}: expected a table, got {_show(act)}")
        name = act.get("action")
        if not isinstance(name, str) or not name:
            raise _Skip(f"actions #{n}: action: expected a non-empty string, got {_show(name)}")
        fields = targets.setdefault(name, {})
        if name != _KILL_PROCESS:
            continue
        field, state = act.get("field"), act.get("state")
        if not isinstance(field, str) or not field:
            raise _Skip(f"actions #{n}: field: expected a non-empty string, got {_show(field)}")
        if type(state) is not int or state < 0:
            raise _Skip(f"actions #{n}: state: expected a non-negative integer, got {_show(state)}")
        states = fields.setdefault(field, [])
        if state not in states:
            states.append(state)
    if not targets:
        return _ALERT, f"{_ORIGIN} rule without actions: imported as alert"
    parts = []
    for name, fields in targets.items():
        where = ", ".join(f"{field} ({_states(sorted(states))})" for field, states in fields.items())
        parts.append(f"{name}: {where}" if where else f"{name} (no equivalent here)")
    said = f"{_ORIGIN} {'; '.join(parts)}"
    if _KILL_PROCESS in targets:
        return _KILL, f"{said}; imported as kill: SIGKILL to the process of the last matching event"
    return _ALERT, f"{said}; imported as alert"


def elastic_origin(description: str) -> str | None:
    """Return the line an imported Defend rule's description starts with (its Elastic actions), else None."""
    first = description.partition("\n")[0]
    return first if first.startswith(_ORIGIN + " ") else None


def _position(exc: PolicySyntaxError) -> str:
    if exc.line is None:
        return ""
    if exc.column is None:
        return f"line {exc.line}: "
    return f"line {exc.line}, column {exc.column}: "


def _read(f: Path) -> dict[str, object]:
    try:
        return tomllib.loads(f.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise _Skip(f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _Skip("not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise _Skip(f"invalid TOML: {exc}") from None


def _import_one(f: Path, schema: Schema, first: Mapping[str, str]) -> ImportEntry:
    where = str(f)
    rule_id: str | None = None
    name: str | None = None
    source: SourceKind = _UNKNOWN
    try:
        data = _read(f)
        table = data.get("rule")
        if not isinstance(table, dict):
            raise _Skip("no [rule] table")
        source = _source_kind(table)
        id_key = "id" if source == DEFEND else "rule_id"
        raw_id, raw_name = table.get(id_key), table.get("name")
        rule_id = raw_id if isinstance(raw_id, str) else None
        name = raw_name if isinstance(raw_name, str) else None
        if source == DEFEND:
            if table.get("language", "eql") != "eql":
                raise _Skip(f'language is {_show(table["language"])}, not "eql"')
            _check_os(table)
        else:
            _check_language(table)
        rule_id = _string(table, id_key)
        name = _string(table, "name")
        if source == DEFEND and "severity" not in table:
            severity = DEFEND_SEVERITY
        else:
            severity = _string(table, "severity")
        if severity not in SEVERITIES:
            raise _Skip(f"severity is {_show(severity)}, not one of {', '.join(SEVERITIES)}")
        query = _string(table, "query").strip()
        action, origin = _defend_actions(data) if source == DEFEND else (_ALERT, "")
        if rule_id in first:
            raise _Skip(f"duplicate rule_id, first in {first[rule_id]}")
        try:
            ir = compile_query(query, schema)
        except PolicySyntaxError as exc:
            raise _Skip(f"query: {_position(exc)}{exc.message}") from None
        except PolicyError as exc:  # PolicySemanticError, or any other refusal of the compiler
            raise _Skip(f"unsupported construct: {exc}") from None
        raw_description = table.get("description")
        description = raw_description.strip() if isinstance(raw_description, str) else ""
        if origin:
            description = f"{origin}\n{description}" if description else origin
    except _Skip as skip:
        return ImportEntry(where, "skipped", rule_id, name, _one_line(str(skip)), None, source)
    rule = Rule(
        id=rule_id,
        name=name,
        severity=severity,
        action=action,
        mode=None,
        query=query,
        ir=ir,
        path=where,
        description=description,
    )
    return ImportEntry(where, "imported", rule_id, name, None, rule, source)


def import_elastic(paths: Sequence[Path], schema: Schema = ECS) -> ImportReport:
    """Import Elastic rule TOML files of either kind (or directories of them, recursively).

    Every file gives one entry: ``imported`` when it holds an EQL rule whose query compiles
    against ``schema``, else ``skipped`` with a one-line reason. A rule id already imported from
    an earlier file is skipped as a duplicate. A path that does not exist raises
    :class:`~guard.errors.PolicyError` before any file is read.
    """
    first: dict[str, str] = {}
    entries = []
    for f in collect_files(paths):
        entry = _import_one(f, schema, first)
        if entry.rule is not None:
            first[entry.rule.id] = entry.path
        entries.append(entry)
    return ImportReport(tuple(entries))


def _basic(text: str) -> str:
    out = []
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c in _CONTROL:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _query_value(query: str) -> str:
    if "'''" in query or any(c in _CONTROL for c in query):
        return _basic(query)
    # The newline after the opening ''' is not part of the value; a trailing ' or '' is allowed.
    return f"'''\n{query}'''"


def _render(rule: Rule) -> str:
    lines = [
        "[[rule]]",
        f"id = {_basic(rule.id)}",
        f"name = {_basic(rule.name)}",
        f"severity = {_basic(rule.severity)}",
        f"action = {_basic(rule.action)}",
    ]
    if rule.description:
        lines.append(f"description = {_basic(rule.description)}")
    lines.append(f"query = {_query_value(rule.query)}")
    source = "".join("?" if c in _CONTROL or c == "\n" else c for c in rule.path)
    return f"# imported from {source}\n" + "\n".join(lines) + "\n"


def _stem(rule: Rule) -> str:
    for text in (rule.name, rule.id):
        stem = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:_NAME_MAX].rstrip("-")
        if stem:
            return stem
    return "rule"


def write_policy(report: ImportReport, out_dir: Path) -> list[Path]:
    """Write each imported rule to ``out_dir`` as ``<rule name>.toml``; return the paths written.

    File names are the rule name (else its id) lowercased to ``[a-z0-9-]``, with ``-2``, ``-3``...
    on collisions. Existing files of the same name are overwritten, so a re-import is idempotent.
    Each file holds one ``[[rule]]`` table (``action`` as imported: alert, or kill) that
    :func:`~guard.policy.loader.load_policy` loads back with the same id and query text, given
    the schema the rules were imported against.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PolicyError(f"{out_dir}: cannot create: {exc.strerror or exc}") from exc
    used: set[str] = set()
    written = []
    for rule in report.rules:
        stem = base = _stem(rule)
        n = 1
        while stem in used:
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        target = out_dir / f"{stem}.toml"
        try:
            target.write_bytes(_render(rule).encode("utf-8"))
        except OSError as exc:
            raise PolicyError(f"{target}: cannot write: {exc.strerror or exc}") from exc
        written.append(target)
    return written
