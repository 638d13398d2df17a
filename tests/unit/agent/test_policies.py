"""The bundled policies: one rule per file named after its id, each with positive and negative cases that pass."""

from __future__ import annotations

from pathlib import Path

from guard.cli import main
from guard.offline.policy_test import run_policy_tests
from guard.policy.loader import load_policy

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def test_one_rule_per_file_named_after_its_id() -> None:
    policy = load_policy(POLICIES)
    assert len(policy.rules) >= 6
    for rule in policy.rules:
        assert Path(rule.path).stem == rule.id
        expects = {t.expect for t in rule.tests}
        assert expects == {"match", "no_match"}, rule.id


def test_every_embedded_case_passes() -> None:
    results = run_policy_tests(load_policy(POLICIES))
    assert results
    assert [r.to_json() for r in results if not r.passed] == []


def test_policy_test_command_fails_on_a_failing_case(tmp_path: Path) -> None:
    (tmp_path / "r.guard").write_text(
        '[[rule]]\nid = "r"\nname = "r"\nseverity = "low"\naction = "alert"\n'
        "query = 'file where file.path == \"/a\"'\n"
        '[[rule.tests]]\nevents = [{ "event.category" = "file", "file.path" = "/b" }]\nexpect = "match"\n'
    )
    assert main(["policy", "test", str(tmp_path)]) == 1
    assert main(["policy", "test", str(POLICIES)]) == 0
