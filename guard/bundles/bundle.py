"""Signed policy bundles: build, sign, verify, and the store of kept bundles (TUF's model).

A bundle is a gzip-compressed tar holding exactly::

    manifest.json                  canonical JSON (sorted keys, no spaces, UTF-8)
    policy/<relative path>         every policy file (*.guard, *.toml) and user-function module
                                   (*.lua, *.wat, *.wasm) the manifest lists
    signatures/<key id>.sig        {"key_id": ..., "sig": <hex Ed25519 over manifest.json's bytes>}

The manifest carries ``format`` (1), ``version`` (a monotonic integer), ``created``, ``expires``
(or null), ``min_agent_version`` and ``files`` ({path: {"sha256", "size"}}). An archive is read
whole into memory, under hard limits checked while it is read (:class:`Limits`), and never
extracted by ``tarfile``: every member must be a regular file with a relative, normalised, unique
name. :func:`verify_bundle` accepts a bundle only when enough trusted keys signed the manifest
(threshold), it has not expired, its version is above the active one (rollback and replay
protection) and every file matches its hash; otherwise it raises :class:`BundleError` naming the
first failed check. :class:`BundleStore` keeps verified bundles for rollback.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import stat
import tarfile
import tempfile
import tomllib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Final

from guard.audit.record import canonical_json
from guard.errors import BundleError, PolicyError, SigningKeyError
from guard.plan.compiler import CompiledPolicy, compile_policy
from guard.policy.loader import MODULE_SUFFIXES, load_policy
from guard.policy.loader import POLICY_SUFFIXES as RULE_SUFFIXES
from guard.signing import Signer, Verifier, load_verifier

__all__ = [
    "CHECKS",
    "DEFAULT_TRUST_DIR",
    "FORMAT",
    "Bundle",
    "BundleStore",
    "FileEntry",
    "Limits",
    "Manifest",
    "StoredBundle",
    "TrustStore",
    "VerifiedBundle",
    "build_bundle",
    "load_trust_store",
    "parse_expires",
    "read_bundle",
    "sign_bundle",
    "verify_bundle",
]

FORMAT: Final = 1
DEFAULT_TRUST_DIR: Final = "/etc/guard/trust"
MANIFEST_NAME: Final = "manifest.json"
POLICY_DIR: Final = "policy/"
SIGNATURE_DIR: Final = "signatures/"
#: what guard.policy.loader reads: rules and the user-function modules beside them
POLICY_SUFFIXES: Final = (*RULE_SUFFIXES, *MODULE_SUFFIXES)

#: every check a BundleError can name, and what it means
CHECKS: Final[Mapping[str, str]] = {
    "archive": "not a readable gzip-compressed tar: corrupt, truncated, trailing data",
    "size": "the archive, a member, the manifest or the whole exceeds its limit (bomb)",
    "entry": "a member that is not a regular file with a relative, normalised, unique, expected name",
    "manifest": "manifest.json missing, not canonical JSON, or a field missing or invalid",
    "signature": "a signature file malformed, or a trusted key's signature that does not match",
    "untrusted_key": "signed only by keys the trust store does not hold",
    "threshold": "fewer distinct trusted signatures than the trust store's threshold",
    "expired": "the manifest's expires is past",
    "downgrade": "version lower than or equal to the active one (rollback, replay)",
    "agent_version": "min_agent_version is above this agent's version",
    "missing_file": "a file the manifest lists is not in the archive",
    "extra_file": "a policy file in the archive that the manifest does not list",
    "hash": "a policy file whose SHA-256 or size differs from the manifest",
    "compile": "the policy files do not load and compile",
    "trust": "the trust store is unusable (no keys, bad trust.toml, threshold above the key count)",
    "store": "the store of kept bundles cannot be read or written, or lacks a version",
    "write": "the policy files cannot be written out",
}

_KEY_ID = re.compile(r"[0-9a-f]{16}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SIG_HEX = re.compile(r"[0-9a-f]{128}")
_AGENT_VERSION = re.compile(r"(\d+(?:\.\d+)*)")
_MAX_VERSION: Final = 2**63 - 1
_MANIFEST_KEYS: Final = frozenset({"format", "version", "created", "expires", "min_agent_version", "files"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Hard limits on an archive, checked while it is read (a bomb stops at the limit)."""

    archive_bytes: int = 16 * 1024 * 1024  # the compressed file
    total_bytes: int = 64 * 1024 * 1024  # the uncompressed tar stream, headers included
    manifest_bytes: int = 1024 * 1024
    file_bytes: int = 4 * 1024 * 1024  # each policy file
    signature_bytes: int = 4096  # each signature file
    members: int = 4096


