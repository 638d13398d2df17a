"""Elastic's EQL spec corpus: the spec files, the datasets and their field types, loaded.

The corpus (``<project root>/tests/data/conformance/elastic-eql``: test data kept in the
repository, never shipped) is Elasticsearch's own EQL spec tests: five TOML files of queries
with the ids Elasticsearch returns for them (:data:`SPEC_FILES`), and three datasets
(:data:`DATASET_SOURCES`). :func:`load_corpus` reads them into :class:`Case` and
:class:`Dataset` values, typing every field the way Elasticsearch would (:class:`FieldType`: the
corpus mapping, the upstream facts it lacks, aliases resolved, dynamic mapping for the rest).
Running an evaluator over the cases and comparing its results is :mod:`guard.policy.conformance`.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Final

from guard.errors import ConformanceError

__all__ = [
    "CORPUS_DIR",
    "CORPUS_NAME",
    "DATASET_SOURCES",
    "MISSING_EVENT_ID",
    "SPEC_FILES",
    "Case",
    "Dataset",
    "DatasetSource",
    "FieldType",
    "SpecFile",
    "datetime_millis",
    "default_corpus",
    "format_date_millis",
    "load_corpus",
    "load_dataset",
    "parse_date_millis",
]

#: the name the total line carries: ``elastic-eql: N passed, M failed``
CORPUS_NAME: Final = "elastic-eql"
#: where the corpus lives, relative to the project root
CORPUS_DIR: Final = Path("tests", "data", "conformance", CORPUS_NAME)
#: the id of the slot a missing-event step (``![...]``) fills in a sequence
MISSING_EVENT_ID: Final = -1

_RANDOM_KEYWORD: Final = "[runtime_random_keyword_type]"
_BARE_NULL: Final = "\x00bare-null\x00"


# --------------------------------------------------------------------------- the corpus layout


@dataclass(frozen=True, slots=True)
class SpecFile:
    """One query file of the corpus, as the README's table describes it."""

    file: str
    dataset: str
    tiebreaker: str
    count: int


@dataclass(frozen=True, slots=True)
class DatasetSource:
    """Where a dataset comes from, and the mapping facts the corpus copy lacks.

    ``supplements`` are field types Elasticsearch's own mapping declares but the corpus file
    does not (they are added only when the file does not declare the field); ``fallback`` is
    the whole mapping, used only when ``mapping`` is absent from the corpus.
    """

    name: str
    data: str
    mapping: str
    tiebreaker: str
    supplements: tuple[tuple[str, str], ...] = ()
    fallback: tuple[tuple[str, str], ...] | None = None


#: the query files in report order, with the counts of the README's table (264 in all)
SPEC_FILES: Final[tuple[SpecFile, ...]] = (
    SpecFile("test_queries.toml", "endgame-140", "serial_event_id", 133),
    SpecFile("additional_test_queries.toml", "endgame-140", "serial_event_id", 61),
    SpecFile("test_queries_date.toml", "endgame-140", "serial_event_id", 4),
    SpecFile("test_extra.toml", "extra", "sequence", 40),
    SpecFile("test_missing_events.toml", "missing-events", "sequence", 26),
)

#: the datasets. extra.mapping in the corpus predates test_extra.toml: upstream it also maps
#: ``version`` (type version: the sequenceWithVersion* cases compare semantically) and
#: ``date_tags`` (date: join keys render as ISO dates). missing-events.mapping is not in the
#: corpus at all; the fallback restates the upstream one (``[runtime_random_keyword_type]``
#: written as keyword).
DATASET_SOURCES: Final[tuple[DatasetSource, ...]] = (
    DatasetSource(
        "endgame-140", "data/endgame-140.derived.json", "data/endgame-140.mapping", "serial_event_id"
    ),
    DatasetSource(
        "extra",
        "data/extra.data",
        "data/extra.mapping",
        "sequence",
        supplements=(("version", "version"), ("date_tags", "date")),
    ),
    DatasetSource(
        "missing-events",
        "data/missing-events.data",
        "data/missing-events.mapping",
        "sequence",
        fallback=(
            ("@timestamp", "date"),
            ("event_type", _RANDOM_KEYWORD),
            ("tag", "keyword"),
            ("sequence", "long"),
            ("event.category", "alias:event_type"),
            ("event.sequence", "alias:sequence"),
        ),
    ),
)


