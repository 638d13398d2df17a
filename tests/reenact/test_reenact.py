"""The re-enactment suite on this kernel's plane: every technique run under a detect-mode agent.

Opt-in like ``tests/privileged`` (root and the kernel). The table is printed whatever the outcome
(``-s`` shows it); the test then asks that at least 90% of the techniques that ran got every rule
written for them (the goal), and that at least 30 ran at all (no vacuous pass).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.lsm.probe import probe_kernel
from tests.reenact.harness import GOAL, reenact
from tests.reenact.techniques import TECHNIQUES

pytestmark = [pytest.mark.privileged, pytest.mark.requires_feature("bcc")]

#: the fewest techniques that must run for the ratio to mean anything
MIN_RAN = 30


def test_elastic_rules_alert_on_reenacted_techniques(scope: Path, tmp_path: Path) -> None:
    backend = probe_kernel().backend.value
    if backend == "fake":
        pytest.skip("no BPF data plane on this kernel (guardctl probe chose fake)")
    report = reenact(TECHNIQUES, scope, tmp_path, backend)
    print("\n" + report.render())
    assert len(report.ran) >= MIN_RAN, f"only {len(report.ran)} techniques could run here"
    missed = [r.technique.id for r in report.ran if not r.hit]
    assert report.ratio >= GOAL, (
        f"{report.ratio:.0%} of techniques alerted (goal {GOAL:.0%}); missed: {missed}"
    )
