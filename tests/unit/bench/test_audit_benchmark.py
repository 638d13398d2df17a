"""`guardctl bench audit`: the figures and the report, without timing assertions."""

from __future__ import annotations

from pathlib import Path

from guard.bench.audit import render_audit_benchmark, run_benchmark


def test_run_and_render(tmp_path: Path) -> None:
    result = run_benchmark(200, tmp_path)
    assert result["records"] == 200
    assert list(tmp_path.iterdir()) == []  # its directory is removed
    text = render_audit_benchmark(result)
    lines = text.splitlines()
    assert lines[0] == "200 records, 10% denies"
    assert lines[1].startswith("  plain JSON lines: ")
    assert lines[1].endswith(" records/s (baseline)")
    assert f"({result['ratio_default_to_plain']}x)" in lines[2]
    assert f"({result['ratio_checkpoint_only_to_plain']}x)" in lines[3]
