"""Bundle verification (TUF's model): a trust store with a threshold, and every check in order.

:func:`verify_bundle` accepts a bundle only when enough trusted keys signed the manifest
(threshold), it has not expired, its version is above the active one (rollback and replay
protection) and every file matches its hash; otherwise it raises
:class:`~guard.errors.BundleError` naming the first failed check (:data:`CHECKS`). Only then is
its policy handed out, as a :class:`VerifiedBundle`.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from guard.bundles.archive import DEFAULT_LIMITS, Bundle, Limits, check_files, read_bundle
from guard.bundles.build import compile_files, write_files
from guard.bundles.manifest import POLICY_DIR, SIGNATURE_DIR, Manifest, iso_time, version_key
from guard.errors import BundleError, SigningKeyError
from guard.plan.compiler import CompiledPolicy
from guard.signing import Verifier, load_verifier

__all__ = ["CHECKS", "DEFAULT_TRUST_DIR", "TrustStore", "VerifiedBundle", "load_trust_store", "verify_bundle"]

DEFAULT_TRUST_DIR: Final = "/etc/guard/trust"
#: every check a BundleError can name, and what it means
CHECKS: Final[Mapping[str, str]] = {
    "archive": "not a readable gzip-compressed tar: corrupt, truncated, trailing data",
    "size": "the archive, a member, the manifest or the whole exceeds its limit (bomb)",
    "entry": "a member that is not a regular file with a relative, normalised, unique, expected name "
    "the store can write (components <= 255 bytes, names <= 1024 bytes and 32 components)",
    "manifest": "manifest.json missing, not canonical JSON, or a field missing or malformed",
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
    "trust": "the trust store is unusable (no keys, a private key in it, bad trust.toml, threshold above "
    "the key count)",
    "store": "the store of kept bundles cannot be read or written, or lacks a version",
    "write": "the policy files cannot be written out",
    "io": "an operating-system error no other check covers (a full disk, an unreadable file), named",
}


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Trusted public keys by key id, and how many distinct ones must sign."""

    verifiers: Mapping[str, Verifier]
    threshold: int = 1


def load_trust_store(directory: Path) -> TrustStore:
    """Load ``*.pub`` keys and ``trust.toml`` (``threshold = N``, default 1) from ``directory``.

    A private key anywhere in the directory (a ``*.key`` file, or a ``*.pub`` holding one) makes the
    trust store unusable: it holds public keys only, and a signing key on the host is a leak.
    """
    try:
        return _load_trust_store(directory)
    except OSError as exc:
        raise BundleError("trust", f"{exc.filename or directory}: cannot read: {exc.strerror}") from exc


def _load_trust_store(directory: Path) -> TrustStore:
    if not directory.is_dir():
        raise BundleError("trust", f"{directory}: no such trust store directory")
    private = sorted(directory.glob("*.key"))
    if private:
        raise BundleError(
            "trust", f"{private[0]}: a private key file in the trust store (public *.pub keys only)"
        )
    verifiers: dict[str, Verifier] = {}
    for pub in sorted(directory.glob("*.pub")):
        if b"PRIVATE KEY" in pub.read_bytes():
            raise BundleError(
                "trust",
                f"{pub}: holds a private key, not a public key (never trusted; keep it off this host)",
            )
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
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
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
            write_files(self.files, directory)
        except OSError as exc:
            raise BundleError("write", f"{directory}: cannot write policy files: {exc.strerror}") from exc
        return directory

    def compile(self) -> CompiledPolicy:
        """Load and compile the policy files; raise BundleError("compile") naming the rule at fault."""
        try:
            return compile_files(self.files, POLICY_DIR)
        except BundleError as exc:
            raise BundleError(exc.check, exc.detail, path=str(self.path)) from None

    def to_json(self) -> dict[str, object]:
        """Return the summary ``guardctl bundle verify --json`` prints."""
        return {
            "file": str(self.path),
            "version": self.version,
            "created": iso_time(self.manifest.created),
            "expires": iso_time(self.manifest.expires) if self.manifest.expires is not None else None,
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
            raise BundleError("expired", f"expires {iso_time(manifest.expires)}, now is {iso_time(now)}")
        if active_version is not None and not allow_older and manifest.version <= active_version:
            why = "replay of the active version" if manifest.version == active_version else "downgrade"
            raise BundleError(
                "downgrade",
                f"version {manifest.version} is not above the active version {active_version} ({why})",
            )
        if version_key(manifest.min_agent_version, "min_agent_version") > version_key(
            agent_version, "agent", strict=False
        ):
            raise BundleError(
                "agent_version",
                f"min_agent_version {manifest.min_agent_version} is above this agent's {agent_version}",
            )
        check_files(bundle)
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