# --------------------------------------------------------------------------- public data types


@dataclass(frozen=True, slots=True)
class FieldType:
    """The type of one field, by dotted name.

    ``type`` is the Elasticsearch leaf type (keyword, text, long, float, date, ip, boolean,
    version; objects are flattened into dotted names). For an alias it is the target's type
    and ``path`` names the target. ``null_value`` is what an explicit JSON null is indexed
    as (so it matches queries while ``_source`` keeps the null). ``randomized`` marks
    ``[runtime_random_keyword_type]``: Elasticsearch picks keyword or wildcard at random per
    run, so both must behave alike; ``type`` says keyword. ``subfields`` are multi-fields
    (e.g. ``file_name.keyword``, whose ``ignore_above`` leaves longer strings unindexed
    there). ``origin`` is ``mapping`` (the corpus file), ``upstream`` (see
    :class:`DatasetSource`) or ``dynamic`` (not mapped: typed the way Elasticsearch's
    dynamic mapping would type the field's first value).
    """

    name: str
    type: str
    null_value: object | None = None
    path: str | None = None
    randomized: bool = False
    subfields: tuple[FieldType, ...] = ()
    ignore_above: int | None = None
    origin: str = "mapping"

    @property
    def is_alias(self) -> bool:
        """Whether this field is an alias of ``path``."""
        return self.path is not None


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """One indexed dataset, as the evaluator sees it.

    ``events`` are the documents in file order, with their values as stored (``@timestamp``
    may be an epoch-millis number, a numeric string or an ISO-8601 string) plus one
    addition: every alias of the mapping (``event.category`` -> ``event_type``,
    ``event.sequence`` -> the tie-breaker) is materialised as a nested value, because
    Elasticsearch resolves aliases at query time. Results are ordered by :meth:`sort_key`,
    ``(@timestamp in epoch millis, tie-breaker)``; :meth:`ordered` sorts stably, so events
    with equal keys keep file order. Evaluators must not mutate the events.
    """

    name: str
    events: tuple[dict[str, object], ...]
    fields: Mapping[str, FieldType]
    aliases: Mapping[str, str]
    tiebreaker: str
    timestamp_field: str = "@timestamp"
    category_field: str = "event.category"

    def event_id(self, event: Mapping[str, object]) -> int:
        """Return the event's tie-breaker value, the id the corpus lists."""
        value = event.get(self.tiebreaker)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConformanceError(f"{self.name}: event has no integer {self.tiebreaker}: {value!r}")
        return value

    def timestamp_millis(self, event: Mapping[str, object]) -> int:
        """Return the event's ``@timestamp`` in epoch milliseconds."""
        try:
            return parse_date_millis(event.get(self.timestamp_field))
        except ValueError as exc:
            raise ConformanceError(f"{self.name}: {exc}") from exc

    def sort_key(self, event: Mapping[str, object]) -> tuple[int, int]:
        """Return the ordering key Elasticsearch uses: (timestamp millis, tie-breaker)."""
        return self.timestamp_millis(event), self.event_id(event)

    def ordered(self) -> tuple[dict[str, object], ...]:
        """Return the events sorted by :meth:`sort_key` (stable: ties keep file order)."""
        return tuple(sorted(self.events, key=self.sort_key))

    def field(self, name: str) -> FieldType | None:
        """Return the type of a dotted field name, or None when it is neither mapped nor seen."""
        return self.fields.get(name)


