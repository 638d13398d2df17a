"""guard/lsm/abi.py against the compiled C: bcc builds each map's key and value types from the
structs it compiled, so their sizes, field names and offsets must equal the ctypes mirror."""

from __future__ import annotations

import ctypes

import pytest

from guard.lsm import abi
from guard.lsm.bcc_backend import LsmBackend

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]

#: (map, 0 = key / 1 = value, the mirror).
PAIRS = [
    ("guard_config", 1, abi.Config),
    ("guard_paths", 0, abi.PathKey),
    ("guard_paths", 1, abi.Verdict),
    ("guard_prefixes", 0, abi.LpmPathKey),
    ("guard_suffixes", 0, abi.LpmPathKey),
    ("guard_inodes", 0, abi.InodeKey),
    ("guard_nets", 0, abi.NetKey),
    ("guard_ptrace_targets", 1, abi.Verdict),
    ("guard_dfas", 1, abi.Dfa),
    ("guard_dfa_rules", 1, abi.DfaRule),
    ("guard_entities", 1, abi.Entity),
    ("guard_dynamic", 0, abi.DynKey),
    ("guard_dynamic", 1, abi.DynVerdict),
    ("guard_exempt", 0, abi.ExemptKey),
    ("guard_decision_drops", 0, abi.DecisionDropKey),
]


def layout(struct: type) -> tuple[int, list[tuple[str, int, int]]]:
    assert issubclass(struct, ctypes.Structure | ctypes.Union), struct
    fields = [
        (name, getattr(struct, name).offset, getattr(struct, name).size) for name, *_ in struct._fields_
    ]
    return ctypes.sizeof(struct), fields


@pytest.mark.parametrize(("table", "which", "ours"), PAIRS, ids=[f"{t}-{'kv'[w]}" for t, w, _ in PAIRS])
def test_abi_matches_the_compiled_side(plane: LsmBackend, table: str, which: int, ours: type) -> None:
    theirs = plane.table_types(table)[which]
    assert layout(theirs) == layout(ours)
