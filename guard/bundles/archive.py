"""The bundle archive: read in memory under hard limits, checked against its manifest, written.

An archive is read whole into memory, under limits checked while it is read (:class:`Limits`),
and never extracted by ``tarfile``: every member must be a regular file with a relative,
normalised, unique name. :func:`read_bundle` checks the structure, not the trust
(:func:`~guard.bundles.verify.verify_bundle` does); :func:`pack_archive` writes the deterministic
archive ``guardctl bundle build`` and ``sign`` produce, and :func:`write_atomically` every file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from guard.audit.record import canonical_json
from guard.bundles.manifest import (
    MANIFEST_NAME,
    POLICY_DIR,
    SIGNATURE_DIR,
    Manifest,
    check_name,
    check_tree,
    quote_name,
)
from guard.errors import BundleError

__all__ = [
    "DEFAULT_LIMITS",
    "Bundle",
    "Limits",
    "check_files",
    "pack_archive",
    "read_bundle",
    "write_atomically",
]

_KEY_ID = re.compile(r"[0-9a-f]{16}")
_SIG_HEX = re.compile(r"[0-9a-f]{128}")


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
        try:
            data = f.read(min(info.st_size, limits.archive_bytes) + 1)
        except OSError as exc:
            raise BundleError("archive", f"cannot read: {exc.strerror}", path=str(path)) from exc
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
                check_name(name)
                if member.issym() or member.islnk():
                    kind = "symbolic" if member.issym() else "hard"
                    raise BundleError("entry", f"entry {quote_name(name)}: a {kind} link")
                if member.isdev():
                    raise BundleError("entry", f"entry {quote_name(name)}: a device or fifo")
                if not member.isreg() or member.issparse():
                    raise BundleError("entry", f"entry {quote_name(name)}: not a regular file")
                if name in members:
                    raise BundleError("entry", f"entry {quote_name(name)}: appears twice")
                if name == MANIFEST_NAME:
                    cap = limits.manifest_bytes
                elif name.startswith(SIGNATURE_DIR):
                    cap = limits.signature_bytes
                else:
                    cap = limits.file_bytes
                if member.size > cap:
                    raise BundleError(
                        "size", f"entry {quote_name(name)}: {member.size} bytes, above the limit {cap}"
                    )
                extracted = tar.extractfile(member)
                data = extracted.read() if extracted is not None else b""
                if len(data) != member.size:
                    raise BundleError(
                        "archive", f"entry {quote_name(name)}: truncated ({len(data)} of {member.size} bytes)"
                    )
                members[name] = data
            end = tar.offset
    except tarfile.TarError as exc:
        raise BundleError("archive", f"corrupt tar ({exc})".splitlines()[0]) from None
    if not members:
        raise BundleError("archive", "an empty tar archive")
    check_tree(members)
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
                    "entry",
                    f"entry {quote_name(name)}: not {MANIFEST_NAME}, {POLICY_DIR}... or {SIGNATURE_DIR}...",
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
        raise BundleError(
            "entry", f"entry {quote_name(name)}: expected {SIGNATURE_DIR}<16 hex digit key id>.sig"
        )
    key_id = stem[:-4]
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError("signature", f"{name}: not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"key_id", "sig"}:
        raise BundleError("signature", f"{name}: expected exactly key_id and sig")
    if doc["key_id"] != key_id:
        raise BundleError(
            "signature", f"{name}: key_id {quote_name(str(doc['key_id']))} differs from the file name"
        )
    sig = doc["sig"]
    if not isinstance(sig, str) or not _SIG_HEX.fullmatch(sig):
        raise BundleError("signature", f"{name}: sig: expected 128 lowercase hex digits")
    return key_id, sig


def check_files(bundle: Bundle) -> None:
    """Every listed file present, none unlisted, each with its SHA-256 and size."""
    listed, present = bundle.manifest.files, bundle.files
    for path in sorted(listed):
        if path not in present:
            raise BundleError(
                "missing_file", f"{POLICY_DIR}{quote_name(path)}: listed in the manifest, not in the archive"
            )
    for path in sorted(present):
        if path not in listed:
            raise BundleError(
                "extra_file", f"{POLICY_DIR}{quote_name(path)}: in the archive, not in the manifest"
            )
    for path in sorted(listed):
        data, entry = present[path], listed[path]
        if len(data) != entry.size:
            raise BundleError(
                "hash", f"{POLICY_DIR}{quote_name(path)}: {len(data)} bytes, the manifest says {entry.size}"
            )
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise BundleError("hash", f"{POLICY_DIR}{quote_name(path)}: SHA-256 differs from the manifest")


def pack_archive(manifest_bytes: bytes, files: Mapping[str, bytes], signatures: Mapping[str, str]) -> bytes:
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


def write_atomically(path: Path, data: bytes, check: str) -> None:
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
