"""The ECS ``host`` object every event and alert carries: read once, its addresses on demand.

:class:`HostInfo` reads ``/etc/machine-id`` (``host.id``), ``uname`` (``host.name`` and
``host.hostname`` from the node name, ``host.architecture``, ``host.os.kernel``), os-release
(``/etc/os-release``, else ``/usr/lib/os-release``: ``host.os.name``, ``version``, ``full``,
``platform``, ``family``) and the interfaces' non-loopback addresses (``host.ip``) when built;
:meth:`HostInfo.refresh` reads the addresses again. A file that is missing or unreadable leaves
its fields out: building one never raises. ``host.os.type`` is always ``"linux"``.

``host.os.family`` is the distribution family as Elastic's agents name it (``debian``,
``redhat``, ``suse``, ...), from ``ID`` then ``ID_LIKE``; else ``ID_LIKE``'s first word, else ``ID``.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import shlex
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

import psutil

__all__ = ["HostInfo", "Uname", "host_fields", "os_release"]


class Uname(NamedTuple):
    """The parts of ``uname(2)`` the host object uses."""

    nodename: str
    release: str
    machine: str


class _Address(Protocol):
    family: int
    address: str


#: os-release ids (ID, then ID_LIKE) -> the family Elastic's agents report.
_FAMILIES: Final[Mapping[str, str]] = {
    "debian": "debian",
    "ubuntu": "debian",
    "raspbian": "debian",
    "rhel": "redhat",
    "centos": "redhat",
    "fedora": "redhat",
    "rocky": "redhat",
    "almalinux": "redhat",
    "ol": "redhat",
    "amzn": "redhat",
    "suse": "suse",
    "sles": "suse",
    "opensuse": "suse",
    "opensuse-leap": "suse",
    "opensuse-tumbleweed": "suse",
    "arch": "arch",
    "archlinux": "arch",
    "gentoo": "gentoo",
    "alpine": "alpine",
}
_MACHINE_IDS: Final = ("etc/machine-id", "var/lib/dbus/machine-id")
_OS_RELEASE: Final = ("etc/os-release", "usr/lib/os-release")


def _uname() -> Uname:
    u = os.uname()
    return Uname(u.nodename, u.release, u.machine)


def _read(root: Path, names: Sequence[str]) -> str | None:
    """Return the text of the first of ``names`` under ``root`` that can be read, else None."""
    for name in names:
        try:
            return (root / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    return None


def os_release(text: str) -> dict[str, str]:
    """Parse os-release text: ``KEY=value`` lines, shell-quoted values, comments and junk skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or not key.isidentifier() or key.startswith("#"):
            continue
        try:
            words = shlex.split(raw, comments=False, posix=True)
        except ValueError:
            continue
        out[key] = " ".join(words)
    return out


def _family(release: Mapping[str, str]) -> str | None:
    ids = [release.get("ID", ""), *release.get("ID_LIKE", "").split()]
    for name in ids:
        if name.lower() in _FAMILIES:
            return _FAMILIES[name.lower()]
    like = release.get("ID_LIKE", "").split()
    return like[0] if like else (release.get("ID") or None)


def _addresses(interfaces: Mapping[str, Sequence[_Address]]) -> list[str]:
    """Return every non-loopback IPv4/IPv6 address, without an IPv6 zone, once, in interface order."""
    out: list[str] = []
    for addrs in interfaces.values():
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(a.address.partition("%")[0])
            except ValueError:
                continue
            text = str(ip)
            if not ip.is_loopback and text not in out:
                out.append(text)
    return out


class HostInfo:
    """The host object, read once; :meth:`refresh` reads the addresses again."""

    def __init__(
        self,
        root: Path = Path("/"),
        *,
        uname: Callable[[], Uname] = _uname,
        interfaces: Callable[[], Mapping[str, Sequence[_Address]]] = psutil.net_if_addrs,
    ) -> None:
        self._interfaces = interfaces
        host: dict[str, Any] = {}
        machine_id = (_read(root, _MACHINE_IDS) or "").strip()
        if machine_id:
            host["id"] = machine_id
        os_obj: dict[str, str] = {"type": "linux"}
        try:
            u: Uname | None = uname()
        except OSError:
            u = None
        if u is not None:
            if u.nodename:
                host["name"] = host["hostname"] = u.nodename
            if u.machine:
                host["architecture"] = u.machine
            if u.release:
                os_obj["kernel"] = u.release
        release = os_release(_read(root, _OS_RELEASE) or "")
        for key, field in (("NAME", "name"), ("PRETTY_NAME", "full"), ("ID", "platform")):
            if release.get(key):
                os_obj[field] = release[key]
        version = release.get("VERSION_ID") or release.get("VERSION")
        if version:
            os_obj["version"] = version
        family = _family(release)
        if family:
            os_obj["family"] = family
        host["os"] = os_obj
        self._host = host
        self.refresh()

    def refresh(self) -> None:
        """Read the interfaces' addresses again (``host.ip``; left out when there are none)."""
        try:
            ips = _addresses(self._interfaces())
        except (OSError, RuntimeError):
            ips = []
        if ips:
            self._host["ip"] = ips
        else:
            self._host.pop("ip", None)

    def fields(self) -> dict[str, Any]:
        """Return the ECS ``host`` object (a copy: the caller may change it)."""
        return copy.deepcopy(self._host)


def host_fields(root: Path = Path("/")) -> dict[str, Any]:
    """Return the ECS ``host`` object of the host whose root directory is ``root``."""
    return HostInfo(root).fields()
