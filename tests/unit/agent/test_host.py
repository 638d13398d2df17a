"""guard.agent.host: the ECS host object, from a root directory, uname and the interfaces."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from guard.agent.host import HostInfo, Uname, host_fields, os_release

UNAME = Uname("web-1", "6.8.0-45-generic", "x86_64")
UBUNTU = """\
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
ID=ubuntu
ID_LIKE=debian
# a comment
not a line
"""


def addr(family: int, address: str) -> SimpleNamespace:
    return SimpleNamespace(family=family, address=address)


INTERFACES = {
    "lo": [addr(socket.AF_INET, "127.0.0.1"), addr(socket.AF_INET6, "::1")],
    "eth0": [
        addr(socket.AF_INET, "10.1.2.3"),
        addr(socket.AF_INET6, "fe80::1%eth0"),
        addr(socket.AF_PACKET, "52:54:00:12:34:56"),  # a MAC, not an address
    ],
    "eth1": [addr(socket.AF_INET, "10.1.2.3"), addr(socket.AF_INET6, "2001:db8::5")],
}


def root_with(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        f = tmp_path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return tmp_path


def info(root: Path, interfaces=INTERFACES, uname=lambda: UNAME) -> HostInfo:
    return HostInfo(root, uname=uname, interfaces=lambda: interfaces)


def test_full_host_object(tmp_path: Path) -> None:
    root = root_with(tmp_path, {"etc/machine-id": "4b1d2c3e\n", "etc/os-release": UBUNTU})
    assert info(root).fields() == {
        "id": "4b1d2c3e",
        "name": "web-1",
        "hostname": "web-1",
        "architecture": "x86_64",
        "ip": ["10.1.2.3", "fe80::1", "2001:db8::5"],
        "os": {
            "type": "linux",
            "kernel": "6.8.0-45-generic",
            "name": "Ubuntu",
            "full": "Ubuntu 24.04.1 LTS",
            "platform": "ubuntu",
            "version": "24.04",
            "family": "debian",
        },
    }


def test_missing_files_leave_their_fields_out(tmp_path: Path) -> None:
    host = info(tmp_path, interfaces={"lo": INTERFACES["lo"]}).fields()
    assert host == {
        "name": "web-1",
        "hostname": "web-1",
        "architecture": "x86_64",
        "os": {"type": "linux", "kernel": "6.8.0-45-generic"},
    }


def test_failing_uname_and_interfaces_do_not_raise(tmp_path: Path) -> None:
    def no_uname() -> Uname:
        raise OSError("no")

    def no_interfaces() -> dict[str, list[SimpleNamespace]]:
        raise OSError("no netlink")

    host = HostInfo(tmp_path, uname=no_uname, interfaces=no_interfaces).fields()
    assert host == {"os": {"type": "linux"}}


def test_fallback_files_and_version(tmp_path: Path) -> None:
    root = root_with(
        tmp_path,
        {
            "var/lib/dbus/machine-id": "abc\n",
            "usr/lib/os-release": 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION="9.4 (Blue Onyx)"\n',
        },
    )
    host = info(root).fields()
    assert host["id"] == "abc"
    assert host["os"] == {
        "type": "linux",
        "kernel": "6.8.0-45-generic",
        "name": "Rocky Linux",
        "platform": "rocky",
        "version": "9.4 (Blue Onyx)",
        "family": "redhat",
    }


@pytest.mark.parametrize(
    ("release", "family"),
    [
        ("ID=debian\n", "debian"),
        ("ID=linuxmint\nID_LIKE='ubuntu debian'\n", "debian"),
        ('ID=opensuse-leap\nID_LIKE="suse opensuse"\n', "suse"),
        ("ID=nixos\n", "nixos"),
        ("ID=somedistro\nID_LIKE=otherthing\n", "otherthing"),
    ],
)
def test_family(tmp_path: Path, release: str, family: str) -> None:
    root = root_with(tmp_path, {"etc/os-release": release})
    assert info(root).fields()["os"]["family"] == family


def test_refresh_reads_addresses_again(tmp_path: Path) -> None:
    current = {"eth0": [addr(socket.AF_INET, "192.0.2.1")]}
    host = HostInfo(tmp_path, uname=lambda: UNAME, interfaces=lambda: current)
    assert host.fields()["ip"] == ["192.0.2.1"]
    current = {"eth0": [addr(socket.AF_INET, "192.0.2.9")]}
    assert host.fields()["ip"] == ["192.0.2.1"]  # read once
    host.refresh()
    assert host.fields()["ip"] == ["192.0.2.9"]
    current = {}
    host.refresh()
    assert "ip" not in host.fields()


def test_fields_is_a_copy(tmp_path: Path) -> None:
    host = info(tmp_path)
    host.fields()["os"]["type"] = "windows"
    assert host.fields()["os"]["type"] == "linux"


def test_os_release_parsing() -> None:
    assert os_release('A="x y"\nB=\'q\'\nC=plain\n=bad\n#D=1\nE="unterminated\n') == {
        "A": "x y",
        "B": "q",
        "C": "plain",
    }


def test_this_host() -> None:
    host = host_fields()
    assert host["os"]["type"] == "linux"
    assert isinstance(host.get("ip", []), list)
    assert all("%" not in ip for ip in host.get("ip", []))