DEFAULT_LIMITS: Final = Limits()


def _q(text: str) -> str:
    """Quote an untrusted name when it could break the one-line message."""
    return text if text.isprintable() and " " not in text and text else json.dumps(text)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BundleError("manifest", f"{where}: not an ISO-8601 time: {_q(text)}") from None
    if moment.tzinfo is None:
        raise BundleError("manifest", f"{where}: {_q(text)} has no UTC offset")
    return moment.astimezone(UTC)


def parse_expires(text: str) -> datetime:
    """Parse ``--expires``: a date (its midnight, UTC) or a datetime (naive means UTC)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BundleError("manifest", f"expires: not an ISO-8601 date or time: {_q(text)}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _version_key(text: str, where: str) -> tuple[int, ...]:
    match = _AGENT_VERSION.match(text)
    if match is None:
        raise BundleError("manifest", f"{where}: not a version (N.N.N): {_q(text)}")
    return tuple(int(part) for part in match.group(1).split("."))


def _check_name(name: str, where: str = "entry", check: str = "entry") -> None:
    """Refuse absolute, unnormalised, ``..``, empty or control-character names."""
    if not name or not name.isprintable() or "\\" in name:
        raise BundleError(check, f"{where} {_q(name)}: empty, backslash or control characters in the name")
    if name.startswith("/"):
        raise BundleError(check, f"{where} {_q(name)}: absolute path")
    if ".." in name.split("/"):
        raise BundleError(check, f"{where} {_q(name)}: '..' in the path")
    if posixpath.normpath(name) != name:
        raise BundleError(check, f"{where} {_q(name)}: not a normalised path")


# ---------------------------------------------------------------------------------------------------
# the manifest


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
            "created": _iso(self.created),
            "expires": _iso(self.expires) if self.expires is not None else None,
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
            raise BundleError("manifest", f"{MANIFEST_NAME}: unknown field(s) {', '.join(map(_q, unknown))}")
        missing = sorted(_MANIFEST_KEYS - set(data))
        if missing:
            raise BundleError("manifest", f"{MANIFEST_NAME}: {missing[0]}: missing")
        fmt = data["format"]
        if fmt != FORMAT or isinstance(fmt, bool):
            raise BundleError("manifest", f"format: {fmt!r} is not supported (this agent reads {FORMAT})")
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= _MAX_VERSION:
            raise BundleError("manifest", f"version: expected an integer >= 1, got {version!r}"[:200])
        created, expires, min_agent = data["created"], data["expires"], data["min_agent_version"]
        if not isinstance(created, str):
            raise BundleError("manifest", "created: expected an ISO-8601 string")
        if expires is not None and not isinstance(expires, str):
            raise BundleError("manifest", "expires: expected an ISO-8601 string or null")
        if not isinstance(min_agent, str):
            raise BundleError("manifest", "min_agent_version: expected a string")
        _version_key(min_agent, "min_agent_version")
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
        _check_name(path, "files: path", "manifest")
        if not path.endswith(POLICY_SUFFIXES):
            raise BundleError(
                "manifest", f"files: {_q(path)}: not a policy file or module ({', '.join(POLICY_SUFFIXES)})"
            )
        if not isinstance(entry, dict) or set(entry) != {"sha256", "size"}:
            raise BundleError("manifest", f"files: {_q(path)}: expected exactly sha256 and size")
        digest, size = entry["sha256"], entry["size"]
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise BundleError("manifest", f"files: {_q(path)}: sha256: expected 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError("manifest", f"files: {_q(path)}: size: expected an integer >= 0")
        out[path] = FileEntry(digest, size)
    return out


# ---------------------------------------------------------------------------------------------------
# the archive


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """An archive read and parsed, not yet verified: trust nothing in it."""

    archive: bytes  # the compressed bytes as read
    manifest_bytes: bytes
    manifest: Manifest
    files: Mapping[str, bytes]  # policy files by their path under policy/
    signatures: Mapping[str, str]  # key id -> hex signature

    @property
    def digest(self) -> str:
        """Return the SHA-256 of the archive bytes."""
        return hashlib.sha256(self.archive).hexdigest()


def _read_archive_bytes(path: Path, limits: Limits) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise BundleError("archive", f"cannot open: {exc.strerror}", path=str(path)) from exc
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BundleError("archive", "not a regular file", path=str(path))
        # read(n) allocates n bytes: ask for the file's size (plus one, to see it grow), never the limit
        data = f.read(min(info.st_size, limits.archive_bytes) + 1)
    if len(data) > limits.archive_bytes:
        raise BundleError("size", f"archive larger than {limits.archive_bytes} bytes", path=str(path))
    return data


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress one gzip member, stopping at ``limit`` output bytes (a bomb stops there)."""
    if data[:2] != b"\x1f\x8b":
        raise BundleError("archive", "not a gzip-compressed tar (bad magic)")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BundleError("archive", f"corrupt gzip stream ({exc})") from None
    if len(out) > limit:
        raise BundleError("size", f"uncompressed archive larger than {limit} bytes (decompression bomb)")
    if not inflater.eof:
        raise BundleError("archive", "truncated gzip stream")
    if inflater.unused_data:
        raise BundleError(
            "archive", f"{len(inflater.unused_data)} bytes of trailing data after the gzip stream"
        )
    return out


