"""Build and sign bundles: collect and compile a policy directory, add signatures over the manifest."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from guard.bundles.archive import (
    DEFAULT_LIMITS,
    Bundle,
    Limits,
    check_files,
    pack_archive,
    read_bundle,
    write_atomically,
)
from guard.bundles.manifest import (
    MANIFEST_NAME,
    MAX_VERSION,
    POLICY_SUFFIXES,
    RULE_SUFFIXES,
    FileEntry,
    Manifest,
    check_name,
    iso_time,
    version_key,
)
from guard.errors import BundleError, PolicyError
from guard.plan.compiler import CompiledPolicy, compile_policy
from guard.policy.loader import load_policy
from guard.signing import Signer

__all__ = ["build_bundle", "compile_files", "sign_bundle", "write_files"]


def _collect(policy_dir: Path, limits: Limits) -> dict[str, bytes]:
    """Return the policy files under ``policy_dir`` by relative path, under ``limits``."""
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
        check_name(rel, "policy file")
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise BundleError("compile", f"{p}: cannot read: {exc.strerror}") from exc
        if len(data) > limits.file_bytes:
            raise BundleError("size", f"{p}: {len(data)} bytes, above the limit {limits.file_bytes}")
        files[rel] = data
    return files


def write_files(files: Mapping[str, bytes], directory: Path) -> None:
    """Write policy files under ``directory``; never through a link nor over an existing file."""
    for rel, data in sorted(files.items()):
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)


def compile_files(files: Mapping[str, bytes], shown_as: str) -> CompiledPolicy:
    """Load and compile exactly these files (written to a private directory); name them as ``shown_as``."""
    try:
        with tempfile.TemporaryDirectory(prefix="guard-bundle-") as tmp:
            write_files(files, Path(tmp))
            try:
                return compile_policy(load_policy(Path(tmp)))
            except PolicyError as exc:
                message = str(exc).replace(tmp + os.sep, shown_as).replace(tmp, shown_as.rstrip("/"))
                raise BundleError("compile", message.splitlines()[0]) from None
    except OSError as exc:  # names are checked when read: what is left is the disk (full, read-only)
        raise BundleError(
            "compile", f"{shown_as}: cannot write the policy files to compile them: {exc.strerror}"
        ) from exc


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
    if isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise BundleError("manifest", f"version: expected an integer >= 1, got {version}")
    created = now.astimezone(UTC).replace(microsecond=0)
    if expires is not None and expires.astimezone(UTC) <= created:
        raise BundleError(
            "manifest", f"expires: {iso_time(expires)} is not after created {iso_time(created)}"
        )
    version_key(min_agent_version, "min_agent_version")
    files = _collect(policy_dir, limits)
    compile_files(files, f"{policy_dir}/")
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
    archive = pack_archive(manifest_bytes, files, {})
    if len(archive) > limits.archive_bytes:
        raise BundleError("size", f"archive larger than {limits.archive_bytes} bytes", path=str(output))
    write_atomically(output, archive, "write")
    return Bundle(
        archive=archive, manifest_bytes=manifest_bytes, manifest=manifest, files=files, signatures={}
    )


def sign_bundle(path: Path, signers: Sequence[Signer], *, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Add each signer's signature over the manifest (replacing its earlier one); rewrite atomically.

    The archive must be well formed and its files must match the manifest: nothing else is signed.
    """
    bundle = read_bundle(path, limits=limits)
    try:
        check_files(bundle)
    except BundleError as exc:
        raise BundleError(exc.check, exc.detail, path=str(path)) from None
    signatures = dict(bundle.signatures)
    for signer in signers:
        signatures[signer.key_id] = signer.sign(bundle.manifest_bytes)
    archive = pack_archive(bundle.manifest_bytes, bundle.files, signatures)
    if len(archive) > limits.archive_bytes:
        raise BundleError("size", f"archive larger than {limits.archive_bytes} bytes", path=str(path))
    write_atomically(path, archive, "write")
    return Bundle(
        archive=archive,
        manifest_bytes=bundle.manifest_bytes,
        manifest=bundle.manifest,
        files=bundle.files,
        signatures=signatures,
    )
