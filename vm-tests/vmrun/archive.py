"""Fetch kernel packages from Debian's archive with a private apt configuration.

Everything apt writes (sources list, lists, package cache) lives under the project's cache dir; the
host's /etc/apt is only read: its apt.conf settings apply as usual, and its Debian sources tell
which archive URIs this machine uses, so no host name is hard-coded here.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
_LISTS_MAX_AGE_S = 6 * 3600


class ArchiveError(Exception):
    """A package could not be found or fetched."""


def _newer(a: str, b: str) -> bool:
    """True when Debian version ``a`` sorts after ``b`` (dpkg's own comparison)."""
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b], check=False).returncode == 0


def _deb822_sources(text: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in para.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split():
                out.append((uri, fields.get("suites", "").split()))
    return out


def _one_line_sources(text: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            out.append((words[1], [words[2]]))
    return out


def host_archive_uris(etc_apt: Path = Path("/etc/apt")) -> tuple[str, str]:
    """Return (archive URI, security URI) of Debian as the host's apt sources name them."""
    sources: list[tuple[str, list[str]]] = []
    for f in sorted(etc_apt.glob("sources.list.d/*.sources")):
        sources += _deb822_sources(f.read_text())
    for f in [etc_apt / "sources.list", *sorted(etc_apt.glob("sources.list.d/*.list"))]:
        if f.exists():
            sources += _one_line_sources(f.read_text())
    main = next(
        (u for u, suites in sources if any(re.fullmatch(r"[a-z]+(-updates)?", s) for s in suites)), None
    )
    security = next((u for u, suites in sources if any(s.endswith("-security") for s in suites)), None)
    if main is None:
        raise ArchiveError(f"no Debian archive among the apt sources in {etc_apt}")
    if security is None:
        security = main.rstrip("/") + "-security"
    return main.rstrip("/"), security.rstrip("/")


@dataclass(frozen=True)
class Fetched:
    """Package files fetched for one kernel, plus dependencies that could not be had."""

    debs: tuple[Path, ...]
    missing: tuple[str, ...]


class PrivateApt:
    """apt-get/apt-cache confined to a state directory of our own."""

    def __init__(self, root: Path, suites: list[str]) -> None:
        self.root = root
        self.suites = sorted(set(suites))
        self.debs = root / "debs"

    def _opts(self) -> list[str]:
        r = self.root
        return [
            "-o",
            f"Dir::Etc::SourceList={r}/sources.list",
            "-o",
            f"Dir::Etc::SourceParts={r}/sources.list.d",
            "-o",
            f"Dir::State={r}/state",
            "-o",
            f"Dir::State::status={r}/state/status",
            "-o",
            f"Dir::Cache={r}/cache",
            "-o",
            "APT::Architecture=amd64",
            "-o",
            "APT::Sandbox::User=root",
            "-o",
            "Debug::NoLocking=1",
        ]

    def _write_sources(self) -> bool:
        main, security = host_archive_uris()
        lines = []
        for suite in self.suites:
            uri = security if suite.endswith("-security") else main
            lines.append(f"deb [signed-by={KEYRING}] {uri} {suite} main")
        text = "\n".join(lines) + "\n"
        path = self.root / "sources.list"
        changed = not path.exists() or path.read_text() != text
        if changed:
            path.write_text(text)
        return changed

    def update(self) -> None:
        """Refresh the package lists when the suites changed or the lists are old."""
        for d in ("sources.list.d", "state/lists/partial", "cache/archives/partial"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "state/status").touch()
        self.debs.mkdir(exist_ok=True)
        stamp = self.root / "state/updated"
        changed = self._write_sources()
        if not changed and stamp.exists() and time.time() - stamp.stat().st_mtime < _LISTS_MAX_AGE_S:
            return
        proc = subprocess.run(["apt-get", *self._opts(), "-q", "update"], capture_output=True, text=True)
        errors = [
            ln for ln in proc.stdout.splitlines() + proc.stderr.splitlines() if ln.startswith(("E:", "Err"))
        ]
        if proc.returncode != 0 or errors:
            raise ArchiveError(
                "apt-get update (private config) failed: " + "; ".join(errors or [proc.stderr[-300:]])
            )
        stamp.touch()

    def show(self, package: str) -> dict[str, str] | None:
        """Return the newest stanza of ``package`` (apt-cache show), or None if the archive lacks it."""
        proc = subprocess.run(["apt-cache", *self._opts(), "show", package], capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.strip():
            return None
        stanzas = []
        for para in proc.stdout.strip().split("\n\n"):
            fields: dict[str, str] = {}
            for line in para.splitlines():
                if line[:1].isspace() or ":" not in line:
                    continue
                k, _, v = line.partition(":")
                fields[k] = v.strip()
            stanzas.append(fields)
        return stanzas[0] if stanzas else None

    def versions(self, package: str) -> list[str]:
        """All versions of ``package`` the private lists know."""
        proc = subprocess.run(
            ["apt-cache", *self._opts(), "madison", package], capture_output=True, text=True
        )
        return [ln.split("|")[1].strip() for ln in proc.stdout.splitlines() if ln.count("|") >= 2]

    def download(self, package: str, version: str) -> Path:
        """Download ``package=version`` into the cache (once) and return the .deb path."""
        safe_version = version.replace(":", "%3a")
        existing = list(self.debs.glob(f"{package}_{safe_version}_*.deb"))
        if existing:
            return existing[0]
        proc = subprocess.run(
            ["apt-get", *self._opts(), "-q", "download", f"{package}={version}"],
            capture_output=True,
            text=True,
            cwd=self.debs,
        )
        found = list(self.debs.glob(f"{package}_{safe_version}_*.deb"))
        if proc.returncode != 0 or not found:
            raise ArchiveError(f"apt-get download {package}={version} failed: {proc.stderr.strip()[-300:]}")
        return found[0]

    def newest_in_series(self, series: str, suite: str) -> tuple[str, str] | None:
        """The newest generic amd64 image of a kernel series (``6.1``) in ``suite``: (package, version)."""
        proc = subprocess.run(["apt-cache", *self._opts(), "pkgnames", f"linux-image-{series}"],
                              capture_output=True, text=True)  # fmt: skip
        pattern = re.compile(rf"linux-image-{re.escape(series)}[.-][0-9][0-9a-z.+~-]*-amd64")
        best: tuple[str, str] | None = None
        for name in sorted(proc.stdout.split()):
            if not pattern.fullmatch(name):
                continue
            madison = subprocess.run(
                ["apt-cache", *self._opts(), "madison", name], capture_output=True, text=True
            )
            for line in madison.stdout.splitlines():
                parts = [p.strip() for p in line.split("|")]
                if (
                    len(parts) >= 3
                    and f" {suite}/" in f" {parts[2]}"
                    and (best is None or _newer(parts[1], best[1]))
                ):
                    best = (name, parts[1])
        return best

    def fetch_kernel(self, image: str, version: str, abi: str) -> Fetched:
        """Download the image and every dependency named after the same ABI (split kernels)."""
        if version not in self.versions(image):
            raise ArchiveError(f"{image}={version} is not in the archive")
        debs: list[Path] = []
        missing: list[str] = []
        queue, seen = [image], set()
        while queue:
            package = queue.pop(0)
            if package in seen:
                continue
            seen.add(package)
            if package != image and version not in self.versions(package):
                missing.append(package)
                continue
            debs.append(self.download(package, version))
            stanza = self.show(f"{package}={version}") or {}
            for alternative in stanza.get("Depends", "").split(","):
                name = alternative.split("|")[0].strip().split(" ")[0]
                if abi in name:
                    queue.append(name)
        return Fetched(tuple(debs), tuple(missing))
