"""guard.model's hook vocabulary: one table, ids in ABI order, facts that match the programs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guard.lsm.probe import FEATURES
from guard.model import EVENT_KINDS, HOOKS, Hook, Reaction, Telemetry, event_kind

BPF = Path(__file__).resolve().parents[3] / "bpf"


def test_hook_names_are_the_kernels_and_stay_as_printed() -> None:
    assert [h.value for h in HOOKS] == [
        "bprm_check_security",
        "file_open",
        "socket_connect",
        "ptrace_access_check",
    ]
    assert [h.short for h in HOOKS] == ["exec", "file_open", "connect", "ptrace"]
    assert [t.short for t in Telemetry] == ["chmod"]


def test_ids_number_every_kind_from_zero_hooks_first_in_declaration_order() -> None:
    assert tuple(Hook) == HOOKS
    assert [k.abi for k in EVENT_KINDS] == list(range(len(EVENT_KINDS)))
    assert (*Hook, *Telemetry) == EVENT_KINDS
    assert [event_kind(k.abi) for k in EVENT_KINDS] == list(EVENT_KINDS)


def test_an_id_is_a_hook_only_when_a_hook_has_it() -> None:
    assert Hook.from_abi(2) is Hook.SOCKET_CONNECT
    assert event_kind(Telemetry.CHMOD.abi) is Telemetry.CHMOD
    for bad in (Telemetry.CHMOD.abi, len(EVENT_KINDS), -1):
        with pytest.raises(ValueError, match="is not a hook"):
            Hook.from_abi(bad)
    with pytest.raises(ValueError, match="is not an event kind"):
        event_kind(len(EVENT_KINDS))


def test_a_category_is_decided_by_its_first_hook() -> None:
    assert Hook.for_category("process") is Hook.BPRM_CHECK_SECURITY
    assert Hook.for_category("file") is Hook.FILE_OPEN
    assert Hook.for_category("network") is Hook.SOCKET_CONNECT
    assert Hook.for_category("registry") is None


def test_every_kind_has_its_plain_shape_first() -> None:
    assert [(k.category, k.events[0].type, k.events[0].action) for k in EVENT_KINDS] == [
        ("process", "start", "exec"),
        ("file", "access", "open"),
        ("network", "start", "connection_attempted"),
        ("process", "access", "ptrace"),
        ("file", "change", "chmod"),
    ]
    assert [k for k in EVENT_KINDS if k.on_file] == [
        Hook.BPRM_CHECK_SECURITY,
        Hook.FILE_OPEN,
        Telemetry.CHMOD,
    ]


def test_plane_facts_name_probed_features() -> None:
    for hook in HOOKS:
        for facts in (hook.lsm, hook.compat):
            assert set(facts.sees) | set(facts.needs) <= set(FEATURES), hook
    assert {h.lsm.reaction for h in HOOKS} == {Reaction.INLINE_DENY}
    assert [h for h in HOOKS if h.compat.reaction is Reaction.INLINE_DENY] == [Hook.SOCKET_CONNECT]


def _programs() -> set[str]:
    """Every program the C sources define, as ``<type>/<target>``."""
    found = set()
    for source in BPF.rglob("*.c"):
        text = source.read_text()
        found |= {f"lsm/{m}" for m in re.findall(r"^LSM_PROBE\((\w+)", text, re.M)}
        found |= {f"raw_tracepoint/{m}" for m in re.findall(r"^RAW_TRACEPOINT_PROBE\((\w+)\)", text, re.M)}
        found |= {f"cgroup/{m}" for m in re.findall(r"^int guard_(\w+)\(struct bpf_sock_addr", text, re.M)}
    return found


def test_attach_points_are_programs_in_bpf() -> None:
    programs = _programs()
    for hook in HOOKS:
        assert set(hook.lsm.attach) | set(hook.compat.attach) <= programs, hook
    assert f"lsm/{Telemetry.CHMOD.value}" in programs