def _read_members(tar_bytes: bytes, limits: Limits) -> dict[str, bytes]:
    """Return every member's bytes by name; refuse anything but regular files with clean names."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            while (member := tar.next()) is not None:
                if len(members) >= limits.members:
                    raise BundleError("size", f"more than {limits.members} members")
                name = member.name
                _check_name(name)
                if member.issym() or member.islnk():
                    kind = "symbolic" if member.issym() else "hard"
                    raise BundleError("entry", f"entry {_q(name)}: a {kind} link")
                if member.isdev():
                    raise BundleError("entry", f"entry {_q(name)}: a device or fifo")
                if not member.isreg() or member.issparse():
                    raise BundleError("entry", f"entry {_q(name)}: not a regular file")
                if name in members:
                    raise BundleError("entry", f"entry {_q(name)}: appears twice")
                if name == MANIFEST_NAME:
                    cap = limits.manifest_bytes
                elif name.startswith(SIGNATURE_DIR):
                    cap = limits.signature_bytes
                else:
                    cap = limits.file_bytes
                if member.size > cap:
                    raise BundleError("size", f"entry {_q(name)}: {member.size} bytes, above the limit {cap}")
                extracted = tar.extractfile(member)
                data = extracted.read() if extracted is not None else b""
                if len(data) != member.size:
                    raise BundleError(
                        "archive", f"entry {_q(name)}: truncated ({len(data)} of {member.size} bytes)"
                    )
                members[name] = data
            end = tar.offset
    except tarfile.TarError as exc:
        raise BundleError("archive", f"corrupt tar ({exc})".splitlines()[0]) from None
    if not members:
        raise BundleError("archive", "an empty tar archive")
    if tar_bytes[end:].strip(b"\0"):
        raise BundleError("archive", f"corrupt or trailing data after the last member at byte {end}")
    return members


def read_bundle(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Read and parse an archive in memory under ``limits``; check its structure, not its trust."""
    try:
        archive = _read_archive_bytes(path, limits)
        members = _read_members(_gunzip(archive, limits.total_bytes), limits)
        manifest_bytes = members.pop(MANIFEST_NAME, None)
        if manifest_bytes is None:
            raise BundleError("manifest", f"no {MANIFEST_NAME} in the archive")
        files: dict[str, bytes] = {}
        signatures: dict[str, str] = {}
        for name, data in members.items():
            if name.startswith(POLICY_DIR):
                files[name[len(POLICY_DIR) :]] = data
            elif name.startswith(SIGNATURE_DIR):
                key_id, sig = _parse_signature(name, data)
                signatures[key_id] = sig
            else:
                raise BundleError(
                    "entry", f"entry {_q(name)}: not {MANIFEST_NAME}, {POLICY_DIR}... or {SIGNATURE_DIR}..."
                )
        manifest = Manifest.from_bytes(manifest_bytes)
    except BundleError as exc:
        if exc.path is not None:
            raise
        raise BundleError(exc.check, exc.detail, path=str(path)) from None
    return Bundle(
        archive=archive, manifest_bytes=manifest_bytes, manifest=manifest, files=files, signatures=signatures
    )


