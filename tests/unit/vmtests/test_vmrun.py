"""The kernel-matrix runner's pure parts: matrix files, initramfs pieces, sources parsing, reports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from vmrun.archive import host_archive_uris
from vmrun.image import Cpio, ImageError, module_depends, module_name, order_modules
from vmrun.matrix import MatrixError, SkipRule, load_kernels, load_skips
from vmrun.report import render_compatibility, render_table, summarize

VM_TESTS = Path(__file__).resolve().parents[3] / "vm-tests"


def test_the_shipped_matrix() -> None:
    kernels = load_kernels(VM_TESTS / "kernels.toml")
    assert [k.id for k in kernels] == ["5.10", "6.1", "6.12", "6.18", "7.2"]
    for k in kernels:
        assert k.image.startswith("linux-image-")
        assert k.image.endswith("-amd64")
        assert "bpf" in k.lsm.split(",")
        assert f"lsm={k.lsm}" in k.full_cmdline
        assert "console=ttyS0" in k.full_cmdline
    ids = [k.id for k in kernels]
    for row in load_skips(VM_TESTS / "skip.toml"):
        assert len(row.reason) > 20, row  # a real reason, not a shrug
        assert any(re.search(row.kernel, kid) for kid in ids), f"skip row matches no kernel: {row.kernel}"
        assert any(re.search(row.test, n) for n in _guest_node_ids()), f"stale skip row: {row.test}"


def _guest_node_ids() -> list[str]:
    """The node ids of the suites the guests run, with ``[id]`` for each ``pytest.param`` id in a file."""
    out = []
    suites = re.search(r"^DEFAULT_TESTS = \[(.*)\]$", (VM_TESTS / "run.py").read_text(), re.M)
    assert suites is not None
    for suite in re.findall(r'"([^"]+)"', suites.group(1)):
        for p in (VM_TESTS.parent / suite).glob("test_*.py"):
            text = p.read_text()
            params = re.findall(r'\bid="([\w.-]+)"', text)
            for name in re.findall(r"^def (test_\w+)", text, re.M):
                out.append(f"{suite}/{p.name}::{name}")
                out += [f"{suite}/{p.name}::{name}[{param}]" for param in params]
    return out


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


DEFAULTS = """[defaults]
cmdline = "console=ttyS0"
memory_mb = 512
cpus = 1
boot_timeout_s = 10
run_timeout_s = 20
"""
ENTRY = (
    '[[kernel]]\nid = "6.1"\nrelease = "bookworm"\nsuite = "s"\nimage = "linux-image-x"\n'
    'version = "1"\nlsm = "bpf"\n'
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (DEFAULTS, "no [[kernel]] entries"),
        (DEFAULTS + ENTRY.replace('lsm = "bpf"\n', ""), "missing ['lsm']"),
        (DEFAULTS + ENTRY + "colour = 1\n", "unknown ['colour']"),
        (DEFAULTS + ENTRY + ENTRY, "duplicate kernel ids"),
        (DEFAULTS + ENTRY.replace("linux-image-x", "vmlinuz"), "image must be a linux-image-* package"),
        ("[defaults]\ncpus = 1\n" + ENTRY, "[defaults] must have exactly"),
        ("[[kernel\n", "invalid TOML"),
    ],
)
def test_bad_matrix_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "kernels.toml", text)
    with pytest.raises(MatrixError) as info:
        load_kernels(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_entry_overrides_defaults(tmp_path: Path) -> None:
    (k,) = load_kernels(write(tmp_path, "k.toml", DEFAULTS + ENTRY + "memory_mb = 4096\n"))
    assert (k.memory_mb, k.cpus, k.run_timeout_s) == (4096, 1, 20.0)


def test_skip_rows(tmp_path: Path) -> None:
    rows = load_skips(
        write(tmp_path, "skip.toml", '[[skip]]\ntest = "test_x"\nkernel = "^5\\\\.10$"\nreason = "old"\n')
    )
    assert rows == [SkipRule("test_x", r"^5\.10$", "old")]
    assert rows[0].applies("tests/privileged/test_a.py::test_x", "5.10")
    assert not rows[0].applies("tests/privileged/test_a.py::test_x", "6.1")
    assert not rows[0].applies("tests/privileged/test_a.py::test_y", "5.10")
    with pytest.raises(MatrixError, match="bad regex"):
        load_skips(write(tmp_path, "bad.toml", '[[skip]]\ntest = "("\nkernel = "x"\nreason = "r"\n'))
    with pytest.raises(MatrixError, match="needs exactly test, kernel and reason"):
        load_skips(write(tmp_path, "bad2.toml", '[[skip]]\ntest = "x"\n'))


def test_cpio_is_read_back_by_cpio(tmp_path: Path) -> None:
    archive = Cpio()
    archive.directory("bin")
    archive.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
    archive.file("odd-size", b"abc")
    archive.chardev("console", 5, 1)
    (tmp_path / "a.cpio").write_bytes(archive.build())
    listing = subprocess.run(
        ["cpio", "-itv", "-F", str(tmp_path / "a.cpio")], capture_output=True, text=True, check=True
    )
    names = [line.split()[-1] for line in listing.stdout.splitlines()]
    assert names == ["bin", "bin/hello", "odd-size", "console"]
    assert listing.stdout.splitlines()[1].startswith("-rwxr-xr-x")
    assert listing.stdout.splitlines()[3].startswith("crw-------")
    out = tmp_path / "x"
    out.mkdir()
    extract = [
        "cpio",
        "-id",
        "--no-absolute-filenames",
        "-F",
        str(tmp_path / "a.cpio"),
        "bin/hello",
        "odd-size",
    ]
    subprocess.run(extract, cwd=out, capture_output=True, check=True)
    assert (out / "bin/hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "odd-size").read_bytes() == b"abc"


def fake_module(*depends: str) -> bytes:
    return b"\x7fELF junk\0license=GPL\0depends=" + ",".join(depends).encode() + b"\0vermagic=6.1\0"


def test_module_names_and_depends(tmp_path: Path) -> None:
    assert module_name(Path("virtio-rng.ko.xz")) == "virtio_rng"
    assert module_name(Path("9p.ko")) == "9p"
    assert module_depends(fake_module("netfs", "9pnet")) == ["netfs", "9pnet"]
    assert module_depends(fake_module()) == []
    assert module_depends(b"no modinfo at all") == []


def test_order_modules_puts_dependencies_first(tmp_path: Path) -> None:
    files = {}
    for name, deps in {
        "9p": ("9pnet", "netfs"),
        "9pnet": (),
        "netfs": ("fscache",),
        "fscache": (),
        "loop": ("9p",),
    }.items():
        files[name] = tmp_path / f"{name}.ko"
        files[name].write_bytes(fake_module(*deps))
    order = [n for n, _ in order_modules(("9p", "rng"), files, {"fscache"}, frozenset({"rng"}))]
    assert order == ["9pnet", "netfs", "9p"]  # fscache built in, rng optional and absent
    with pytest.raises(ImageError, match=r"module overlay .* is not in the package"):
        order_modules(("overlay",), files, set(), frozenset())
    (tmp_path / "a.ko").write_bytes(fake_module("b"))
    (tmp_path / "b.ko").write_bytes(fake_module("a"))
    with pytest.raises(ImageError, match="cycle"):
        order_modules(("a",), {"a": tmp_path / "a.ko", "b": tmp_path / "b.ko"}, set(), frozenset())


def test_host_archive_uris_from_both_source_formats(tmp_path: Path) -> None:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n"
        "Components: main\n"
    )
    assert host_archive_uris(etc) == ("http://mirror.invalid/debian", "http://mirror.invalid/debian-security")
    (etc / "sources.list.d" / "debian.sources").unlink()
    (etc / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://other.invalid/debian/ bookworm main\n"
    )
    assert host_archive_uris(etc) == ("http://other.invalid/debian", "http://other.invalid/debian-security")


def test_job_script_sets_no_guard_config_variables() -> None:
    sys.path.insert(0, str(VM_TESTS))
    import run  # vm-tests/run.py

    (kernel,) = [k for k in load_kernels(VM_TESTS / "kernels.toml") if k.id == "6.1"]
    script = run.job_script(kernel, ["tests/privileged", "-k", "probe and not x"])
    assert "--run-privileged" in script
    assert "'probe and not x'" in script
    assert "VMTEST_KERNEL=6.1" in script
    # guardctl treats every GUARD_* variable as configuration and rejects unknown ones.
    assert "GUARD_" not in script.replace("guardctl", "")


def test_job_script_runs_guardctl_instead_of_the_tests() -> None:
    sys.path.insert(0, str(VM_TESTS))
    import run  # vm-tests/run.py

    (kernel,) = [k for k in load_kernels(VM_TESTS / "kernels.toml") if k.id == "6.1"]
    script = run.job_script(kernel, [], ["bench", "kernel", "--json"])
    assert "guardctl bench kernel --json > /run/guard-vm/guardctl.out" in script
    assert "pytest" not in script
    assert "ip link set lo up" in script  # a guest's loopback is up, as on a real machine


def record(
    tests: list[dict[str, str]] | None, exit_code: int | None = 0, reason: str = "ok"
) -> dict[str, Any]:
    features = {
        "lsm_program": {"available": True, "detail": "ok"},
        "lsm_active": {"available": True, "detail": "bpf"},
    }
    probe = {"backend": "lsm", "features": features, "hooks": {"file_open": {"lsm_program": True}}}
    return summarize(
        "6.1", release="6.1.0-1-amd64", package="linux-image-x=1", accel="tcg", wall_s=12.34, attempts=1,
        exit_code=exit_code, reason=reason, tests_json=None if tests is None else {"tests": tests},
        probe_json=probe, console_tail="panic!", skip_rows=[],
    )  # fmt: skip


def test_summary_counts_and_failures() -> None:
    ok = record([{"nodeid": "a", "outcome": "passed"}, {"nodeid": "b", "outcome": "skipped"}])
    assert (ok["passed"], ok["failed"], ok["skipped"], ok["ok"], ok["bpf_lsm"]) == (1, 0, 1, True, True)
    assert "console_tail" not in ok
    bad = record([{"nodeid": "a", "outcome": "failed"}, {"nodeid": "b", "outcome": "error"}], exit_code=1)
    assert (bad["failed"], bad["ok"], bad["outcome"]) == (2, False, "tests failed")
    hung = record(None, exit_code=None, reason="boot timeout (180 s without reaching the job)")
    assert (hung["failed"], hung["ok"], hung["outcome"], hung["console_tail"]) == (
        1,
        False,
        hung["outcome"],
        "panic!",
    )
    assert hung["outcome"].startswith("boot timeout")


def test_table_and_compatibility_render() -> None:
    recs = [
        record([{"nodeid": "a", "outcome": "passed"}]),
        record(None, exit_code=None, reason="run timeout"),
    ]
    table = render_table(recs).splitlines()
    assert table[0].split()[:6] == ["KERNEL", "RELEASE", "BPF-LSM", "PASSED", "FAILED", "SKIPPED"]
    assert "run timeout" in table[2]
    doc = render_compatibility(recs)
    header = next(line for line in doc.splitlines() if line.startswith("| kernel |"))
    separator = doc.splitlines()[doc.splitlines().index(header) + 1]
    assert header.count("|") == separator.count("|")
    assert "not run" in doc


def test_vmresults_plugin_records_outcomes_and_applies_skip_rows(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_bad(): assert 1 == 2\n"
        "def test_dropped(): assert False\n"
        "@pytest.mark.skip(reason='because')\n"
        "def test_skip(): pass\n"
    )
    (tmp_path / "skips.json").write_text(
        json.dumps([{"test": "test_dropped$", "kernel": "^6\\.1$", "reason": "old"}])
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(VM_TESTS),
        "VMTEST_KERNEL": "6.1",
        "VMTEST_SKIPS": str(tmp_path / "skips.json"),
        "VMTEST_RESULTS": str(tmp_path / "out.json"),
    }
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "vmresults", "-p", "no:cacheprovider", "-q", "-c", os.devnull,
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    out = json.loads((tmp_path / "out.json").read_text())
    outcomes = {t["nodeid"].split("::")[1]: (t["outcome"], t.get("reason", "")) for t in out["tests"]}
    assert outcomes["test_ok"] == ("passed", "")
    assert outcomes["test_bad"][0] == "failed"
    assert outcomes["test_dropped"] == ("skipped", "skip.toml: old")
    assert outcomes["test_skip"] == ("skipped", "because")
    assert out["exitstatus"] == 1


def test_guest_init_hides_no_host_directory() -> None:
    from vmrun.image import INIT

    # Only the RAM overlay's own upper/work dirs live on a tmpfs, and /dev/shm on the guest's own
    # devtmpfs; nothing of the host tree is covered, so a project checked out anywhere (even under
    # /tmp or /run) is visible in the guest.
    tmpfs_targets = re.findall(r"mount -t tmpfs(?: -o \S+)? tmpfs (\S+)", INIT)
    assert tmpfs_targets == ["/rw", "/newroot/dev/shm"]
    assert "/newroot/tmp" not in INIT


def test_a_kernels_record_lists_only_the_skip_rows_that_apply_to_it() -> None:
    sys.path.insert(0, str(VM_TESTS))
    import run  # vm-tests/run.py

    rows = [
        {"test": "a", "kernel": "^5\\.10$", "reason": "old"},
        {"test": "b", "kernel": ".*", "reason": "all"},
    ]
    assert run.rows_for("5.10", rows) == rows
    assert run.rows_for("6.1", rows) == [rows[1]]
