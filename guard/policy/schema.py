"""The typed field schema rules are checked against: ECS names by default, or an Elasticsearch mapping."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["ECS", "ECS_VERSION", "Kind", "Schema", "kind_of_es_type", "schema_from_mapping"]


class Kind(enum.StrEnum):
    """What a value is, for type checks."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    IP = "ip"
    DATE = "date"
    VERSION = "version"
    NULL = "null"
    ANY = "any"


_ES_TYPES: Final = {
    **dict.fromkeys(("keyword", "constant_keyword", "wildcard", "text", "match_only_text"), Kind.STRING),
    **dict.fromkeys(
        (
            "long",
            "integer",
            "short",
            "byte",
            "double",
            "float",
            "half_float",
            "scaled_float",
            "unsigned_long",
        ),
        Kind.NUMBER,
    ),
    "boolean": Kind.BOOLEAN,
    "ip": Kind.IP,
    "date": Kind.DATE,
    "date_nanos": Kind.DATE,
    "version": Kind.VERSION,
}


def kind_of_es_type(es_type: str) -> Kind:
    """Map an Elasticsearch field type to a :class:`Kind` (unknown types check as ANY)."""
    if es_type.startswith("[runtime_random_keyword_type]"):
        return Kind.STRING
    return _ES_TYPES.get(es_type, Kind.ANY)


@dataclass(frozen=True, slots=True)
class Schema:
    """Field name to kind, plus per-field defaults for null values (Elasticsearch ``null_value``)."""

    name: str
    fields: Mapping[str, Kind]
    null_values: Mapping[str, object] = field(default_factory=dict)
    #: Field names the event category comes from, in order of preference.
    category_fields: tuple[str, ...] = ("event.category",)
    text_fields: frozenset[str] = frozenset()
    #: The schema's version (recordings and replays name it).
    version: str = ""

    def kind(self, name: str) -> Kind | None:
        """Return the kind of a field, or None when the schema has no such field."""
        return self.fields.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)


_S, _N, _IP, _D = Kind.STRING, Kind.NUMBER, Kind.IP, Kind.DATE

#: The ECS release the field set follows.
ECS_VERSION: Final = "8.11.0"

#: The Elastic Common Schema fields the agent produces and rules may read.
ECS: Final = Schema(
    "ecs",
    {
        "@timestamp": _D,
        "event.category": _S,
        "event.type": _S,
        "event.action": _S,
        "event.kind": _S,
        "event.outcome": _S,
        "event.id": _S,
        "event.sequence": _N,
        "event.ingested": _D,
        "host.name": _S,
        "host.id": _S,
        "host.hostname": _S,
        "host.ip": _IP,
        "host.os.type": _S,
        "host.os.name": _S,
        "host.os.family": _S,
        "host.os.platform": _S,
        "host.os.kernel": _S,
        "agent.id": _S,
        "process.entity_id": _S,
        "process.pid": _N,
        "process.name": _S,
        "process.executable": _S,
        "process.command_line": _S,
        "process.args": _S,
        "process.args_count": _N,
        "process.working_directory": _S,
        "process.start": _D,
        "process.exit_code": _N,
        "process.hash.sha256": _S,
        "process.interactive": Kind.BOOLEAN,
        "process.inode": _N,
        "process.device": _N,
        "process.parent.entity_id": _S,
        "process.parent.pid": _N,
        "process.parent.name": _S,
        "process.parent.executable": _S,
        "process.parent.command_line": _S,
        "process.parent.args": _S,
        "process.parent.args_count": _N,
        "process.parent.working_directory": _S,
        "process.parent.user.id": _S,
        "process.parent.user.name": _S,
        "process.title": _S,
        "process.env_vars": _S,
        "process.group.id": _S,
        "process.group.name": _S,
        "process.group_leader.pid": _N,
        "process.session_leader.pid": _N,
        "process.user.id": _S,
        "process.user.name": _S,
        "process.real_user.id": _S,
        "process.thread.id": _N,
        "file.path": _S,
        "file.name": _S,
        "file.extension": _S,
        "file.directory": _S,
        "file.inode": _N,
        "file.device": _N,
        "file.mode": _S,
        "file.size": _N,
        "file.type": _S,
        "file.target_path": _S,
        "destination.ip": _IP,
        "destination.port": _N,
        "destination.address": _S,
        "destination.domain": _S,
        "source.ip": _IP,
        "source.port": _N,
        "network.transport": _S,
        "network.type": _S,
        "network.direction": _S,
        "network.protocol": _S,
        "user.id": _S,
        "user.name": _S,
        "user.group.id": _S,
        "user.group.name": _S,
        "group.id": _S,
        "group.name": _S,
        "user.effective.id": _S,
        "target.process.pid": _N,
        "target.process.name": _S,
        "target.process.executable": _S,
        "target.process.entity_id": _S,
        "rule.id": _S,
        "container.id": _S,
        "orchestrator.namespace": _S,
        "cgroup.id": _N,
        "cgroup.path": _S,
    },
    version=ECS_VERSION,
)


def schema_from_mapping(name: str, mapping: Mapping[str, object]) -> Schema:
    """Build a schema from an Elasticsearch mapping (``{"properties": ...}``), resolving aliases."""
    fields: dict[str, Kind] = {}
    nulls: dict[str, object] = {}
    texts: set[str] = set()
    aliases: dict[str, str] = {}

    def walk(props: Mapping[str, object], prefix: str) -> None:
        for key, spec in props.items():
            if not isinstance(spec, Mapping):
                continue
            full = f"{prefix}{key}"
            sub = spec.get("properties")
            if isinstance(sub, Mapping):
                walk(sub, full + ".")
                continue
            es_type = str(spec.get("type", "object"))
            if es_type == "alias":
                aliases[full] = str(spec.get("path", ""))
                continue
            fields[full] = kind_of_es_type(es_type)
            if es_type in ("text", "match_only_text"):
                texts.add(full)
            if "null_value" in spec:
                nulls[full] = spec["null_value"]

    props = mapping.get("properties", {})
    if isinstance(props, Mapping):
        walk(props, "")
    for alias, target in aliases.items():
        fields[alias] = fields.get(target, Kind.ANY)
    return Schema(name, fields, nulls, text_fields=frozenset(texts))
