from __future__ import annotations

import pytest

from guard.lsm.probe import (
    COMPAT_NEEDS,
    FEATURES,
    LSM_NEEDS,
    Feature,
    HookStatus,
    ProbeReport,
    choose_backend,
    hook_enforcement,
    parse_capabilities,
    parse_mountinfo,
)
from guard.model import HOOKS, BackendName, Hook

MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
40 22 0:40 / /mnt/with\\040space rw shared:1 master:2 - bpf bpf rw
bogus line without separator
"""


def test_parse_mountinfo_handles_optional_fields_and_escapes() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert [(e.mount_point, e.fstype) for e in entries] == [
        ("/", "ext4"),
        ("/sys/fs/cgroup", "tmpfs"),
        ("/sys/fs/cgroup/unified", "cgroup2"),
        ("/sys/fs/cgroup/cpu", "cgroup"),
        ("/mnt/with space", "bpf"),
    ]


def test_parse_capabilities() -> None:
    # CAP_SYS_ADMIN (21) and CAP_BPF (39); not CAP_PERFMON (38)
    bits = (1 << 21) | (1 << 39)
    caps = parse_capabilities(f"Name:\tx\nCapEff:\t{bits:016x}\n")
    assert caps == {"CAP_SYS_ADMIN", "CAP_BPF"}
    assert parse_capabilities("Name:\tx\n") == frozenset()


def features(**unavailable: str) -> dict[str, Feature]:
    return {n: Feature(n, n not in unavailable, unavailable.get(n, "ok")) for n in FEATURES}


def test_all_features_choose_lsm() -> None:
    backend, reasons = choose_backend(features())
    assert backend is BackendName.LSM
    assert reasons
    assert reasons[0].startswith("lsm:")


def test_refused_lsm_program_falls_back_to_compat_and_says_why() -> None:
    why = "BPF_PROG_LOAD(LSM): EPERM (Operation not permitted); empty verifier log"
    backend, reasons = choose_backend(features(lsm_program=why))
    assert backend is BackendName.COMPAT
    assert f"lsm unusable: lsm_program: {why}" in reasons
    assert any(r.startswith("compat:") for r in reasons)


@pytest.mark.parametrize("missing", sorted(set(LSM_NEEDS) & set(COMPAT_NEEDS)))
def test_a_need_of_both_backends_missing_chooses_fake(missing: str) -> None:
    backend, reasons = choose_backend(features(**{missing: "gone"}))
    assert backend is BackendName.FAKE
    assert f"lsm unusable: {missing}: gone" in reasons
    assert f"compat unusable: {missing}: gone" in reasons


def test_no_cgroup_v2_and_no_lsm_is_fake() -> None:
    backend, reasons = choose_backend(features(lsm_active="bpf not active", cgroup_v2="legacy"))
    assert backend is BackendName.FAKE
    assert reasons[-1].startswith("fake:")


def test_hook_enforcement_per_backend() -> None:
    f = features()
    assert hook_enforcement(BackendName.LSM, Hook.FILE_OPEN, f, lsm_loads=True) == "inline deny"
    assert hook_enforcement(BackendName.LSM, Hook.FILE_OPEN, f, lsm_loads=False).startswith("none")
    assert hook_enforcement(BackendName.COMPAT, Hook.SOCKET_CONNECT, f, lsm_loads=False) == "inline deny"
    assert (
        hook_enforcement(BackendName.COMPAT, Hook.BPRM_CHECK_SECURITY, f, lsm_loads=False) == "kill reaction"
    )
    no_signal = features(send_signal="refused")
    assert hook_enforcement(BackendName.COMPAT, Hook.FILE_OPEN, no_signal, lsm_loads=False) == "detect only"
    no_syscalls = features(syscall_tracepoints="sys_exit: ENOENT")
    assert hook_enforcement(BackendName.COMPAT, Hook.FILE_OPEN, no_syscalls, lsm_loads=False).startswith(
        "none"
    )
    assert hook_enforcement(
        BackendName.COMPAT, Hook.PTRACE_ACCESS_CHECK, no_syscalls, lsm_loads=False
    ).startswith("none")
    assert (
        hook_enforcement(BackendName.COMPAT, Hook.BPRM_CHECK_SECURITY, no_syscalls, lsm_loads=False)
        == "kill reaction"
    )
    assert hook_enforcement(BackendName.FAKE, Hook.FILE_OPEN, f, lsm_loads=False).startswith("none")


def test_report_json_is_stable() -> None:
    f = features(lsm_program="EPERM")
    backend, reasons = choose_backend(f)
    report = ProbeReport(
        kernel="6.1.0-test",
        features=tuple(f[n] for n in FEATURES),
        hooks=tuple(HookStatus(h, False, f"int {h.lsm_function}(void)", "EPERM", "x") for h in HOOKS),
        backend=backend,
        reasons=reasons,
        lsms=("lockdown", "bpf"),
    )
    data = report.to_json()
    assert {"schema", "kernel", "backend", "reasons", "features", "hooks", "active_lsms"} <= set(data)
    assert data["backend"] == "compat"
    assert isinstance(data["features"], dict)
    assert isinstance(data["hooks"], dict)
    assert list(data["features"]) == list(FEATURES)
    assert list(data["hooks"]) == [h.value for h in HOOKS]
    assert report.feature("lsm_program").detail == "EPERM"
    with pytest.raises(KeyError):
        report.feature("nope")
