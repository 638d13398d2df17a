"""The store of kept bundles: verified archives by version, and the active one (for rollback)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from guard.audit.record import canonical_json
from guard.bundles.archive import DEFAULT_LIMITS, Limits, read_bundle, write_atomically
from guard.bundles.manifest import iso_time
from guard.bundles.verify import VerifiedBundle
from guard.errors import BundleError

__all__ = ["BundleStore", "StoredBundle"]


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
            "created": iso_time(self.created),
            "expires": iso_time(self.expires) if self.expires is not None else None,
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
        try:
            kept = target.read_bytes() if target.exists() else None
        except OSError as exc:
            raise BundleError("store", f"{target}: cannot read: {exc.strerror}") from exc
        if kept is None:
            write_atomically(target, verified.archive, "store")
        elif kept != verified.archive:
            raise BundleError(
                "store", f"{target}: version {verified.version} is kept already, with other content"
            )
        self.prune()
        return target

    def get(self, version: int) -> Path:
        """Return the path of a kept version."""
        path = self._path(version)
        try:
            present = path.is_file()
        except OSError as exc:
            raise BundleError("store", f"{path}: cannot read: {exc.strerror}") from exc
        if not present:
            kept = ", ".join(map(str, self.versions())) or "none"
            raise BundleError("store", f"{self.root}: version {version} is not kept (kept: {kept})")
        return path

    def read(self, version: int) -> bytes:
        """Return the bytes of a kept version."""
        path = self.get(version)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BundleError("store", f"{path}: cannot read: {exc.strerror}") from exc

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
        write_atomically(self._active_path, canonical_json({"version": version}) + b"\n", "store")
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
