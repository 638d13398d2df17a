"""The agent with a rule on a user-code runtime: a runaway user function is audited, the agent runs on."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from guard.agent.daemon import Agent, AgentSettings
from guard.agent.processes import ProcessCache
from guard.audit.record import Kind
from guard.audit.sink import MemoryAudit
from guard.cli.status import render_status
from guard.lsm.fake import FakeBackend
from guard.plan.compiler import compile_policy
from guard.policy.loader import load_policy
from guard.policy.predicates.abi import Budget

CG = 77

RULE = """
[[rule]]
id = "odd_binary"
name = "binary name the user function flags"
severity = "low"
action = "alert"
fail_mode = "closed"
query = 'process where {lang}:risky(process.name) > 3'
"""

RISKY = {
    "lua": """
function risky(s)
  if s == "spin" then while true do end end
  return #s
end
""",
    "wasm": """
(module
  (import "env" "memory" (memory 1))
  (func (export "risky") (param $p i32) (param $n i32) (result i64)
    (if (i32.and (i32.eq (local.get $n) (i32.const 4))
                 (i32.eq (i32.load8_u (local.get $p)) (i32.const 115)))  ;; "s..." of length 4: spin
      (then (loop $l (br $l))))
    (i64.extend_i32_u (local.get $n)))
)
""",
}


@pytest.mark.parametrize("lang", ["wasm", "lua"])
def test_a_runaway_user_function_is_audited_and_fails_closed(tmp_path: Path, lang: str) -> None:
    (tmp_path / "rule.guard").write_text(RULE.replace("{lang}", lang))
    (tmp_path / f"risky.{'lua' if lang == 'lua' else 'wat'}").write_text(RISKY[lang])
    compiled = compile_policy(load_policy(tmp_path))
    assert compiled.plan("odd_binary").path == "detect-only"
    fake, audit, alerts = FakeBackend(), MemoryAudit(), io.StringIO()
    settings = AgentSettings(scope_cgroups=(CG,), runtime_budget=Budget(per_event=20_000, base=5_000))
    agent = Agent(compiled, fake, audit, settings, alerts=alerts, processes=ProcessCache(read_proc=False))
    agent.start()
    for pid, path in ((300, "/usr/bin/spin"), (301, "/usr/bin/id"), (302, "/usr/bin/curl")):
        assert fake.exec(pid, path=path, cgroup=CG) == 0  # detect-only: the kernel only reports
    agent.step(timeout_ms=0)
    flagged = sorted(json.loads(line)["process"]["name"] for line in alerts.getvalue().splitlines())
    assert flagged == ["curl", "spin"]  # curl by the function (4 > 3), spin by the fail mode (closed)
    budget = [d for d in audit.decisions if d.kind is Kind.BUDGET_EXCEEDED]
    assert [(d.rule_id, d.detail["kind"], d.detail["count"]) for d in budget] == [
        ("odd_binary", "trap_fuel", 1)
    ]
    assert "fail mode" in budget[0].reason
    assert fake.exec(303, path="/usr/bin/wget", cgroup=CG) == 0
    agent.step(timeout_ms=0)  # the agent and the predicate keep working
    assert json.loads(alerts.getvalue().splitlines()[-1])["process"]["name"] == "wget"
    predicates = agent.status()["predicates"]
    assert isinstance(predicates, dict)
    (pred,) = predicates.values()
    assert isinstance(pred, dict)
    assert (pred["runtime"], pred["rules"], pred["events"], pred["fuel"]) == (lang, ["odd_binary"], 4, 1)
    (row,) = [line.split() for line in render_status(agent.status()).splitlines() if line.startswith("pred_")]
    assert row[1:] == [lang, "4", "0", "1", "odd_binary"]  # runtime, events, escaped, trapped, rules
