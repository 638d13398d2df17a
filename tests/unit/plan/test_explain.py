"""Per rule and hook, what a backend's enforcement can achieve (guardctl policy explain)."""

from __future__ import annotations

from pathlib import Path

from guard.lsm.probe import Feature, hook_enforcement
from guard.model import BackendName, Hook
from guard.plan.explain import explain_policy
from guard.policy.loader import load_policy

POLICY = '''
[[rule]]
id = "tmp-exec"
name = "exec from /tmp"
severity = "high"
action = "block"
query = 'process where process.executable : "/tmp/*"'

[[rule]]
id = "bad-net"
name = "connect to a bad network"
severity = "high"
action = "block"
query = 'network where cidrMatch(destination.ip, "10.0.0.0/8")'

[[rule]]
id = "shadow"
name = "reading shadow"
severity = "medium"
action = "alert"
query = 'file where file.path == "/etc/shadow"'

[[rule]]
id = "dl-exec"
name = "download then exec"
severity = "critical"
action = "block"
query = """sequence by process.entity_id with maxspan=1m
  [network where true] [file where true] [process where true]"""
'''


def test_compat_levels_per_rule(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(POLICY)
    policy = load_policy(tmp_path)
    feats = {
        n: Feature(n, True, "")
        for n in ("cgroup_sock_addr", "raw_tracepoint", "syscall_tracepoints", "send_signal")
    }
    levels = {h: hook_enforcement(BackendName.COMPAT, h, feats, False) for h in Hook}
    rows = {r.rule.id: r for r in explain_policy(policy, BackendName.COMPAT, levels)}
    assert rows["tmp-exec"].hooks == {Hook.BPRM_CHECK_SECURITY: "kill reaction"}
    assert rows["bad-net"].hooks == {Hook.SOCKET_CONNECT: "inline deny"}
    assert rows["shadow"].hooks == {Hook.FILE_OPEN: "alert only"}  # an alert rule: the kernel does nothing
    assert "never enforced" in rows["shadow"].note
    assert rows["dl-exec"].hooks == {Hook.BPRM_CHECK_SECURITY: "kill reaction"}
    assert rows["dl-exec"].to_json()["sequence"] is True
    assert rows["bad-net"].to_json()["hooks"] == {"socket_connect": "inline deny"}


def test_a_sequence_through_chmod_is_armed_only_where_chmod_is_seen() -> None:
    """The bundled download -> chmod +x -> exec rule: armed on the lsm plane, never on compat."""
    policy = load_policy(Path(__file__).resolve().parents[3] / "policies")
    feats = {
        n: Feature(n, True, "")
        for n in ("cgroup_sock_addr", "raw_tracepoint", "syscall_tracepoints", "send_signal", "lsm_program")
    }
    rows = {}
    for backend in (BackendName.LSM, BackendName.COMPAT):
        levels = {h: hook_enforcement(backend, h, feats, backend is BackendName.LSM) for h in Hook}
        rows[backend] = {r.rule.id: r for r in explain_policy(policy, backend, levels)}
    lsm = rows[BackendName.LSM]["block_download_chmod_exec"]
    compat = rows[BackendName.COMPAT]["block_download_chmod_exec"]
    assert (lsm.path, lsm.hooks) == ("sequence-armed", {Hook.BPRM_CHECK_SECURITY: "inline deny"})
    assert (compat.path, compat.hooks) == ("detect-only", {Hook.BPRM_CHECK_SECURITY: "alert only"})
    assert compat.plan.reason == "step 2 matches chmod events, which this plane never reports: never armed"
