"""Test options and markers.

- ``--run-privileged`` opts into tests marked ``privileged`` (root + the kernel). Without it
  they are skipped with a visible reason. With it, a session fixture probes the kernel and
  *fails* (never skips) when the runner is not root or the probe cannot run, so a
  misconfigured runner never goes green.
- ``requires_kernel(major, minor)`` and ``requires_feature(name)`` skip a privileged test, with
  the reason, when this kernel lacks what it needs (the probe report says why).
- ``vm`` tests run only inside the vm-tests guests (``VMTEST_GUEST=1``).
- A unit session that ends with ``bcc`` imported fails: unit tests must not need bcc.
"""

from __future__ import annotations

import os
import sys

import pytest

from guard.lsm.probe import ProbeReport, probe_kernel

#: the kernel tests' fixtures (scope, plane, compat), shared by tests/privileged and tests/adversarial
pytest_plugins = ["tests.privileged.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-privileged",
        action="store_true",
        default=False,
        help="run tests that need root and the kernel (marker: privileged)",
    )


def _kernel_version() -> tuple[int, int]:
    release = os.uname().release
    parts = release.split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_privileged = config.getoption("--run-privileged")
    in_vm = os.environ.get("VMTEST_GUEST") == "1"
    for item in items:
        if "privileged" in item.keywords and not run_privileged:
            item.add_marker(
                pytest.mark.skip(reason="needs root and the kernel: opt in with --run-privileged")
            )
        if "vm" in item.keywords and not in_vm:
            item.add_marker(pytest.mark.skip(reason="runs only inside a vm-tests guest (VMTEST_GUEST=1)"))
        for mark in item.iter_markers("requires_kernel"):
            want = (int(mark.args[0]), int(mark.args[1]))
            if _kernel_version() < want:
                item.add_marker(pytest.mark.skip(reason=f"needs kernel >= {want[0]}.{want[1]}"))


@pytest.fixture(scope="session")
def probe_report(request: pytest.FixtureRequest) -> ProbeReport:
    """The kernel probe, run once; fails the session's privileged tests when it cannot run."""
    if os.geteuid() != 0:
        pytest.fail("--run-privileged was given but the tests are not running as root")
    try:
        return probe_kernel()
    except Exception as exc:  # the probe itself must never fail on a sane runner
        pytest.fail(f"kernel probe failed: {exc!r}")


@pytest.fixture(autouse=True)
def _privileged_gate(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("privileged") is None:
        return
    report: ProbeReport = request.getfixturevalue("probe_report")
    for mark in request.node.iter_markers("requires_feature"):
        feature = report.feature(str(mark.args[0]))
        if not feature.available:
            pytest.skip(f"kernel lacks {feature.name}: {feature.detail}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not session.config.getoption("--run-privileged") and "bcc" in sys.modules:
        print("\nERROR: bcc was imported during an unprivileged session: unit tests must not need bcc")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
