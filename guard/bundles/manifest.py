"""The bundle manifest: the format's constants, the signed ``manifest.json`` and its validation.

A bundle is a gzip-compressed tar holding exactly::

    manifest.json                  canonical JSON (sorted keys, no spaces, UTF-8)
    policy/<relative path>         every policy file (*.guard, *.toml) and user-function module
                                   (*.lua, *.wat, *.wasm) the manifest lists
    signatures/<key id>.sig        {"key_id": ..., "sig": <hex Ed25519 over manifest.json's bytes>}

The manifest carries ``format`` (1), ``version`` (a monotonic integer), ``created``, ``expires``
(or null), ``min_agent_version`` and ``files`` ({path: {"sha256", "size"}}).
:meth:`Manifest.from_bytes` accepts only the canonical form, every field checked; a refusal is a
:class:`~guard.errors.BundleError` naming the field.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Final

from guard.audit.record import canonical_json
from guard.errors import BundleError
from guard.policy.loader import MODULE_SUFFIXES
from guard.policy.loader import POLICY_SUFFIXES as RULE_SUFFIXES

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "MAX_NAME_BYTES",
    "MAX_NAME_DEPTH",
    "MAX_PATH_BYTES",
    "MAX_VERSION",
    "POLICY_DIR",
    "POLICY_SUFFIXES",
    "RULE_SUFFIXES",
    "SIGNATURE_DIR",
    "FileEntry",
    "Manifest",
    "check_name",
    "check_tree",
    "iso_time",
    "parse_expires",
    "quote_name",
    "version_key",
]

FORMAT: Final = 1
MANIFEST_NAME: Final = "manifest.json"
POLICY_DIR: Final = "policy/"
SIGNATURE_DIR: Final = "signatures/"
#: what guard.policy.loader reads: rules and the user-function modules beside them
POLICY_SUFFIXES: Final = (*RULE_SUFFIXES, *MODULE_SUFFIXES)


_SHA256 = re.compile(r"[0-9a-f]{64}")
#: N.N.N: at most 8 numeric parts of at most 9 digits each (no sign, suffix or space)
_VERSION = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,7}")
MAX_VERSION: Final = 2**63 - 1
#: NAME_MAX: one path component, in UTF-8 bytes
MAX_NAME_BYTES: Final = 255
#: a whole name, in UTF-8 bytes: well under PATH_MAX (4096), so that it can be written under any
#: directory the store, a compile or ``write_policy`` uses
MAX_PATH_BYTES: Final = 1024
#: path components in one name (directories are created one level at a time)
MAX_NAME_DEPTH: Final = 32
_MANIFEST_KEYS: Final = frozenset({"format", "version", "created", "expires", "min_agent_version", "files"})


def quote_name(text: str) -> str:
    """Quote an untrusted name when it could break the one-line message."""
    return text if text.isprintable() and " " not in text and text else json.dumps(text)


def iso_time(moment: datetime) -> str:
    """Return ``moment`` as the manifest writes times: UTC, ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BundleError("manifest", f"{where}: not an ISO-8601 time: {quote_name(text)}") from None
    if moment.tzinfo is None:
        raise BundleError("manifest", f"{where}: {quote_name(text)} has no UTC offset")
    return moment.astimezone(UTC)


