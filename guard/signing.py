"""Ed25519 keys, key ids and detached signatures (cryptography), shared by audit checkpoints and bundles.

A key id is the first 16 hex digits of the SHA-256 of the raw 32-byte public key. Private keys are
PEM (PKCS#8, unencrypted, file mode 0600); public keys are PEM (SubjectPublicKeyInfo).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from guard.errors import SigningKeyError

__all__ = ["Signer", "Verifier", "generate_keypair", "key_id_of", "load_signer", "load_verifier"]


def key_id_of(public: Ed25519PublicKey) -> str:
    """Return the key id: 16 hex digits of SHA-256 over the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """A private key that signs."""

    key: Ed25519PrivateKey
    key_id: str

    def sign(self, data: bytes) -> str:
        """Return the hex Ed25519 signature of ``data``."""
        return self.key.sign(data).hex()


@dataclass(frozen=True)
class Verifier:
    """A public key that checks signatures."""

    key: Ed25519PublicKey
    key_id: str

    def verify(self, data: bytes, signature_hex: str) -> bool:
        """Return whether ``signature_hex`` is this key's signature of ``data``."""
        try:
            self.key.verify(bytes.fromhex(signature_hex), data)
        except (InvalidSignature, ValueError):
            return False
        return True


def generate_keypair(directory: Path, name: str) -> tuple[Path, Path, str]:
    """Write ``name.key`` (0600) and ``name.pub`` into ``directory``; return both paths and the key id."""
    directory.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    key_path, pub_path = directory / f"{name}.key", directory / f"{name}.pub"
    if key_path.exists():
        raise SigningKeyError(f"{key_path}: exists already; not overwriting a key")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = private.public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pub_path.write_bytes(public.public_bytes(serialization.Encoding.PEM, spki))
    return key_path, pub_path, key_id_of(public)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read key: {exc.strerror}") from exc


def load_signer(path: Path) -> Signer:
    """Load an Ed25519 private key."""
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not a PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return Signer(key, key_id_of(key.public_key()))


def load_verifier(path: Path) -> Verifier:
    """Load an Ed25519 public key (or derive it from a private key file)."""
    data = _read(path)
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise SigningKeyError(f"{path}: not an Ed25519 key")
            public: object = private.public_key()
        else:
            public = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a PEM key ({exc})") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return Verifier(public, key_id_of(public))
