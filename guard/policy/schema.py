"""The typed field schema rules are checked against: ECS names by default, or an Elasticsearch mapping.

:data:`ECS` is what a rule may name: ECS 8.x as Elastic's Linux rules read it (the process and its
parent, group, session and entry leaders with their users, groups and capabilities; files, the
network, DNS, the host), Elastic Endpoint's ``Ext`` fields those rules use, and a few fields of
other data sources (:data:`FOREIGN_SOURCES`) so that their rules import and say what they lack.
Types follow ECS: keyword fields are strings (ids included), numbers are ``long``/``double``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ECS",
    "ECS_VERSION",
    "FOREIGN_SOURCES",
    "Kind",
    "Schema",
    "foreign_source",
    "kind_of_es_type",
    "schema_from_mapping",
]


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


_S, _N, _IP, _D, _B = Kind.STRING, Kind.NUMBER, Kind.IP, Kind.DATE, Kind.BOOLEAN

#: The ECS release the field set follows.
ECS_VERSION: Final = "8.11.0"


def _prefixed(prefix: str, fields: Mapping[str, Kind]) -> dict[str, Kind]:
    return {f"{prefix}.{name}": kind for name, kind in fields.items()}


def _user(prefix: str) -> dict[str, Kind]:
    """``<prefix>.id`` and ``<prefix>.name``: ECS keeps user and group ids as keyword strings."""
    return {f"{prefix}.id": _S, f"{prefix}.name": _S}


#: The fields every process-like object of ECS has (``process``, its parent and its leaders).
_PROCESS_CORE: Final[dict[str, Kind]] = {
    "pid": _N,
    "vpid": _N,
    "entity_id": _S,
    "name": _S,
    "executable": _S,
    "args": _S,
    "args_count": _N,
    "command_line": _S,
    "working_directory": _S,
    "start": _D,
    "end": _D,
    "interactive": _B,
    "same_as_process": _B,
    "title": _S,
    "tty.char_device.major": _N,
    "tty.char_device.minor": _N,
    "tty.columns": _N,
    "tty.rows": _N,
    **_user("user"),
    **_user("group"),
    **_user("real_user"),
    **_user("real_group"),
    **_user("saved_user"),
    **_user("saved_group"),
    **_user("supplemental_groups"),
}
#: What ``process`` and ``process.parent`` add: the image, the thread, the exit, the environment.
_PROCESS_SELF: Final[dict[str, Kind]] = {
    **_PROCESS_CORE,
    "exit_code": _N,
    "uptime": _N,
    "pgid": _N,
    "env_vars": _S,
    "thread.id": _N,
    "thread.name": _S,
    "thread.capabilities.effective": _S,
    "thread.capabilities.permitted": _S,
    "hash.md5": _S,
    "hash.sha1": _S,
    "hash.sha256": _S,
    "hash.sha512": _S,
    "inode": _N,  # not ECS: the image's inode and device as the kernel reports them
    "device": _N,
    "group_leader.pid": _N,
    "group_leader.vpid": _N,
    "group_leader.entity_id": _S,
    "group_leader.start": _D,
}
_PROCESS_ENTITY: Final[dict[str, Kind]] = {"pid": _N, "vpid": _N, "entity_id": _S, "start": _D}
_PROCESS: Final[dict[str, Kind]] = {
    **_PROCESS_SELF,
    **_prefixed("parent", _PROCESS_SELF),
    **_prefixed("group_leader", _PROCESS_CORE),
    **_prefixed("session_leader", _PROCESS_CORE),
    **_prefixed("session_leader.parent", _PROCESS_ENTITY),
    **_prefixed("session_leader.parent.session_leader", _PROCESS_ENTITY),
    **_prefixed("entry_leader", _PROCESS_CORE),
    **_prefixed("entry_leader.parent", _PROCESS_ENTITY),
    **_prefixed("entry_leader.parent.session_leader", _PROCESS_ENTITY),
    "entry_leader.entry_meta.type": _S,
    "entry_leader.entry_meta.source.ip": _IP,
    **_user("entry_leader.attested_user"),
    **_user("entry_leader.attested_groups"),
    "previous.args": _S,
    "previous.args_count": _N,
    "previous.executable": _S,
    # Elastic Endpoint (Defend) extensions
    "Ext.ancestry": _S,
    "Ext.memfd.name": _S,
    "Ext.ptrace.child_pid": _N,
    "Ext.ptrace.request": _S,
    "Ext.load_module.taint_flags": _S,
}

#: The Elastic Common Schema fields (ECS 8.x), the Elastic Endpoint (Defend) ``Ext`` fields Elastic's
#: Linux rules read, and the fields other data sources fill (see :data:`FOREIGN_SOURCES`).
#: Keyword fields are strings (``user.id`` is ``"0"``). Which of these the agent fills on a
#: kernel plane is :mod:`guard.lsm.catalog`'s business, not the schema's.
ECS: Final = Schema(
    "ecs",
    {
        "@timestamp": _D,
        "message": _S,
        "tags": _S,
        "labels": _S,
        "event.category": _S,
        "event.type": _S,
        "event.action": _S,
        "event.kind": _S,
        "event.outcome": _S,
        "event.id": _S,
        "event.code": _S,
        "event.module": _S,
        "event.dataset": _S,
        "event.provider": _S,
        "event.reason": _S,
        "event.severity": _N,
        "event.risk_score": _N,
        "event.sequence": _N,
        "event.duration": _N,
        "event.created": _D,
        "event.start": _D,
        "event.end": _D,
        "event.ingested": _D,
        "data_stream.type": _S,
        "data_stream.dataset": _S,
        "data_stream.namespace": _S,
        "host.id": _S,
        "host.name": _S,
        "host.hostname": _S,
        "host.domain": _S,
        "host.type": _S,
        "host.architecture": _S,
        "host.ip": _IP,
        "host.mac": _S,
        "host.uptime": _N,
        "host.boot.id": _S,
        "host.pid_ns_ino": _S,
        "host.os.type": _S,
        "host.os.name": _S,
        "host.os.family": _S,
        "host.os.platform": _S,
        "host.os.version": _S,
        "host.os.full": _S,
        "host.os.kernel": _S,
        "agent.id": _S,
        "agent.name": _S,
        "agent.type": _S,
        "agent.version": _S,
        **_prefixed("process", _PROCESS),
        "file.path": _S,
        "file.name": _S,
        "file.extension": _S,
        "file.directory": _S,
        "file.inode": _N,  # ECS has keyword; the agent reports the kernel's number
        "file.device": _N,
        "file.mode": _S,
        "file.size": _N,
        "file.type": _S,
        "file.target_path": _S,
        "file.uid": _S,
        "file.gid": _S,
        "file.owner": _S,
        "file.group": _S,
        "file.attributes": _S,
        "file.mime_type": _S,
        "file.created": _D,
        "file.ctime": _D,
        "file.mtime": _D,
        "file.accessed": _D,
        "file.hash.md5": _S,
        "file.hash.sha1": _S,
        "file.hash.sha256": _S,
        "file.hash.sha512": _S,
        "file.Ext.original.path": _S,
        "file.Ext.original.name": _S,
        "file.Ext.original.extension": _S,
        "file.Ext.original.directory": _S,
        "file.Ext.header_bytes": _S,
        "file.Ext.entropy": _N,
        "destination.ip": _IP,
        "destination.port": _N,
        "destination.address": _S,
        "destination.domain": _S,
        "destination.bytes": _N,
        "destination.packets": _N,
        "source.ip": _IP,
        "source.port": _N,
        "source.address": _S,
        "source.domain": _S,
        "source.bytes": _N,
        "source.packets": _N,
        "network.transport": _S,
        "network.type": _S,
        "network.direction": _S,
        "network.protocol": _S,
        "network.iana_number": _S,
        "network.community_id": _S,
        "network.bytes": _N,
        "network.packets": _N,
        "dns.question.name": _S,
        "dns.question.type": _S,
        "dns.question.class": _S,
        "dns.question.registered_domain": _S,
        "dns.question.subdomain": _S,
        "dns.question.top_level_domain": _S,
        "dns.type": _S,
        "dns.id": _S,
        "dns.op_code": _S,
        "dns.response_code": _S,
        "dns.header_flags": _S,
        "dns.resolved_ip": _IP,
        "dns.answers.name": _S,
        "dns.answers.type": _S,
        "dns.answers.class": _S,
        "dns.answers.data": _S,
        "dns.answers.ttl": _N,
        "url.full": _S,
        "url.original": _S,
        "url.domain": _S,
        "url.path": _S,
        "url.query": _S,
        "url.scheme": _S,
        "url.port": _N,
        "http.request.method": _S,
        "http.request.body.content": _S,
        "http.request.bytes": _N,
        "http.response.status_code": _N,
        "http.version": _S,
        **_user("user"),
        "user.domain": _S,
        "user.full_name": _S,
        "user.email": _S,
        "user.roles": _S,
        **_user("user.group"),
        **_user("user.effective"),
        **_user("user.target"),
        **_user("user.changes"),
        **_user("user.Ext.real"),
        **_user("group"),
        "group.domain": _S,
        **_user("group.Ext.real"),
        "target.process.pid": _N,
        "target.process.name": _S,
        "target.process.executable": _S,
        "target.process.entity_id": _S,
        "rule.id": _S,
        "container.id": _S,
        "container.name": _S,
        "container.runtime": _S,
        "container.image.name": _S,
        "container.image.tag": _S,
        "orchestrator.namespace": _S,
        "orchestrator.cluster.name": _S,
        "orchestrator.resource.name": _S,
        "orchestrator.resource.type": _S,
        "cgroup.id": _N,
        "cgroup.path": _S,
        # Other data sources (FOREIGN_SOURCES): typed so their rules import; no sensor here fills them.
        "auditd.result": _S,
        "auditd.message_type": _S,
        "auditd.data.syscall": _S,
        "auditd.data.a0": _S,
        "auditd.data.a1": _S,
        "auditd.data.a2": _S,
        "auditd.data.a3": _S,
        "auditd.data.exit": _S,
        "auditd.data.class": _S,
        "auditd.data.socket.family": _S,
        "auditd.summary.actor.primary": _S,
        "auditd.summary.object.primary": _S,
        "system.auth.ssh.event": _S,
        "system.auth.ssh.method": _S,
        "system.auth.sudo.command": _S,
        "cloud.provider": _S,
        "cloud.region": _S,
        "cloud.account.id": _S,
        "cloud.instance.id": _S,
        "cloud.availability_zone": _S,
    },
    version=ECS_VERSION,
)

#: Field-name prefixes of the data sources other than a host sensor: Elastic's rules read them,
#: the schema types them, and no kernel plane of this agent fills them (name -> the source).
FOREIGN_SOURCES: Final[Mapping[str, str]] = {
    "auditd.": "Auditbeat auditd module",
    "system.auth.": "Filebeat system module",
    "cloud.": "cloud provider metadata",
    "data_stream.": "Elasticsearch data streams",
    "http.": "network packet capture",
    "url.": "network packet capture",
}


def foreign_source(name: str) -> str | None:
    """Return the data source a field comes from when it is not a host sensor's, else None."""
    return next((source for prefix, source in FOREIGN_SOURCES.items() if name.startswith(prefix)), None)


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
