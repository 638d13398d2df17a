"""Policy files: valid rules compile; every mistake is one line naming file, rule and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.errors import PolicyError, PolicySemanticError, PolicySyntaxError
from guard.policy.loader import load_policy

GOOD = """
[[rule]]
id = "block-tmp-exec"
name = "Execution from /tmp"
severity = "high"
action = "block"
query = '''
process where process.executable : "/tmp/*"
'''
[[rule.tests]]
events = [{ "event.category" = "process", "process.executable" = "/tmp/x" }]
expect = "match"

[[rule]]
id = "curl"
name = "curl"
severity = "low"
action = "alert"
mode = "detect"
query = 'process where process.name == "curl"'
"""


def test_load_a_directory(tmp_path: Path) -> None:
    (tmp_path / "exec").mkdir()
    (tmp_path / "exec" / "a.guard").write_text(GOOD)
    (tmp_path / "ignored.txt").write_text("not a policy")
    policy = load_policy(tmp_path)
    assert [r.id for r in policy.rules] == ["block-tmp-exec", "curl"]
    rule = policy.rule("block-tmp-exec")
    assert (rule.action, rule.mode, rule.severity, rule.runtime) == ("block", None, "high", "python")
    assert rule.tests[0].expect == "match"
    assert rule.ir.fields == {"process.executable"}
    assert policy.rule("curl").mode == "detect"
    assert len(policy.digest) == 64
    (tmp_path / "exec" / "a.guard").write_text(GOOD + "\n")
    assert load_policy(tmp_path).digest != policy.digest


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace('action = "block"', 'action = "deny"'), "rule 'block-tmp-exec': action: expected one of block, alert, kill, got 'deny'"),
        (GOOD.replace('severity = "low"', 'severity = "meh"'), "rule 'curl': severity: expected one of"),
        (GOOD.replace('mode = "detect"', 'mode = "loud"'), "rule 'curl': mode: expected one of off, detect, enforce"),
        (GOOD.replace('name = "curl"\n', ""), "rule 'curl': name: missing"),
        (GOOD.replace('id = "curl"', 'id = "block-tmp-exec"'), "id: duplicate, first defined in"),
        (GOOD.replace('id = "curl"', 'id = "curl"\ncolour = "red"'), "rule 'curl': unknown field(s) ['colour']"),
        (GOOD.replace('expect = "match"', 'expect = "maybe"'), "tests[1]: expect: expected one of match, no_match"),
        ("title = 'x'\n" + GOOD, "unknown top-level key(s) ['title']"),
        ("[[rule]\n", "invalid TOML"),
        (GOOD.replace('id = "curl"', 'id = "curl"\noverflow = "panic"'), "rule 'curl': overflow: expected one of evict_oldest, drop_new"),
        (GOOD.replace("query = 'process where process.name == \"curl\"'", "query = 'process where true | head 3'"),
         "rule 'curl': query: '| head' / '| tail' select search results"),
    ],
)  # fmt: skip
def test_mistakes_name_file_rule_and_field(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "p.guard"
    f.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(f)
    assert str(info.value).startswith(str(f))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_query_errors_carry_the_rule(tmp_path: Path) -> None:
    f = tmp_path / "p.guard"
    f.write_text(GOOD.replace('process.name == "curl"', 'process.nam == "curl"'))
    with pytest.raises(PolicySemanticError, match=r"rule 'curl': query: unknown field 'process.nam'"):
        load_policy(f)
    f.write_text(GOOD.replace('process.name == "curl"', 'process.name = "curl"'))
    with pytest.raises(PolicySyntaxError) as info:
        load_policy(f)
    assert "rule 'curl'" in str(info.value)
    assert info.value.caret().splitlines()[1].endswith("^")


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy"):
        load_policy(tmp_path / "absent")
    with pytest.raises(PolicyError, match=r"no \*.guard or \*.toml policy files"):
        load_policy(tmp_path)


# ---- predicate runtimes: runtime, fail_mode, user modules


def _rule(rule_id: str, query: str, extra: str = "") -> str:
    return (
        f'[[rule]]\nid = "{rule_id}"\nname = "n"\nseverity = "low"\naction = "alert"\n{extra}'
        f"query = '{query}'\n"
    )


def test_runtime_per_rule_per_file_and_from_user_calls(tmp_path: Path) -> None:
    text = 'runtime = "wasm"\n' + _rule("a", 'process where process.name == "x"')
    text += _rule("b", 'process where process.name == "x"', 'runtime = "python"\nfail_mode = "closed"\n')
    text += _rule("c", "process where lua:entropy(process.command_line) > 4.5")
    (tmp_path / "p.guard").write_text(text)
    (tmp_path / "entropy.lua").write_text("function entropy(s) return 0 end\n")
    policy = load_policy(tmp_path)
    assert [(r.id, r.runtime, r.fail_mode) for r in policy.rules] == [
        ("a", "wasm", "open"), ("b", "python", "closed"), ("c", "lua", "open"),
    ]  # fmt: skip
    assert [(m.lang, m.path.name) for m in policy.modules] == [("lua", "entropy.lua")]


def test_modules_are_part_of_the_policy_digest(tmp_path: Path) -> None:
    (tmp_path / "p.guard").write_text(_rule("c", "process where lua:entropy(process.command_line) > 4.5"))
    (tmp_path / "entropy.lua").write_text("function entropy(s) return 0 end\n")
    before = load_policy(tmp_path).digest
    (tmp_path / "entropy.lua").write_text("function entropy(s) return 1 end\n")
    assert load_policy(tmp_path).digest != before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_rule("a", "process where lua:f(process.name)", 'runtime = "wasm"\n'),
         "rule 'a': runtime: 'wasm', but the query calls lua: functions"),
        (_rule("a", "process where lua:f(process.name) and wasm:g(process.name)"),
         "rule 'a': query: calls both lua: and wasm: functions"),
        (_rule("a", 'process where process.name == "x"', 'fail_mode = "sometimes"\n'),
         "rule 'a': fail_mode: expected one of open, closed"),
        (_rule("a", 'process where process.name == "x"', 'runtime = "js"\n'),
         "rule 'a': runtime: expected one of python, wasm, lua"),
        ('runtime = "js"\n' + _rule("a", 'process where process.name == "x"'),
         "p.guard: runtime: expected one of python, wasm, lua"),
    ],
)  # fmt: skip
def test_runtime_mistakes_name_the_rule_and_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "p.guard").write_text(text)
    with pytest.raises(PolicyError, match=message):
        load_policy(tmp_path)
