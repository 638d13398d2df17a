"""bpf/include/guard_abi.h against its ctypes mirror guard/lsm/abi.py, without root, bcc or a kernel.

The header is preprocessed by ``cpp`` and parsed by pycparser; the C layout of every struct is
computed from its declarations with x86-64 natural alignment (the header has no packing, unions
or bit-fields: anything else fails here) and compared field by field with ctypes. Every enum's
members and values, and every ``#define`` the Python side mirrors, are compared too, both ways: a
change on either side alone fails. (tests/privileged/test_abi_layout.py also compares the mirror
with the types bcc compiled.)
"""

from __future__ import annotations

import ctypes
import enum
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

import pytest
from pycparser import c_ast, c_parser

from guard.lsm import abi
from guard.lsm.ring import EVENT_SIZE

HEADER = Path(__file__).resolve().parents[3] / "bpf" / "include" / "guard_abi.h"

#: The kernel's fixed-width types (linux/types.h), which the header uses but does not define.
PRELUDE = """\
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
"""

#: C scalar -> (size = alignment on x86-64, its name in a layout).
SCALARS = {
    "__u8": (1, "u8"),
    "__u16": (2, "u16"),
    "__u32": (4, "u32"),
    "__u64": (8, "u64"),
    "char": (1, "char"),
}
CTYPES = {
    ctypes.c_uint8: "u8",
    ctypes.c_uint16: "u16",
    ctypes.c_uint32: "u32",
    ctypes.c_uint64: "u64",
    ctypes.c_char: "char",
}

#: C enum -> (its mirror, the prefix its members drop, the constant its *_COUNT member becomes).
#: ``enum guard_hook`` and the ``GUARD_EVENT_*`` kinds are guard.model's, as abi.EVENT_ENUMERATORS.
ENUMS = {
    "guard_mode": (abi.ModeId, "GUARD_MODE_", None),
    "guard_decision": (abi.Decision, "GUARD_DECISION_", None),
    "guard_match": (abi.Match, "GUARD_MATCH_", None),
    "guard_counter": (abi.Counter, "GUARD_CNT_", "COUNTER_COUNT"),
    "guard_subject_field": (abi.SubjectField, "GUARD_SUBJ_", None),
}

#: ``#define``s with no Python constant, and why.
UNMIRRORED = {
    "GUARD_ABI_H": "the include guard",
    "GUARD_DFA_TRANS": "a -D size knob: abi.Dfa holds the default (checked as its layout)",
    "GUARD_DFA_STATES": "a -D size knob: abi.Dfa holds the default (checked as its layout)",
}

#: A type in a layout: a scalar's name, ("array", length, element) or ("struct", name).
Desc = str | tuple[object, ...]


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int
    type: Desc


@dataclass(frozen=True)
class Layout:
    size: int
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Header:
    structs: dict[str, c_ast.Struct]
    enums: dict[str, dict[str, int]]
    defines: dict[str, int | None]


