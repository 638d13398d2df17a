"""The kernel matrix (kernels.toml) and known kernel differences (skip.toml)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path


class MatrixError(Exception):
    """kernels.toml or skip.toml is invalid."""


@dataclass(frozen=True)
class Kernel:
    """One kernel of the matrix."""

    id: str
    release: str
    suite: str
    image: str
    version: str
    lsm: str
    cmdline: str
    memory_mb: int
    cpus: int
    boot_timeout_s: float
    run_timeout_s: float

    @property
    def full_cmdline(self) -> str:
        """The kernel command line: defaults plus lsm=."""
        return f"{self.cmdline} lsm={self.lsm}"


@dataclass(frozen=True)
class SkipRule:
    """A (test regex, kernel regex, reason) row of skip.toml."""

    test: str
    kernel: str
    reason: str

    def applies(self, node_id: str, kernel_id: str) -> bool:
        """True when this row skips ``node_id`` on ``kernel_id``."""
        return re.search(self.kernel, kernel_id) is not None and re.search(self.test, node_id) is not None


_KERNEL_KEYS = {"id", "release", "suite", "image", "version", "lsm"}
_DEFAULT_KEYS = {"cmdline", "memory_mb", "cpus", "boot_timeout_s", "run_timeout_s"}


def _load(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise MatrixError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{path}: invalid TOML: {exc}") from exc


def load_kernels(path: Path) -> list[Kernel]:
    """Read kernels.toml; every error names the file, the entry and the key."""
    data = _load(path)
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - _DEFAULT_KEYS or _DEFAULT_KEYS - set(defaults):
        raise MatrixError(f"{path}: [defaults] must have exactly {sorted(_DEFAULT_KEYS)}")
    kernels: list[Kernel] = []
    entries = data.get("kernel", [])
    if not isinstance(entries, list) or not entries:
        raise MatrixError(f"{path}: no [[kernel]] entries")
    for n, entry in enumerate(entries, 1):
        where = f"{path}: [[kernel]] #{n}"
        missing, extra = _KERNEL_KEYS - set(entry), set(entry) - _KERNEL_KEYS - _DEFAULT_KEYS
        if missing or extra:
            raise MatrixError(f"{where}: missing {sorted(missing)}, unknown {sorted(extra)}")
        if not str(entry["image"]).startswith("linux-image-"):
            raise MatrixError(f"{where}: image must be a linux-image-* package, got {entry['image']!r}")
        merged = {**defaults, **entry}
        kernels.append(
            Kernel(
                id=str(merged["id"]),
                release=str(merged["release"]),
                suite=str(merged["suite"]),
                image=str(merged["image"]),
                version=str(merged["version"]),
                lsm=str(merged["lsm"]),
                cmdline=str(merged["cmdline"]),
                memory_mb=int(merged["memory_mb"]),
                cpus=int(merged["cpus"]),
                boot_timeout_s=float(merged["boot_timeout_s"]),
                run_timeout_s=float(merged["run_timeout_s"]),
            )
        )
    ids = [k.id for k in kernels]
    if len(set(ids)) != len(ids):
        raise MatrixError(f"{path}: duplicate kernel ids in {ids}")
    return kernels


def load_skips(path: Path) -> list[SkipRule]:
    """Read skip.toml (absent or empty means no rows)."""
    if not path.exists():
        return []
    rows: list[SkipRule] = []
    entries = _load(path).get("skip", [])
    if not isinstance(entries, list):
        raise MatrixError(f"{path}: skip must be [[skip]] tables")
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) != {"test", "kernel", "reason"}:
            raise MatrixError(f"{path}: [[skip]] #{n}: needs exactly test, kernel and reason")
        for key in ("test", "kernel"):
            try:
                re.compile(entry[key])
            except re.error as exc:
                raise MatrixError(f"{path}: [[skip]] #{n}: {key}: bad regex: {exc}") from exc
        rows.append(SkipRule(entry["test"], entry["kernel"], entry["reason"]))
    return rows