@dataclass(frozen=True, slots=True)
class Case:
    """One query of the corpus and what Elasticsearch returns for it.

    ``expected`` holds the accepted alternatives (usually one); ``join_keys`` is the flat
    list of expected keys over all sequences, ``None`` when the file gives none (a bare TOML
    ``null`` is kept as ``None``; Elasticsearch renders a null key as ``"null"``).
    """

    file: str
    name: str
    query: str
    expected: tuple[tuple[int, ...], ...]
    join_keys: tuple[str | None, ...] | None
    dataset: str
    case_sensitive: bool | None = None
    case_insensitive: bool | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None
    note: str | None = None

    @property
    def id(self) -> str:
        """Return ``<file>::<name>``."""
        return f"{self.file}::{self.name}"


# --------------------------------------------------------------------------- dates

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_INTEGER: Final = re.compile(r"-?\d+")
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ].*)?")


def parse_date_millis(value: object) -> int:
    """Return epoch milliseconds for a date value as Elasticsearch's default date format reads it.

    The format is ``strict_date_optional_time||epoch_millis``: an integer (or a string of
    digits) is epoch millis; otherwise ISO 8601, UTC when no offset is given; sub-millisecond
    digits are truncated. Raises ValueError for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a date: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _ISO_DATE.fullmatch(text):
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                return datetime_millis(parsed)
    raise ValueError(f"not a date: {value!r}")


def datetime_millis(moment: datetime) -> int:
    """Return a datetime in epoch milliseconds: UTC when it has no offset, sub-milliseconds truncated."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MILLISECOND


def format_date_millis(millis: int) -> str:
    """Return a date the way Elasticsearch renders it in results: ``1970-01-01T00:00:00.000Z``."""
    moment = _EPOCH + timedelta(milliseconds=millis)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis % 1000:03d}Z"


# --------------------------------------------------------------------------- locating the corpus


def default_corpus(project_root: Path | None = None) -> Path:
    """Return ``<project root>/tests/data/conformance/elastic-eql``, or raise ConformanceError.

    The project root is the nearest directory above this file holding ``pyproject.toml``
    unless given.
    """
    if project_root is None:
        here = Path(__file__).resolve().parent
        project_root = next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file()), None)
        if project_root is None:
            raise ConformanceError(f"no pyproject.toml above {here}: cannot locate the {CORPUS_NAME} corpus")
    corpus = project_root / CORPUS_DIR
    if not (corpus / "README.md").is_file():
        raise ConformanceError(
            f"the {CORPUS_NAME} corpus is missing: expected it at {corpus}"
            f" (<project root>/{CORPUS_DIR.as_posix()})"
        )
    return corpus


# --------------------------------------------------------------------------- loading


def load_corpus(root: Path, *, check_counts: bool = True) -> tuple[list[Case], dict[str, Dataset]]:
    """Load every case (in SPEC_FILES order) and every dataset of the corpus at ``root``.

    Raises ConformanceError, naming the file, for anything missing or malformed, and (unless
    ``check_counts`` is false) when a file's number of cases differs from the README's table.
    """
    if not root.is_dir():
        raise ConformanceError(f"{root}: the {CORPUS_NAME} corpus directory does not exist")
    datasets = {source.name: load_dataset(root, source) for source in DATASET_SOURCES}
    cases: list[Case] = []
    for spec in SPEC_FILES:
        loaded = _load_cases(root, spec)
        if check_counts and len(loaded) != spec.count:
            raise ConformanceError(
                f"{spec.file}: {len(loaded)} queries, the README's table says {spec.count}"
            )
        cases.extend(loaded)
    return cases, datasets


