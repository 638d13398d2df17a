"""pytest plugin loaded inside the guests (-p vmresults).

It applies the skip.toml rows that match this kernel (VMTEST_SKIPS, VMTEST_KERNEL), and writes
every test's node id and outcome to VMTEST_RESULTS as JSON when the session ends.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

_outcomes: dict[str, dict[str, str]] = {}


def _rows() -> list[dict[str, str]]:
    path = os.environ.get("VMTEST_SKIPS")
    kernel = os.environ.get("VMTEST_KERNEL", "")
    rows: list[dict[str, str]] = json.loads(Path(path).read_text()) if path else []
    return [r for r in rows if re.search(r["kernel"], kernel)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rows = _rows()
    for item in items:
        for row in rows:
            if re.search(row["test"], item.nodeid):
                item.add_marker(pytest.mark.skip(reason=f"skip.toml: {row['reason']}"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _outcomes.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed"})
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            entry["outcome"] = "xfailed" if report.skipped else "xpassed"
        else:
            entry["outcome"] = report.outcome
    elif report.failed:
        entry["outcome"] = "error"
    elif report.skipped and report.when == "setup":
        entry["outcome"] = "skipped"
    if report.skipped and isinstance(report.longrepr, tuple):
        entry["reason"] = str(report.longrepr[2]).removeprefix("Skipped: ")
    elif report.failed:
        entry["reason"] = report.longreprtext.strip().splitlines()[-1] if report.longreprtext else ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("VMTEST_RESULTS")
    if path:
        data = {"exitstatus": int(exitstatus), "tests": list(_outcomes.values())}
        Path(path).write_text(json.dumps(data, indent=1))