def _cpp(*args: str, text: str) -> str:
    cpp = shutil.which("cpp")
    if cpp is None:
        pytest.fail("cpp (the C preprocessor) is not installed: run scripts/setup")
    done = subprocess.run(
        [cpp, "-P", "-undef", "-nostdinc", "-x", "c", *args, "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def parse_header(path: Path) -> Header:
    """The header's structs, enums (member -> value) and macros (name -> int value, or None)."""
    include = f'#include "{path}"\n'
    unit = c_parser.CParser().parse(_cpp(text=PRELUDE + include), filename=str(path))
    structs: dict[str, c_ast.Struct] = {}
    enums: dict[str, dict[str, int]] = {}
    for node in unit.ext:
        t = node.type if isinstance(node, c_ast.Decl) else None
        if isinstance(t, c_ast.Struct) and t.decls is not None:
            structs[t.name] = t
        elif isinstance(t, c_ast.Enum) and t.values is not None:
            enums[t.name] = _enum_values(t)
    defines: dict[str, int | None] = {}
    for line in _cpp("-dM", text=include).splitlines():
        m = re.fullmatch(r"#define (GUARD_\w+)(?: (.*))?", line)
        if m:
            value = (m.group(2) or "").strip()
            defines[m.group(1)] = int(value, 0) if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", value) else None
    return Header(structs, enums, defines)


def _enum_values(enum_node: c_ast.Enum) -> dict[str, int]:
    values: dict[str, int] = {}
    next_value = 0
    for e in enum_node.values.enumerators:
        if e.value is not None:
            assert isinstance(e.value, c_ast.Constant), f"{e.name}: only literal values are mirrored"
            next_value = int(e.value.value.rstrip("uUlL"), 0)
        values[e.name] = next_value
        next_value += 1
    return values


def c_layout(header: Header, name: str) -> Layout:
    """A struct's layout as the compiler lays it out on x86-64 (natural alignment)."""
    size, _align, fields = _c_struct(header, name)
    return Layout(size, fields)


def _c_struct(header: Header, name: str) -> tuple[int, int, tuple[Field, ...]]:
    offset, align, fields = 0, 1, []
    for decl in header.structs[name].decls:
        assert decl.bitsize is None, f"struct {name}.{decl.name}: bit-fields are not mirrored"
        size, field_align, desc = _c_type(header, decl.type)
        offset = -(-offset // field_align) * field_align
        fields.append(Field(decl.name, offset, size, desc))
        offset += size
        align = max(align, field_align)
    return -(-offset // align) * align, align, tuple(fields)


def _c_type(header: Header, node: c_ast.Node) -> tuple[int, int, Desc]:
    if isinstance(node, c_ast.ArrayDecl):
        length = _constant(header, node.dim)
        size, align, desc = _c_type(header, node.type)
        return size * length, align, ("array", length, desc)
    assert isinstance(node, c_ast.TypeDecl), f"unsupported declarator {type(node).__name__}"
    inner = node.type
    if isinstance(inner, c_ast.Struct):
        size, align, _ = _c_struct(header, inner.name)
        return size, align, ("struct", inner.name)
    assert isinstance(inner, c_ast.IdentifierType), f"unsupported type {type(inner).__name__}"
    width, scalar = SCALARS[" ".join(inner.names)]
    return width, width, scalar


def _constant(header: Header, node: c_ast.Node) -> int:
    """An array bound: a literal or an enumerator (macros are expanded already)."""
    if isinstance(node, c_ast.Constant):
        return int(node.value.rstrip("uUlL"), 0)
    assert isinstance(node, c_ast.ID), f"array bound {node!r} is neither a literal nor an enumerator"
    (value,) = [values[node.name] for values in header.enums.values() if node.name in values]
    return value


def py_layout(struct: type[ctypes.Structure]) -> Layout:
    """A ctypes struct's layout as ctypes lays it out."""
    fields = []
    for entry in struct._fields_:
        assert len(entry) == 2, f"{struct.__name__}.{entry[0]}: a bit-field"
        name, ctype = entry
        member = getattr(struct, name)
        fields.append(Field(name, member.offset, member.size, _py_type(ctype)))
    return Layout(ctypes.sizeof(struct), tuple(fields))


def _py_type(ctype: type) -> Desc:
    if issubclass(ctype, ctypes.Array):
        # typeshed declares _type_ an instance property; on an array class it is the element type
        return ("array", ctype._length_, _py_type(cast(type, ctype._type_)))
    if issubclass(ctype, ctypes.Structure):
        return ("struct", c_name(ctype))
    return CTYPES[ctype]


def c_name(struct: type) -> str:
    """The C struct a mirror stands for: ``DynKey`` -> ``guard_dyn_key``."""
    return "guard_" + re.sub(r"(?<!^)(?=[A-Z])", "_", struct.__name__).lower()


def mirrors() -> dict[str, type[ctypes.Structure]]:
    """Every ctypes struct abi.py defines, by the C struct it mirrors."""
    found = {}
    for value in vars(abi).values():
        if (
            isinstance(value, type)
            and issubclass(value, ctypes.Structure)
            and value.__module__ == abi.__name__
        ):
            found[c_name(value)] = value
    return found


def constants() -> dict[str, int]:
    """abi.py's exported integer constants (enum classes aside)."""
    return {
        name: getattr(abi, name)
        for name in abi.__all__
        if name.isupper()
        and isinstance(getattr(abi, name), int)
        and not isinstance(getattr(abi, name), enum.Enum)
    }


@cache
def header() -> Header:
    return parse_header(HEADER)


# ------------------------------------------------------------------ structs


def test_every_struct_has_a_mirror_and_every_mirror_a_struct() -> None:
    assert set(mirrors()) == set(header().structs)


@pytest.mark.parametrize("name", sorted(mirrors()))
def test_struct_layout_matches(name: str) -> None:
    assert name in header().structs, f"abi.{mirrors()[name].__name__} mirrors no struct in guard_abi.h"
    assert py_layout(mirrors()[name]) == c_layout(header(), name)


def test_the_ring_record_size_is_the_c_event() -> None:
    """Every ring-buffer record is checked against this size (guard/lsm/ring.py)."""
    assert c_layout(header(), "guard_event").size == EVENT_SIZE


# ------------------------------------------------------------------ enums


def test_every_enum_has_a_mirror() -> None:
    assert set(ENUMS) | {"guard_hook"} == set(header().enums)
    defined = {
        v
        for v in vars(abi).values()
        if isinstance(v, type) and issubclass(v, enum.IntEnum) and v.__module__ == abi.__name__
    }
    assert defined == {m for m, _, _ in ENUMS.values()}


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum_members_and_values_match(name: str) -> None:
    mirror, prefix, count = ENUMS[name]
    theirs = {member.removeprefix(prefix): value for member, value in header().enums[name].items()}
    ours = {member.name: int(member) for member in mirror}
    if count is not None:
        ours["COUNT"] = getattr(abi, count)
    assert ours == theirs


def test_the_hook_enum_is_the_models_hooks() -> None:
    ours = {name: v for name, v in abi.EVENT_ENUMERATORS.items() if name.startswith("GUARD_HOOK_")}
    assert ours == header().enums["guard_hook"]
    assert header().enums["guard_hook"]["GUARD_HOOK_COUNT"] == abi.HOOK_COUNT


def test_the_telemetry_kinds_are_the_event_defines() -> None:
    ours = {name: v for name, v in abi.EVENT_ENUMERATORS.items() if name.startswith("GUARD_EVENT_")}
    theirs = {name: v for name, v in header().defines.items() if name.startswith("GUARD_EVENT_")}
    assert ours == theirs


# ------------------------------------------------------------------ defines


def test_every_define_is_mirrored_with_its_value() -> None:
    ours = constants()
    missing = {
        name: value
        for name, value in header().defines.items()
        if name not in UNMIRRORED and ours.get(name.removeprefix("GUARD_")) != value
    }
    assert missing == {}, "defines without an equal constant in guard/lsm/abi.py"


def test_every_constant_is_a_define_or_an_enum_count() -> None:
    counts = {"HOOK_COUNT"} | {count for _, _, count in ENUMS.values() if count is not None}
    defined = {name.removeprefix("GUARD_") for name in header().defines}
    assert set(constants()) - counts - defined == set(), "constants in guard/lsm/abi.py with no C define"
    assert set(UNMIRRORED) <= set(header().defines), "UNMIRRORED names a define the header lost"