def parse_expires(text: str) -> datetime:
    """Parse ``--expires``: a date (its midnight, UTC) or a datetime (naive means UTC)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BundleError("manifest", f"expires: not an ISO-8601 date or time: {quote_name(text)}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def version_key(text: str, where: str, *, strict: bool = True) -> tuple[int, ...]:
    """Return a version's numeric parts (``N.N.N``) for comparison; raise BundleError("manifest").

    ``strict`` (a manifest's ``min_agent_version``): the whole text is the version; otherwise (this
    agent's own version) a suffix after the numeric parts (``0.2.0.dev1``, ``1.0+local``) is ignored.
    """
    match = _VERSION.fullmatch(text) if strict else _VERSION.match(text)
    if match is None:
        raise BundleError(
            "manifest", f"{where}: malformed: not a version N.N.N (digits and dots): {quote_name(text[:64])}"
        )
    return tuple(int(part) for part in match.group(0).split("."))


def check_name(name: str, where: str = "entry", check: str = "entry") -> None:
    """Refuse absolute, unnormalised, ``..``, empty, control-character or unwritable names.

    Unwritable: a component over NAME_MAX (:data:`MAX_NAME_BYTES`), a name over
    :data:`MAX_PATH_BYTES` or with more than :data:`MAX_NAME_DEPTH` components.
    """
    if len(name.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise BundleError(
            check, f"{where} {quote_name(name[:64])}...: name longer than {MAX_PATH_BYTES} bytes"
        )
    if not name or not name.isprintable() or "\\" in name:
        raise BundleError(
            check, f"{where} {quote_name(name)}: empty, backslash or control characters in the name"
        )
    parts = name.split("/")
    if len(parts) > MAX_NAME_DEPTH:
        raise BundleError(check, f"{where} {quote_name(name)}: more than {MAX_NAME_DEPTH} path components")
    for part in parts:
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise BundleError(
                check,
                f"{where} {quote_name(name[:64])}...: a path component longer than {MAX_NAME_BYTES} bytes "
                "(NAME_MAX)",
            )
    if name.startswith("/"):
        raise BundleError(check, f"{where} {quote_name(name)}: absolute path")
    if ".." in parts:
        raise BundleError(check, f"{where} {quote_name(name)}: '..' in the path")
    if posixpath.normpath(name) != name:
        raise BundleError(check, f"{where} {quote_name(name)}: not a normalised path")


def check_tree(names: Iterable[str], where: str = "entry", check: str = "entry") -> None:
    """Refuse a name that is also a directory of another (``a.guard`` and ``a.guard/b.guard``)."""
    known = set(names)
    for name in sorted(known):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in known:
                raise BundleError(
                    check, f"{where} {quote_name(name)}: {quote_name(parent)} is a file, not a directory"
                )


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One policy file as the manifest lists it."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """The signed part of a bundle."""

    version: int
    created: datetime
    expires: datetime | None
    min_agent_version: str
    files: Mapping[str, FileEntry]
    format: int = FORMAT

    def to_json(self) -> dict[str, object]:
        """Return the manifest as the JSON object its canonical bytes encode."""
        return {
            "format": self.format,
            "version": self.version,
            "created": iso_time(self.created),
            "expires": iso_time(self.expires) if self.expires is not None else None,
            "min_agent_version": self.min_agent_version,
            "files": {p: {"sha256": e.sha256, "size": e.size} for p, e in sorted(self.files.items())},
        }

    def canonical_bytes(self) -> bytes:
        """Return the bytes signatures cover: canonical JSON (sorted keys, no spaces, UTF-8)."""
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """Parse and validate ``manifest.json``; raise BundleError("manifest") naming the field."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BundleError("manifest", f"{MANIFEST_NAME}: not JSON ({exc})".splitlines()[0]) from None
        if not isinstance(data, dict):
            raise BundleError("manifest", f"{MANIFEST_NAME}: not a JSON object")
        unknown = sorted(set(data) - _MANIFEST_KEYS)
        if unknown:
            raise BundleError(
                "manifest", f"{MANIFEST_NAME}: unknown field(s) {', '.join(map(quote_name, unknown))}"
            )
        missing = sorted(_MANIFEST_KEYS - set(data))
        if missing:
            raise BundleError("manifest", f"{MANIFEST_NAME}: {missing[0]}: missing")
        fmt = data["format"]
        if fmt != FORMAT or isinstance(fmt, bool):
            raise BundleError("manifest", f"format: {fmt!r} is not supported (this agent reads {FORMAT})")
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
            raise BundleError("manifest", f"version: expected an integer >= 1, got {version!r}"[:200])
        created, expires, min_agent = data["created"], data["expires"], data["min_agent_version"]
        if not isinstance(created, str):
            raise BundleError("manifest", "created: expected an ISO-8601 string")
        if expires is not None and not isinstance(expires, str):
            raise BundleError("manifest", "expires: expected an ISO-8601 string or null")
        if not isinstance(min_agent, str):
            raise BundleError("manifest", "min_agent_version: expected a string")
        version_key(min_agent, "min_agent_version")
        manifest = cls(
            version=version,
            created=_parse_time(created, "created"),
            expires=_parse_time(expires, "expires") if expires is not None else None,
            min_agent_version=min_agent,
            files=_parse_files(data["files"]),
        )
        if manifest.canonical_bytes() != raw:
            raise BundleError("manifest", f"{MANIFEST_NAME}: not in canonical form (sorted keys, no spaces)")
        return manifest


def _parse_files(files: object) -> dict[str, FileEntry]:
    if not isinstance(files, dict) or not files:
        raise BundleError("manifest", "files: expected a non-empty object {path: {sha256, size}}")
    out: dict[str, FileEntry] = {}
    for path, entry in files.items():
        check_name(path, "files: path", "manifest")
        if not path.endswith(POLICY_SUFFIXES):
            raise BundleError(
                "manifest",
                f"files: {quote_name(path)}: not a policy file or module ({', '.join(POLICY_SUFFIXES)})",
            )
        if not isinstance(entry, dict) or set(entry) != {"sha256", "size"}:
            raise BundleError("manifest", f"files: {quote_name(path)}: expected exactly sha256 and size")
        digest, size = entry["sha256"], entry["size"]
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise BundleError(
                "manifest", f"files: {quote_name(path)}: sha256: expected 64 lowercase hex digits"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError("manifest", f"files: {quote_name(path)}: size: expected an integer >= 0")
        out[path] = FileEntry(digest, size)
    check_tree(out, "files: path", "manifest")
    return out