def _parse_signature(name: str, data: bytes) -> tuple[str, str]:
    stem = name[len(SIGNATURE_DIR) :]
    if not stem.endswith(".sig") or not _KEY_ID.fullmatch(stem[:-4]):
        raise BundleError("entry", f"entry {_q(name)}: expected {SIGNATURE_DIR}<16 hex digit key id>.sig")
    key_id = stem[:-4]
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError("signature", f"{name}: not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"key_id", "sig"}:
        raise BundleError("signature", f"{name}: expected exactly key_id and sig")
    if doc["key_id"] != key_id:
        raise BundleError("signature", f"{name}: key_id {_q(str(doc['key_id']))} differs from the file name")
    sig = doc["sig"]
    if not isinstance(sig, str) or not _SIG_HEX.fullmatch(sig):
        raise BundleError("signature", f"{name}: sig: expected 128 lowercase hex digits")
    return key_id, sig


def _check_files(bundle: Bundle) -> None:
    """Every listed file present, none unlisted, each with its SHA-256 and size."""
    listed, present = bundle.manifest.files, bundle.files
    for path in sorted(listed):
        if path not in present:
            raise BundleError(
                "missing_file", f"{POLICY_DIR}{_q(path)}: listed in the manifest, not in the archive"
            )
    for path in sorted(present):
        if path not in listed:
            raise BundleError("extra_file", f"{POLICY_DIR}{_q(path)}: in the archive, not in the manifest")
    for path in sorted(listed):
        data, entry = present[path], listed[path]
        if len(data) != entry.size:
            raise BundleError(
                "hash", f"{POLICY_DIR}{_q(path)}: {len(data)} bytes, the manifest says {entry.size}"
            )
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise BundleError("hash", f"{POLICY_DIR}{_q(path)}: SHA-256 differs from the manifest")


def _archive_bytes(manifest_bytes: bytes, files: Mapping[str, bytes], signatures: Mapping[str, str]) -> bytes:
    """Return a deterministic .tar.gz: sorted members, mode 0644, owner 0, mtime 0."""
    members = [(MANIFEST_NAME, manifest_bytes)]
    members += [(POLICY_DIR + p, files[p]) for p in sorted(files)]
    members += [
        (f"{SIGNATURE_DIR}{k}.sig", canonical_json({"key_id": k, "sig": signatures[k]}))
        for k in sorted(signatures)
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _write_atomically(path: Path, data: bytes, check: str) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over it."""
    directory = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise BundleError(check, f"{directory}: cannot write: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BundleError(check, f"{path}: cannot write: {exc.strerror}") from exc


# ---------------------------------------------------------------------------------------------------
# build and sign


def _collect(policy_dir: Path, limits: Limits) -> dict[str, bytes]:
    if not policy_dir.is_dir():
        raise BundleError("compile", f"{policy_dir}: not a policy directory")
    paths = sorted(p for p in policy_dir.rglob("*") if p.suffix in POLICY_SUFFIXES and p.is_file())
    if not any(p.suffix in RULE_SUFFIXES for p in paths):
        raise BundleError("compile", f"{policy_dir}: no *.guard or *.toml policy files")
    if len(paths) + 1 > limits.members:
        raise BundleError("size", f"{policy_dir}: more than {limits.members - 1} policy files")
    files: dict[str, bytes] = {}
    for p in paths:
        rel = p.relative_to(policy_dir).as_posix()
        _check_name(rel, "policy file")
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise BundleError("compile", f"{p}: cannot read: {exc.strerror}") from exc
        if len(data) > limits.file_bytes:
            raise BundleError("size", f"{p}: {len(data)} bytes, above the limit {limits.file_bytes}")
        files[rel] = data
    return files


def _write_files(files: Mapping[str, bytes], directory: Path) -> None:
    for rel, data in sorted(files.items()):
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)


def _compile_files(files: Mapping[str, bytes], shown_as: str) -> CompiledPolicy:
    """Load and compile exactly these files (written to a private directory); name them as ``shown_as``."""
    with tempfile.TemporaryDirectory(prefix="guard-bundle-") as tmp:
        _write_files(files, Path(tmp))
        try:
            return compile_policy(load_policy(Path(tmp)))
        except PolicyError as exc:
            message = str(exc).replace(tmp + os.sep, shown_as).replace(tmp, shown_as.rstrip("/"))
            raise BundleError("compile", message.splitlines()[0]) from None


def build_bundle(
    policy_dir: Path,
    output: Path,
    *,
    version: int,
    now: datetime,
    expires: datetime | None = None,
    min_agent_version: str,
    limits: Limits = DEFAULT_LIMITS,
) -> Bundle:
    """Compile the policy files under ``policy_dir`` and write an unsigned bundle to ``output``."""
    if isinstance(version, bool) or not 1 <= version <= _MAX_VERSION:
        raise BundleError("manifest", f"version: expected an integer >= 1, got {version}")
    created = now.astimezone(UTC).replace(microsecond=0)
    if expires is not None and expires.astimezone(UTC) <= created:
        raise BundleError("manifest", f"expires: {_iso(expires)} is not after created {_iso(created)}")
    _version_key(min_agent_version, "min_agent_version")
    files = _collect(policy_dir, limits)
    _compile_files(files, f"{policy_dir}/")
    manifest = Manifest(
        version=version,
        created=created,
        expires=expires.astimezone(UTC).replace(microsecond=0) if expires is not None else None,
        min_agent_version=min_agent_version,
        files={p: FileEntry(hashlib.sha256(d).hexdigest(), len(d)) for p, d in files.items()},
    )
    manifest_bytes = manifest.canonical_bytes()
    if len(manifest_bytes) > limits.manifest_bytes:
        raise BundleError(
            "size", f"{MANIFEST_NAME}: {len(manifest_bytes)} bytes, above {limits.manifest_bytes}"
        )
    archive = _archive_bytes(manifest_bytes, files, {})
    if len(archive) > limits.archive_bytes:
        raise BundleError("size", f"archive larger than {limits.archive_bytes} bytes", path=str(output))
    _write_atomically(output, archive, "write")
    return Bundle(
        archive=archive, manifest_bytes=manifest_bytes, manifest=manifest, files=files, signatures={}
    )


def sign_bundle(path: Path, signers: Sequence[Signer], *, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Add each signer's signature over the manifest (replacing its earlier one); rewrite atomically.

    The archive must be well formed and its files must match the manifest: nothing else is signed.
    """
    bundle = read_bundle(path, limits=limits)
    try:
        _check_files(bundle)
    except BundleError as exc:
        raise BundleError(exc.check, exc.detail, path=str(path)) from None
    signatures = dict(bundle.signatures)
    for signer in signers:
        signatures[signer.key_id] = signer.sign(bundle.manifest_bytes)
    archive = _archive_bytes(bundle.manifest_bytes, bundle.files, signatures)
    if len(archive) > limits.archive_bytes:
        raise BundleError("size", f"archive larger than {limits.archive_bytes} bytes", path=str(path))
    _write_atomically(path, archive, "write")
    return Bundle(
        archive=archive,
        manifest_bytes=bundle.manifest_bytes,
        manifest=bundle.manifest,
        files=bundle.files,
        signatures=signatures,
    )


# ---------------------------------------------------------------------------------------------------
# trust and verification


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Trusted public keys by key id, and how many distinct ones must sign."""

    verifiers: Mapping[str, Verifier]
    threshold: int = 1


def load_trust_store(directory: Path) -> TrustStore:
    """Load ``*.pub`` keys and ``trust.toml`` (``threshold = N``, default 1) from ``directory``."""
    if not directory.is_dir():
        raise BundleError("trust", f"{directory}: no such trust store directory")
    verifiers: dict[str, Verifier] = {}
    for pub in sorted(directory.glob("*.pub")):
        try:
            verifier = load_verifier(pub)
        except SigningKeyError as exc:
            raise BundleError("trust", str(exc)) from exc
        verifiers[verifier.key_id] = verifier
    if not verifiers:
        raise BundleError("trust", f"{directory}: no *.pub keys")
    threshold = 1
    config = directory / "trust.toml"
    if config.exists():
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise BundleError("trust", f"{config}: unreadable: {exc}".splitlines()[0]) from exc
        unknown = sorted(set(data) - {"threshold"})
        if unknown:
            raise BundleError("trust", f"{config}: unknown key(s) {', '.join(unknown)} (known: threshold)")
        value = data.get("threshold", 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BundleError("trust", f"{config}: threshold: expected an integer >= 1, got {value!r}")
        threshold = value
    if threshold > len(verifiers):
        raise BundleError(
            "trust", f"{directory}: threshold {threshold} but only {len(verifiers)} distinct trusted key(s)"
        )
    return TrustStore(verifiers, threshold)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedBundle:
    """A bundle every check accepted: the exact bytes verified, its manifest, files and signers."""

    path: Path
    archive: bytes
    manifest: Manifest
    files: Mapping[str, bytes]
    signers: tuple[str, ...]  # trusted key ids whose signatures verified
    unknown_signers: tuple[str, ...] = ()  # key ids the trust store does not hold (not counted)
    threshold: int = 1

    @property
    def version(self) -> int:
        """Return the manifest's version."""
        return self.manifest.version

    @property
    def digest(self) -> str:
        """Return the SHA-256 of the archive bytes."""
        return hashlib.sha256(self.archive).hexdigest()

    def write_policy(self, directory: Path) -> Path:
        """Write the policy files into ``directory`` (absent or empty) for ``load_policy``; return it."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if any(directory.iterdir()):
                raise BundleError("write", f"{directory}: not empty; policy files go into an empty directory")
            _write_files(self.files, directory)
        except OSError as exc:
            raise BundleError("write", f"{directory}: cannot write policy files: {exc.strerror}") from exc
        return directory

    def compile(self) -> CompiledPolicy:
        """Load and compile the policy files; raise BundleError("compile") naming the rule at fault."""
        try:
            return _compile_files(self.files, POLICY_DIR)
        except BundleError as exc:
            raise BundleError(exc.check, exc.detail, path=str(self.path)) from None

    def to_json(self) -> dict[str, object]:
        """Return the summary ``guardctl bundle verify --json`` prints."""
        return {
            "file": str(self.path),
            "version": self.version,
            "created": _iso(self.manifest.created),
            "expires": _iso(self.manifest.expires) if self.manifest.expires is not None else None,
            "min_agent_version": self.manifest.min_agent_version,
            "signers": list(self.signers),
            "unknown_signers": list(self.unknown_signers),
            "threshold": self.threshold,
            "files": sorted(self.files),
            "sha256": self.digest,
        }


def _check_signatures(bundle: Bundle, trust: TrustStore) -> tuple[tuple[str, ...], tuple[str, ...]]:
    valid: list[str] = []
    unknown: list[str] = []
    for key_id, sig in sorted(bundle.signatures.items()):
        verifier = trust.verifiers.get(key_id)
        if verifier is None:
            unknown.append(key_id)
        elif verifier.verify(bundle.manifest_bytes, sig):
            valid.append(key_id)
        else:
            raise BundleError(
                "signature",
                f"{SIGNATURE_DIR}{key_id}.sig: trusted key's signature does not match the manifest",
            )
    if len(valid) < trust.threshold:
        untrusted = f"; untrusted key(s) {', '.join(unknown)} do not count" if unknown else ""
        if not valid and unknown:
            raise BundleError(
                "untrusted_key",
                f"signed only by untrusted key(s) {', '.join(unknown)}; "
                f"{trust.threshold} trusted signature(s) required",
            )
        signed = f"signed by {', '.join(valid)}" if valid else "no trusted signature"
        raise BundleError(
            "threshold",
            f"{len(valid)} of {trust.threshold} required trusted signatures ({signed}{untrusted})",
        )
    return tuple(valid), tuple(unknown)


def verify_bundle(
    path: Path,
    trust: TrustStore,
    *,
    active_version: int | None,
    now: datetime,
    agent_version: str,
    allow_older: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> VerifiedBundle:
    """Verify a bundle; raise BundleError naming the first failed check.

    Order: archive and entries, manifest, signatures and threshold, expiry, version against
    ``active_version`` (skipped with ``allow_older``: an operator's rollback to a kept bundle),
    minimum agent version, then every file against the manifest.
    """
    bundle = read_bundle(path, limits=limits)
    manifest = bundle.manifest
    try:
        signers, unknown = _check_signatures(bundle, trust)
        if manifest.expires is not None and now.astimezone(UTC) >= manifest.expires:
            raise BundleError("expired", f"expires {_iso(manifest.expires)}, now is {_iso(now)}")
        if active_version is not None and not allow_older and manifest.version <= active_version:
            why = "replay of the active version" if manifest.version == active_version else "downgrade"
            raise BundleError(
                "downgrade",
                f"version {manifest.version} is not above the active version {active_version} ({why})",
            )
        if _version_key(manifest.min_agent_version, "min_agent_version") > _version_key(
            agent_version, "agent"
        ):
            raise BundleError(
                "agent_version",
                f"min_agent_version {manifest.min_agent_version} is above this agent's {agent_version}",
            )
        _check_files(bundle)
    except BundleError as exc:
        raise BundleError(exc.check, exc.detail, path=str(path)) from None
    return VerifiedBundle(
        path=path,
        archive=bundle.archive,
        manifest=manifest,
        files=bundle.files,
        signers=signers,
        unknown_signers=unknown,
        threshold=trust.threshold,
    )


# ---------------------------------------------------------------------------------------------------
# the store of kept bundles


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBundle:
    """One kept bundle, as ``guardctl bundle list`` shows it."""

    version: int
    created: datetime
    expires: datetime | None
    signers: tuple[str, ...]  # key ids of the signatures it carries (verified when it was added)
    active: bool
    path: Path

    def to_json(self) -> dict[str, object]:
        """Return the entry as JSON."""
        return {
            "version": self.version,
            "created": _iso(self.created),
            "expires": _iso(self.expires) if self.expires is not None else None,
            "signers": list(self.signers),
            "active": self.active,
            "path": str(self.path),
        }


@dataclass(frozen=True, slots=True)
class BundleStore:
    """Verified bundles kept as ``<root>/<version>.bundle``; the active version in ``active.json``.

    Only the ``keep`` highest versions and the active one are kept. Every write is atomic
    (temporary file, fsync, rename).
    """

    root: Path
    keep: int = 5
    limits: Limits = field(default=DEFAULT_LIMITS)

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise BundleError("store", f"keep: expected an integer >= 1, got {self.keep}")

    @property
    def _active_path(self) -> Path:
        return self.root / "active.json"

    def _path(self, version: int) -> Path:
        return self.root / f"{version}.bundle"

    def versions(self) -> tuple[int, ...]:
        """Return the kept versions, ascending."""
        try:
            names = [p.name for p in self.root.iterdir()] if self.root.is_dir() else []
        except OSError as exc:
            raise BundleError("store", f"{self.root}: cannot list: {exc.strerror}") from exc
        found = (n.removesuffix(".bundle") for n in names if n.endswith(".bundle"))
        return tuple(sorted(int(v) for v in found if v.isdigit() and not v.startswith("0")))

    def add(self, verified: VerifiedBundle) -> Path:
        """Keep the exact bytes that were verified as ``<version>.bundle``; prune; return its path."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BundleError("store", f"{self.root}: cannot create: {exc.strerror}") from exc
        target = self._path(verified.version)
        if target.exists():
            if target.read_bytes() != verified.archive:
                raise BundleError(
                    "store", f"{target}: version {verified.version} is kept already, with other content"
                )
        else:
            _write_atomically(target, verified.archive, "store")
        self.prune()
        return target

    def get(self, version: int) -> Path:
        """Return the path of a kept version."""
        path = self._path(version)
        if not path.is_file():
            kept = ", ".join(map(str, self.versions())) or "none"
            raise BundleError("store", f"{self.root}: version {version} is not kept (kept: {kept})")
        return path

    def active(self) -> int | None:
        """Return the active version, or None when none was activated."""
        try:
            raw = self._active_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BundleError("store", f"{self._active_path}: cannot read: {exc.strerror}") from exc
        try:
            version = json.loads(raw)["version"]
        except (ValueError, TypeError, KeyError):
            raise BundleError("store", f"{self._active_path}: corrupt") from None
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleError("store", f"{self._active_path}: version: expected an integer >= 1")
        return version

    def activate(self, version: int) -> None:
        """Record ``version`` (which must be kept) as the active one; prune."""
        self.get(version)
        _write_atomically(self._active_path, canonical_json({"version": version}) + b"\n", "store")
        self.prune()

    def prune(self) -> tuple[int, ...]:
        """Remove kept versions beyond the ``keep`` highest, never the active one; return them."""
        versions = self.versions()
        active = self.active()
        keep = set(versions[-self.keep :]) | ({active} if active is not None else set())
        removed = tuple(v for v in versions if v not in keep)
        for v in removed:
            try:
                self._path(v).unlink(missing_ok=True)
            except OSError as exc:
                raise BundleError("store", f"{self._path(v)}: cannot remove: {exc.strerror}") from exc
        return removed

    def list(self) -> tuple[StoredBundle, ...]:
        """Return every kept bundle, ascending by version."""
        active = self.active()
        out = []
        for version in self.versions():
            path = self._path(version)
            bundle = read_bundle(path, limits=self.limits)
            if bundle.manifest.version != version:
                raise BundleError("store", f"{path}: holds version {bundle.manifest.version}, not {version}")
            out.append(
                StoredBundle(
                    version=bundle.manifest.version,
                    created=bundle.manifest.created,
                    expires=bundle.manifest.expires,
                    signers=tuple(sorted(bundle.signatures)),
                    active=version == active,
                    path=path,
                )
            )
        return tuple(out)
