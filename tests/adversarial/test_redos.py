r"""Pathological wildcards and regexes: every runtime decides them exactly, in bounded work.

A governed process chooses the values rules match (its name, its command line), so a pattern that
backtracks lets it freeze ``guardctl query`` or the agent (``process.name : "*a*a*a*a*a*a*a*b"`` on a
60-character name; ``process.command_line : "*/*/*/*/*.sh"`` on a 403-byte command line). Each path
that decides a condition — the offline evaluator, ``guardctl query`` (the engine with codegen), the
engine on the wasm and the lua runtimes — runs the same cases in a child process with a CPU-time
allowance (a generous watchdog that a busy machine does not trip), so a matcher that backtracks
turns into a failure instead of a hang. The answers are checked too: a bounded matcher that
answers wrongly is no fix. Regexes RE2 cannot match in linear
time (backreferences, lookaround) are refused at load with one line naming the rule.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from guard.cli import main
from guard.errors import PolicyError
from guard.policy.loader import load_policy
from tests.fields import dig

#: the repository the child imports (this file's checkout, whichever it is)
ROOT = Path(__file__).resolve().parents[2]
#: a hang becomes a failure: the child's CPU allowance (RLIMIT_CPU), some 20 times what the linear
#: matchers spend on these cases; CPU seconds, so a loaded machine does not make it fire
CPU_LIMIT_S = 15
#: the wall-clock backstop, should the child block without spending CPU
WATCHDOG_S = 300.0
LONG = 10_000

# (query, values, indexes of the values that match)
CASES: list[tuple[str, list[str], list[int]]] = [
    # the report: a 60-character name, and the same pattern against 10k characters
    (
        'process.name : "*a*a*a*a*a*a*a*b"',
        ["a" * 60, "a" * LONG + "c", "a" * LONG + "b", "AxAxAxAxAxAxAxB", "aaaaaab"],
        [2, 3],
    ),
    ('process.name like "*a*a*a*a*a*a*a*b"', ["a" * LONG + "c", "a" * LONG + "b", "AxAxAxAxAxAxAxB"], [1]),
    ('process.name like~ "*a*?*a*?*a*b"', ["a" * LONG + "c", "A" * LONG + "B", "a?a?ab", "aaab"], [1, 2]),
    # the report: one exec with a 403-byte command line froze the agent for 55 s
    (
        'process.command_line : "*/*/*/*/*.sh"',
        ["/" * 400 + "abc", "/" * LONG + "x.sh", "/a/b/c/d/e.SH", "/a/b/c.sh"],
        [1, 2],
    ),
    ('wildcard(process.name, "*a*a*a*a*a*a*a*b", "x*")', ["a" * LONG + "c", "a" * LONG + "b", "xyz"], [1, 2]),
    # quadratic for a two-pointer glob or a naive substring search: the wasm fuel follows the value's
    # size, so a padded value is decided, never handed the rule's fail mode by a fuel trap
    ('process.command_line : "*aaaaaaaaaaaaaaaaaaaaaaab*"', ["a" * LONG + "b", "a" * LONG], [0]),
    ('process.command_line : "*?????????????????????z"', ["\u00e9" * LONG + "z", "\u00e9" * LONG], [0]),
    ('process.name : "*?a?a?a?a?a?a?a?a?a?a?a?b*?"', ["a" * LONG, "a" * LONG + "bc"], [1]),
    ('stringContains(process.name, "aaaaaaaaaaaaaaaaaaaaaaab")', ["a" * LONG, "a" * LONG + "b"], [1]),
    # number(): a run of digits that fails at its end split every way by a backtracking pattern
    ("number(process.name) > 5", ["1" * (2 * LONG) + "x", "7", "1" * LONG], [1, 2]),
    # classic regexes: nested quantifiers, overlapping alternatives, many unbounded stars
    ('process.name regex "(a*)*b"', ["a" * 40 + "c", "a" * 40 + "b"], [1]),
    ('process.command_line regex "(.*)*x"', ["a" * LONG, "a" * LONG + "x"], [1]),
    ('process.name regex~ "(a|aa)+"', ["a" * 5_000 + "!", "A" * 51], [1]),
    ('process.name regex ".*a.*a.*a.*a.*a.*a.*b"', ["a" * LONG + "c", "a" * 7 + "b"], [1]),
    ('process.name regex "(x+x+)+y"', ["x" * 5_000, "xxy"], [1]),
]

PATHS = ("evaluator", "query", "wasm", "lua")


def _events(values: list[str]) -> list[dict[str, object]]:
    return [
        {
            "@timestamp": 1000 + i,
            "event": {"category": "process", "sequence": i},
            "process": {"name": v, "command_line": v},
        }
        for i, v in enumerate(values)
    ]


def _decide(path: str) -> list[list[int]]:
    """Run every case through one path (in the child); return the indexes each one matched."""
    from guard.offline.query import run_query
    from guard.policy.analyzer import compile_query
    from guard.policy.engine import Engine
    from guard.policy.evaluator import evaluate

    out: list[list[int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (condition, values, _) in enumerate(CASES):
            query = f"process where {condition}"
            events = _events(values)
            if path == "evaluator":
                matches = evaluate(compile_query(query), events, limit=None)
                found = [m.events[0] for m in matches]
            else:
                runtime = "python" if path == "query" else path
                folder = Path(tmp) / f"{path}{k}"
                folder.mkdir()
                (folder / "rules.guard").write_text(
                    f'[[rule]]\nid = "redos_{k}"\nname = "pathological"\nseverity = "low"\n'
                    f'action = "alert"\nruntime = "{runtime}"\nquery = {json.dumps(query)}\n'
                )
                rule = load_policy(folder).rule(f"redos_{k}")
                if path == "query":
                    found = [m.events[0] for m in run_query(rule, events)]
                else:
                    engine = Engine([rule])
                    found = [a.events[0] for a in engine.run(events)]
                    assert engine.budget_events() == [], f"{path}: a trap instead of a decision"
            out.append(sorted(int(str(dig(ev, "event", "sequence"))) for ev in found))
    return out


def _run_child(path: str) -> list[list[int]]:
    code = (
        f"import json, resource; resource.setrlimit(resource.RLIMIT_CPU, ({CPU_LIMIT_S}, {CPU_LIMIT_S + 5})); "
        f"from tests.adversarial.test_redos import _decide; print(json.dumps(_decide({path!r})))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", code]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=WATCHDOG_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path}: the child did not finish within the {WATCHDOG_S:.0f} s wall-clock backstop")
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # the soft, then the hard CPU limit
        pytest.fail(f"{path}: the pathological patterns spent the whole {CPU_LIMIT_S} s CPU allowance")
    assert done.returncode == 0, done.stderr[-2000:]
    result: list[list[int]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("path", PATHS)
def test_pathological_patterns_are_decided_exactly_in_bounded_work(path: str) -> None:
    got = _run_child(path)
    want = [expected for _, _, expected in CASES]
    assert dict(enumerate(got)) == dict(enumerate(want))


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"(?=a)a", r"(?<!x)a", r"(?>a*)b", r"a*+b", r"\bword\b", r"a{1001}"],
)
def test_a_regex_without_a_linear_match_is_refused_at_load_naming_the_rule(
    tmp_path: Path, pattern: str, capsys: pytest.CaptureFixture[str]
) -> None:
    query = f"process where process.name regex {json.dumps(pattern)}"
    (tmp_path / "rules.guard").write_text(
        '[[rule]]\nid = "backtracker"\nname = "x"\nseverity = "low"\naction = "alert"\n'
        f"query = {json.dumps(query)}\n"
    )
    with pytest.raises(PolicyError) as err:
        load_policy(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert "backtracker" in message or "rules.guard" in message
    assert "invalid regex" in message
    assert main(["eql", "check", query]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "invalid regex" in lines[0]