def _read(root: Path, relative: str) -> str:
    try:
        return (root / relative).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConformanceError(f"{relative}: missing from the corpus at {root}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConformanceError(f"{relative}: unreadable: {exc}") from exc


# TOML ----------------------------------------------------------------------------------------


def _replace_bare_nulls(text: str) -> str:
    """Turn each bare ``null`` in value position into a sentinel string TOML accepts."""
    out: list[str] = []
    i, n = 0, len(text)
    last = ""  # the last significant character outside strings and comments
    while i < n:
        c = text[i]
        if text.startswith(("'''", '"""'), i):
            quote = text[i : i + 3]
            j = i + 3
            while j < n and not text.startswith(quote, j):
                j += 2 if quote == '"""' and text[j] == "\\" else 1
            j = min(n, j + 3)
            while j < n and text[j] == quote[0]:  # a closing delimiter may follow up to two quotes
                j += 1
            out.append(text[i:j])
            i, last = j, quote[0]
        elif c in "'\"":
            j = i + 1
            while j < n and text[j] not in (c, "\n"):
                j += 2 if c == '"' and text[j] == "\\" else 1
            j = min(n, j + 1)
            out.append(text[i:j])
            i, last = j, c
        elif c == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
        elif (
            text.startswith("null", i)
            and last in ("=", "[", ",")
            and (i + 4 == n or not (text[i + 4].isalnum() or text[i + 4] in "_-"))
        ):
            out.append('"\\u0000bare-null\\u0000"')
            i, last = i + 4, '"'
        else:
            out.append(c)
            if not c.isspace():
                last = c
            i += 1
    return "".join(out)


def _load_cases(root: Path, spec: SpecFile) -> list[Case]:
    text = _replace_bare_nulls(_read(root, spec.file))
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConformanceError(f"{spec.file}: invalid TOML: {exc}") from exc
    queries = document.get("queries")
    if not isinstance(queries, list) or not all(isinstance(q, dict) for q in queries):
        raise ConformanceError(f"{spec.file}: no [[queries]] tables")
    cases: list[Case] = []
    seen: set[str] = set()
    for index, table in enumerate(queries, start=1):
        case = _case(spec, index, table)
        if case.name in seen:
            raise ConformanceError(f"{spec.file}: query #{index}: duplicate name {case.name!r}")
        seen.add(case.name)
        cases.append(case)
    return cases


def _case(spec: SpecFile, index: int, table: dict[str, object]) -> Case:
    where = f"{spec.file}: query #{index}"

    def text(key: str, *, required: bool = False) -> str | None:
        value = table.get(key)
        if value is None and not required:
            return None
        if value is None:
            raise ConformanceError(f"{where}: {key} is missing")
        if not isinstance(value, str) or not value.strip() or value == _BARE_NULL:
            raise ConformanceError(f"{where}: {key} must be a non-empty string, got {_show(value)}")
        return value.strip()

    def flag(key: str) -> bool | None:
        value = table.get(key)
        if value is not None and not isinstance(value, bool):
            raise ConformanceError(f"{where}: {key} must be a boolean, got {_show(value)}")
        return value

    name = text("name", required=True) or ""
    where = f"{spec.file}: query {name!r}"
    query = text("query", required=True) or ""
    tags = table.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ConformanceError(f"{where}: tags must be a list of strings, got {_show(tags)}")
    return Case(
        file=spec.file,
        name=name,
        query=query,
        expected=_expected_ids(where, table.get("expected_event_ids")),
        join_keys=_join_keys(where, table.get("join_keys")),
        dataset=spec.dataset,
        case_sensitive=flag("case_sensitive"),
        case_insensitive=flag("case_insensitive"),
        tags=tuple(tags),
        description=text("description"),
        note=text("note") or text("notes"),
    )


def _show(value: object) -> str:
    return repr(value).replace(repr(_BARE_NULL), "null")


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= MISSING_EVENT_ID


def _expected_ids(where: str, value: object) -> tuple[tuple[int, ...], ...]:
    if value is None:
        raise ConformanceError(f"{where}: expected_event_ids is missing")
    if not isinstance(value, list):
        raise ConformanceError(f"{where}: expected_event_ids must be a list, got {_show(value)}")
    if all(_is_id(v) for v in value):
        return (tuple(value),)
    if value and all(isinstance(alt, list) and all(_is_id(v) for v in alt) for alt in value):
        return tuple(tuple(alt) for alt in value)
    raise ConformanceError(
        f"{where}: expected_event_ids must be ids (integers >= -1) or lists of ids, got {_show(value)}"
    )


def _join_keys(where: str, value: object) -> tuple[str | None, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise ConformanceError(f"{where}: join_keys must be a list of strings or null, got {_show(value)}")
    return tuple(None if k == _BARE_NULL else k for k in value)


# datasets ------------------------------------------------------------------------------------


def load_dataset(root: Path, source: DatasetSource) -> Dataset:
    """Load one dataset of the corpus at ``root`` with its fields typed, or raise ConformanceError."""
    if source.fallback is not None and not (root / source.mapping).exists():
        declared = _fallback_fields(source.fallback)
    else:
        declared = _mapping_fields(source.mapping, _read(root, source.mapping))
    for name, type_ in source.supplements:
        if name not in declared:
            declared[name] = FieldType(name, type_, origin="upstream")
    declared = _resolve_aliases(source.mapping, declared)
    aliases = {name: ft.path for name, ft in declared.items() if ft.path is not None}

    raw = _read(root, source.data)
    # `//` comment lines (missing-events.data) are blanked, keeping line numbers for errors
    text = "\n".join("" if line.lstrip().startswith("//") else line for line in raw.split("\n"))
    try:
        documents = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConformanceError(f"{source.data}: invalid JSON: {exc}") from exc
    if not isinstance(documents, list):
        raise ConformanceError(f"{source.data}: expected a JSON array of events")

    events: list[dict[str, object]] = []
    for index, document in enumerate(documents, start=1):
        if not isinstance(document, dict):
            raise ConformanceError(f"{source.data}: event #{index} is not an object")
        tiebreaker = document.get(source.tiebreaker)
        if not isinstance(tiebreaker, int) or isinstance(tiebreaker, bool):
            raise ConformanceError(f"{source.data}: event #{index}: {source.tiebreaker} must be an integer")
        try:
            parse_date_millis(document.get("@timestamp"))
        except ValueError as exc:
            raise ConformanceError(f"{source.data}: event #{index}: @timestamp: {exc}") from exc
        event = json.loads(json.dumps(document))  # a private deep copy
        for alias, target in aliases.items():
            found, value = _lookup(event, target)
            if found and not _lookup(event, alias)[0]:
                _put(event, alias, value)
        events.append(event)

    fields = dict(declared)
    for name, ft in _dynamic_fields(documents).items():
        fields.setdefault(name, ft)
    return Dataset(
        name=source.name,
        events=tuple(events),
        fields=MappingProxyType(dict(sorted(fields.items()))),
        aliases=MappingProxyType(aliases),
        tiebreaker=source.tiebreaker,
    )


def _fallback_fields(spec: tuple[tuple[str, str], ...]) -> dict[str, FieldType]:
    fields: dict[str, FieldType] = {}
    for name, type_ in spec:
        if type_.startswith("alias:"):
            fields[name] = FieldType(name, "alias", path=type_.removeprefix("alias:"), origin="upstream")
        else:
            randomized = type_ == _RANDOM_KEYWORD
            fields[name] = FieldType(
                name, "keyword" if randomized else type_, randomized=randomized, origin="upstream"
            )
    return fields


def _mapping_fields(file: str, text: str) -> dict[str, FieldType]:
    body = "\n".join("" if line.lstrip().startswith("#") else line for line in text.split("\n"))
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ConformanceError(f"{file}: invalid JSON: {exc}") from exc
    if isinstance(document, dict) and isinstance(document.get("mappings"), dict):
        document = document["mappings"]
    if not isinstance(document, dict) or not isinstance(document.get("properties"), dict):
        raise ConformanceError(f'{file}: a mapping needs a top-level "properties" object')
    fields: dict[str, FieldType] = {}
    _walk_properties(file, "", document["properties"], fields)
    return fields


def _walk_properties(
    file: str, prefix: str, properties: dict[str, object], out: dict[str, FieldType]
) -> None:
    for key, spec in properties.items():
        name = prefix + key
        if not isinstance(spec, dict):
            raise ConformanceError(f"{file}: field {name!r}: expected an object")
        children = spec.get("properties")
        if isinstance(children, dict):
            _walk_properties(file, name + ".", children, out)
            continue
        out[name] = _leaf(file, name, spec)


def _leaf(file: str, name: str, spec: dict[str, object]) -> FieldType:
    type_ = spec.get("type")
    if not isinstance(type_, str) or not type_:
        raise ConformanceError(f"{file}: field {name!r} has no type")
    randomized = type_ == _RANDOM_KEYWORD
    path = spec.get("path")
    if type_ == "alias" and not isinstance(path, str):
        raise ConformanceError(f"{file}: alias {name!r} has no path")
    ignore_above = spec.get("ignore_above")
    subfields: list[FieldType] = []
    multi = spec.get("fields", {})
    if not isinstance(multi, dict):
        raise ConformanceError(f'{file}: field {name!r}: "fields" must be an object')
    for sub, sub_spec in multi.items():
        sub_name = "keyword" if sub == _RANDOM_KEYWORD else sub
        if not isinstance(sub_spec, dict):
            raise ConformanceError(f"{file}: field {name}.{sub_name}: expected an object")
        subfields.append(_leaf(file, f"{name}.{sub_name}", sub_spec))
    return FieldType(
        name=name,
        type="keyword" if randomized else type_,
        null_value=spec.get("null_value"),
        path=path if type_ == "alias" and isinstance(path, str) else None,
        randomized=randomized,
        subfields=tuple(subfields),
        ignore_above=ignore_above if isinstance(ignore_above, int) else None,
    )


def _resolve_aliases(file: str, fields: dict[str, FieldType]) -> dict[str, FieldType]:
    resolved: dict[str, FieldType] = {}
    for name, ft in fields.items():
        if ft.path is None:
            resolved[name] = ft
            continue
        target = fields.get(ft.path)
        if target is None or target.path is not None:
            raise ConformanceError(
                f"{file}: alias {name!r} points at {ft.path!r}, which is not a mapped field"
            )
        resolved[name] = FieldType(
            name,
            target.type,
            null_value=target.null_value,
            path=ft.path,
            randomized=target.randomized,
            subfields=target.subfields,
            ignore_above=target.ignore_above,
            origin=ft.origin,
        )
    return resolved


def _lookup(event: Mapping[str, object], dotted: str) -> tuple[bool, object]:
    """Find a dotted field in nested objects or as a literal dotted key (``"process.pid"``)."""
    if dotted in event:
        return True, event[dotted]
    head, sep, rest = dotted.partition(".")
    while sep:
        child = event.get(head)
        if isinstance(child, dict):
            found, value = _lookup(child, rest)
            if found:
                return True, value
        more, sep, rest = rest.partition(".")
        head = f"{head}.{more}"
    return False, None


def _put(event: dict[str, object], dotted: str, value: object) -> None:
    parts = dotted.split(".")
    node = event
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return  # a scalar already sits on the path: leave the event alone
        node = child
    node[parts[-1]] = value


_DYNAMIC_DATE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
    r"|\d{4}/\d{2}/\d{2}(?: \d{2}:\d{2}:\d{2})?(?: ?Z| [+-]\d{4})?"
)


def _dynamic_fields(documents: Sequence[object]) -> dict[str, FieldType]:
    """Type unmapped fields as Elasticsearch's dynamic mapping would, from their first value."""
    fields: dict[str, FieldType] = {}

    def visit(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                visit(f"{prefix}{key}.", child)
            return
        name = prefix[:-1]
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, dict):
                visit(prefix, item)
                continue
            if item is None or name in fields:
                continue
            type_ = _dynamic_type(item)
            if type_ == "text":
                keyword = FieldType(f"{name}.keyword", "keyword", ignore_above=256, origin="dynamic")
                fields[name] = FieldType(name, "text", subfields=(keyword,), origin="dynamic")
            elif type_ is not None:
                fields[name] = FieldType(name, type_, origin="dynamic")

    for document in documents:
        visit("", document)
    return fields


def _dynamic_type(value: object) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "date" if _DYNAMIC_DATE.fullmatch(value) else "text"
    return None
