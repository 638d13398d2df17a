"""The HTML report in a real browser: headless Chromium renders it, and what it shows matches the JSON.

Chromium (Debian's ``/usr/bin/chromium``) is installed by ``make setup``; its absence fails the
test rather than skipping it, so a runner without it never goes green by accident. The screenshot
is kept in pytest's temporary directory and its path printed for a human to look at.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from guard.audit.report import render_html, render_json
from tests.unit.audit.test_report import (
    HOSTILE_EXE,
    HOSTILE_RULE,
    check_metrics,
    hostile_decisions,
    plan_decisions,
    report_for,
    write_log,
)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.fail("chromium missing: make setup installs it")
    return path


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


class DomMetrics(HTMLParser):
    """Collect the text of every ``data-metric`` element and every tag name of the dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.metrics: dict[str, list[str]] = {}
        self.title = ""
        self._open: list[tuple[str, str, list[str]]] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_title = tag == "title" and not self.title
        metric = dict(attrs).get("data-metric")
        if metric is not None:
            self._open.append((tag, metric, []))

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False
        if self._open and self._open[-1][0] == tag:
            _, metric, text = self._open.pop()
            self.metrics.setdefault(metric, []).append("".join(text))

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        for _, _, text in self._open:
            text.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    base = tmp_path_factory.mktemp("htmlreport")
    log = write_log(base / "log", [*plan_decisions(), *hostile_decisions()])
    report = report_for(log)
    path = base / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path, json.loads(render_json(report))


def test_chromium_dom_matches_json(page: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    binary = chromium()
    path, report = page
    proc = run_chromium(binary, tmp_path / "profile", "--dump-dom", path.as_uri())
    dom = DomMetrics()
    dom.feed(proc.stdout)
    dom.close()

    assert "Audit report" in dom.title
    assert "svg" in dom.tags
    assert "rect" in dom.tags
    assert "script" not in dom.tags
    assert "img" not in dom.tags
    # every data-metric element shows exactly its JSON value, and every JSON number is shown
    check_metrics(dom.metrics, report)
    for section in ("totals", "by_rule", "by_exe", "by_user", "by_hour", "top_blocked", "verification"):
        assert any(p.startswith(section + ".") for p in dom.metrics), section
    assert dom.metrics["totals.deny"] == ["43", "43"]
    assert dom.metrics["by_rule.block-tmp-exec.deny"] == ["30"]
    assert dom.metrics["by_hour.2026-11-22T09:00Z.kill"] == ["5"]
    assert dom.metrics["by_hour.2026-11-22T10:00Z.total"] == ["0"]
    assert dom.metrics["verification.records"] == [str(report["verification"]["records"])]
    assert dom.metrics[f"by_rule.{HOSTILE_RULE}.total"] == ["2"]
    assert dom.metrics[f"by_exe.{HOSTILE_EXE}.kill"] == ["1"]


def test_chromium_screenshot(
    page: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = chromium()
    path, _ = page
    shot = path.parent / "report.png"
    run_chromium(
        binary, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", path.as_uri()
    )
    assert shot.is_file()
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000, f"{shot}: only {len(data)} bytes"
    with capsys.disabled():
        print(f"\naudit report screenshot: {shot}")
