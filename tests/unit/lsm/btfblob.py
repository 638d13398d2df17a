"""A tiny BTF writer for tests: builds raw ``.BTF`` blobs type by type.

Every ``add_*`` method appends one type record and returns its type id (ids start
at 1; 0 is void). ``build()`` lays out header, type section and string section as
the kernel does (Documentation/bpf/btf.rst).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_FWD = 7
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_FUNC_PROTO = 13
KIND_VAR = 14
KIND_DATASEC = 15
KIND_FLOAT = 16
KIND_DECL_TAG = 17
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19

INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4

HEADER_LEN = 24

# (name, type_id, bit_offset, bitfield_size)
MemberSpec = tuple[str, int, int, int]


@dataclass
class _Type:
    kind: int
    name_off: int
    vlen: int
    kflag: bool
    size_or_type: int
    extra: list[int] = field(default_factory=list)


class BtfBuilder:
    def __init__(self) -> None:
        self._types: list[_Type] = []
        self._strings = bytearray(b"\0")
        self._string_offsets: dict[str, int] = {"": 0}

    # -- low level ---------------------------------------------------------------------------------------

    def string(self, name: str) -> int:
        off = self._string_offsets.get(name)
        if off is None:
            off = len(self._strings)
            self._strings += name.encode() + b"\0"
            self._string_offsets[name] = off
        return off

    def add_raw(
        self,
        kind: int,
        name: str = "",
        *,
        vlen: int = 0,
        kflag: bool = False,
        size_or_type: int = 0,
        extra: Iterable[int] = (),
        name_off: int | None = None,
    ) -> int:
        off = self.string(name) if name_off is None else name_off
        self._types.append(_Type(kind, off, vlen, kflag, size_or_type, list(extra)))
        return len(self._types)

    @property
    def type_count(self) -> int:
        return len(self._types)

    # -- kinds -------------------------------------------------------------------------------------------

    def add_int(
        self,
        name: str,
        size: int,
        *,
        signed: bool = False,
        char: bool = False,
        bool_: bool = False,
        bits: int | None = None,
        offset: int = 0,
    ) -> int:
        encoding = (INT_SIGNED if signed else 0) | (INT_CHAR if char else 0) | (INT_BOOL if bool_ else 0)
        nr_bits = size * 8 if bits is None else bits
        return self.add_raw(
            KIND_INT, name, size_or_type=size, extra=[encoding << 24 | offset << 16 | nr_bits]
        )

    def add_ptr(self, type_id: int) -> int:
        return self.add_raw(KIND_PTR, size_or_type=type_id)

    def add_array(self, elem: int, index: int, nelems: int) -> int:
        return self.add_raw(KIND_ARRAY, extra=[elem, index, nelems])

    def _composite(
        self, kind: int, name: str, size: int, members: Sequence[MemberSpec], kflag: bool | None
    ) -> int:
        if kflag is None:
            kflag = any(bitfield_size for _, _, _, bitfield_size in members)
        extra: list[int] = []
        for member_name, type_id, bit_offset, bitfield_size in members:
            offset = (bitfield_size << 24 | bit_offset) if kflag else bit_offset
            extra += [self.string(member_name), type_id, offset]
        return self.add_raw(kind, name, vlen=len(members), kflag=kflag, size_or_type=size, extra=extra)

    def add_struct(
        self, name: str, size: int, members: Sequence[MemberSpec] = (), *, kflag: bool | None = None
    ) -> int:
        return self._composite(KIND_STRUCT, name, size, members, kflag)

    def add_union(
        self, name: str, size: int, members: Sequence[MemberSpec] = (), *, kflag: bool | None = None
    ) -> int:
        return self._composite(KIND_UNION, name, size, members, kflag)

    def add_enum(
        self, name: str, size: int, values: Sequence[tuple[str, int]], *, signed: bool = False
    ) -> int:
        extra: list[int] = []
        for value_name, value in values:
            extra += [self.string(value_name), value & 0xFFFFFFFF]
        return self.add_raw(KIND_ENUM, name, vlen=len(values), kflag=signed, size_or_type=size, extra=extra)

    def add_enum64(
        self, name: str, size: int, values: Sequence[tuple[str, int]], *, signed: bool = False
    ) -> int:
        extra: list[int] = []
        for value_name, value in values:
            extra += [self.string(value_name), value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF]
        return self.add_raw(KIND_ENUM64, name, vlen=len(values), kflag=signed, size_or_type=size, extra=extra)

    def add_fwd(self, name: str, *, union: bool = False) -> int:
        return self.add_raw(KIND_FWD, name, kflag=union)

    def add_typedef(self, name: str, type_id: int) -> int:
        return self.add_raw(KIND_TYPEDEF, name, size_or_type=type_id)

    def add_volatile(self, type_id: int) -> int:
        return self.add_raw(KIND_VOLATILE, size_or_type=type_id)

    def add_const(self, type_id: int) -> int:
        return self.add_raw(KIND_CONST, size_or_type=type_id)

    def add_restrict(self, type_id: int) -> int:
        return self.add_raw(KIND_RESTRICT, size_or_type=type_id)

    def add_func_proto(
        self, ret: int, params: Sequence[tuple[str, int]] = (), *, variadic: bool = False
    ) -> int:
        extra: list[int] = []
        for param_name, type_id in params:
            extra += [self.string(param_name), type_id]
        if variadic:
            extra += [0, 0]
        return self.add_raw(KIND_FUNC_PROTO, vlen=len(extra) // 2, size_or_type=ret, extra=extra)

    def add_func(self, name: str, proto: int, *, linkage: int = 1) -> int:
        return self.add_raw(KIND_FUNC, name, vlen=linkage, size_or_type=proto)

    def add_var(self, name: str, type_id: int, *, linkage: int = 1) -> int:
        return self.add_raw(KIND_VAR, name, size_or_type=type_id, extra=[linkage])

    def add_datasec(self, name: str, size: int, variables: Sequence[tuple[int, int, int]]) -> int:
        extra: list[int] = []
        for var, offset, var_size in variables:
            extra += [var, offset, var_size]
        return self.add_raw(KIND_DATASEC, name, vlen=len(variables), size_or_type=size, extra=extra)

    def add_float(self, name: str, size: int) -> int:
        return self.add_raw(KIND_FLOAT, name, size_or_type=size)

    def add_decl_tag(self, name: str, type_id: int, component_idx: int = -1) -> int:
        return self.add_raw(KIND_DECL_TAG, name, size_or_type=type_id, extra=[component_idx & 0xFFFFFFFF])

    def add_type_tag(self, name: str, type_id: int) -> int:
        return self.add_raw(KIND_TYPE_TAG, name, size_or_type=type_id)

    # -- output ------------------------------------------------------------------------------------------

    def type_section(self, *, big_endian: bool = False) -> bytes:
        order = ">" if big_endian else "<"
        out = bytearray()
        for t in self._types:
            info = (int(t.kflag) << 31) | (t.kind & 0x1F) << 24 | (t.vlen & 0xFFFF)
            out += struct.pack(f"{order}III{len(t.extra)}I", t.name_off, info, t.size_or_type, *t.extra)
        return bytes(out)

    def build(self, *, big_endian: bool = False, version: int = 1, magic: int = 0xEB9F) -> bytes:
        order = ">" if big_endian else "<"
        types = self.type_section(big_endian=big_endian)
        strings = bytes(self._strings)
        header = struct.pack(
            f"{order}HBBIIIII", magic, version, 0, HEADER_LEN, 0, len(types), len(types), len(strings)
        )
        return header + types + strings
