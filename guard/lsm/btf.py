"""A pure-Python reader of the kernel's BTF (BPF Type Format) type information.

The agent reads ``/sys/kernel/btf/vmlinux`` at load time to compute struct member
offsets (handed to the BPF C sources as ``-D`` flags), type sizes and the
prototypes of the BPF-LSM hooks (``bpf_lsm_<hook>``), and to find the BTF id of a
hook's FUNC, which is the ``attach_btf_id`` of an LSM program.

The format is the raw ``.BTF`` blob described in the kernel's
``Documentation/bpf/btf.rst``: a ``struct btf_header`` (magic ``0xeB9F``, version 1,
flags, ``hdr_len``, then offset and length of the type and string sections, both
relative to the end of the header), the type section (a sequence of ``struct
btf_type`` records, each followed by kind-specific extra data) and the string
section (NUL-terminated names, starting with an empty string). Type id 0 is
``void``; the first record is type id 1. The byte order is the producer's and is
detected from the byte order of the magic.

Parsing is a single pass over the type section, read as an array of 32-bit words,
that records where each type record starts and checks every record against the
section bounds, the string table and the type id range; the name indexes are built
on the first lookup. Corrupt input raises :class:`~guard.errors.BtfError` with a
one-line message; a missing type, member or function raises
:class:`~guard.errors.BtfLookupError`.

Size: over 700 lines on purpose: one format's reader (header, every BTF kind, names, member offsets
through anonymous unions, prototypes), whose bounds checks belong beside the records they check.
"""

from __future__ import annotations

import enum
import os
import struct
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from guard.errors import BtfError, BtfLookupError

__all__ = [
    "DEFAULT_BTF_PATH",
    "Btf",
    "BtfKind",
    "FuncProto",
    "Member",
    "MemberOffset",
    "Param",
]

DEFAULT_BTF_PATH: Final = "/sys/kernel/btf/vmlinux"

_MAGIC: Final = 0xEB9F
_VERSION: Final = 1
_HEADER_LEN: Final = 24
_POINTER_SIZE: Final = 8
# Kernel's MAX_RESOLVE_DEPTH is 32; a longer chain of modifiers/pointers means a cycle.
_MAX_DEPTH: Final = 64

_WORD: Final = "I" if array("I").itemsize == 4 else "L"


class BtfKind(enum.IntEnum):
    """The kind of a BTF type record (``BTF_KIND_*``)."""

    UNKN = 0  # only type id 0, ``void``
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


_KIND_BY_VALUE: Final = tuple(BtfKind)  # values are 0..19 without gaps
assert all(kind == value for value, kind in enumerate(_KIND_BY_VALUE))  # noqa: S101

# Per kind: (fixed extra words, extra words per vlen item, vlen may be non-zero).
# FUNC keeps its linkage in vlen and has no extra data.
_LAYOUT: Final[dict[int, tuple[int, int, bool]]] = {
    BtfKind.INT: (1, 0, False),
    BtfKind.PTR: (0, 0, False),
    BtfKind.ARRAY: (3, 0, False),
    BtfKind.STRUCT: (0, 3, True),
    BtfKind.UNION: (0, 3, True),
    BtfKind.ENUM: (0, 2, True),
    BtfKind.FWD: (0, 0, False),
    BtfKind.TYPEDEF: (0, 0, False),
    BtfKind.VOLATILE: (0, 0, False),
    BtfKind.CONST: (0, 0, False),
    BtfKind.RESTRICT: (0, 0, False),
    BtfKind.FUNC: (0, 0, True),
    BtfKind.FUNC_PROTO: (0, 2, True),
    BtfKind.VAR: (1, 0, False),
    BtfKind.DATASEC: (0, 3, True),
    BtfKind.FLOAT: (0, 0, False),
    BtfKind.DECL_TAG: (1, 0, False),
    BtfKind.TYPE_TAG: (0, 0, False),
    BtfKind.ENUM64: (0, 3, True),
}

# Kinds whose size_or_type field is a type id.
_REF_KINDS: Final = frozenset(
    {
        BtfKind.PTR,
        BtfKind.TYPEDEF,
        BtfKind.VOLATILE,
        BtfKind.CONST,
        BtfKind.RESTRICT,
        BtfKind.FUNC,
        BtfKind.FUNC_PROTO,
        BtfKind.VAR,
        BtfKind.DECL_TAG,
        BtfKind.TYPE_TAG,
    }
)
# Modifiers that do not change layout; skipped when resolving a type.
_MODIFIERS: Final = frozenset(
    {BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG}
)
_QUALIFIERS: Final = {BtfKind.CONST: "const", BtfKind.VOLATILE: "volatile", BtfKind.RESTRICT: "restrict"}
_COMPOSITES: Final = frozenset({BtfKind.STRUCT, BtfKind.UNION})
_KIND_LABEL: Final = {
    BtfKind.FUNC: "function",
    BtfKind.FUNC_PROTO: "function prototype",
    BtfKind.DECL_TAG: "decl tag",
    BtfKind.TYPE_TAG: "type tag",
}
# Lookup order for a bare type name in type_size().
_BARE_SIZE_KINDS: Final = (
    BtfKind.STRUCT,
    BtfKind.UNION,
    BtfKind.TYPEDEF,
    BtfKind.INT,
    BtfKind.ENUM,
    BtfKind.ENUM64,
    BtfKind.FLOAT,
)
_PREFIXES: Final = {
    "struct": (BtfKind.STRUCT,),
    "union": (BtfKind.UNION,),
    "enum": (BtfKind.ENUM, BtfKind.ENUM64),
}


def _label(kind: BtfKind) -> str:
    return _KIND_LABEL.get(kind, kind.name.lower())


@dataclass(frozen=True, slots=True)
class Member:
    """One direct member of a struct or union; ``name`` is empty for an anonymous member."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0 when the member is not a bitfield


@dataclass(frozen=True, slots=True)
class MemberOffset:
    """Where a (possibly nested) member lives inside a struct or union."""

    struct: str  # bare name of the outer struct/union, e.g. "file"
    path: str  # dotted member path, e.g. "f_path.dentry"
    offset: int  # bytes from the start of the struct (bit_offset // 8)
    bit_offset: int  # bits from the start of the struct
    bitfield_size: int  # 0 when the member is not a bitfield
    size: int  # bytes of the member's resolved type
    type: str  # rendered C type, e.g. "struct dentry *"


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a function prototype; ``name`` is empty when BTF has none."""

    name: str
    type: str  # rendered C type; "..." for a variadic tail


@dataclass(frozen=True, slots=True)
class FuncProto:
    """A function's name, return type and parameters, as rendered C types."""

    name: str
    return_type: str
    params: tuple[Param, ...]

    def render(self) -> str:
        """Render as a C declaration, e.g. ``int bpf_lsm_file_open(struct file *file)``."""
        params = ", ".join(_declare(p.type, p.name) for p in self.params) or "void"
        if "(*)" in self.return_type:  # returns a function pointer: "void (*name(params))(int)"
            return self.return_type.replace("(*)", f"(*{self.name}({params}))", 1)
        return f"{_declare(self.return_type, self.name)}({params})"


def _declare(ctype: str, name: str) -> str:
    """Put ``name`` into the declarator of the rendered type ``ctype``."""
    if not name:
        return ctype
    if "(*)" in ctype:  # function pointer or pointer to array
        return ctype.replace("(*)", f"(*{name})", 1)
    bracket = ctype.find("[")
    if bracket >= 0:  # array: "char[16]" -> "char name[16]"
        return f"{ctype[:bracket]} {name}{ctype[bracket:]}"
    return f"{ctype}{name}" if ctype.endswith("*") else f"{ctype} {name}"


def _join(base: str, declarator: str) -> str:
    if not declarator:
        return base
    if declarator.startswith("["):
        return base + declarator
    return f"{base} {declarator}"


class Btf:
    """Parsed BTF type information of a kernel (or any raw ``.BTF`` blob)."""

    __slots__ = (
        "_by_name",
        "_kinds",
        "_names",
        "_starts",
        "_strings",
        "_words",
        "source",
    )

    source: str

    def __init__(
        self, words: array[int], strings: bytes, starts: array[int], kinds: bytes, source: str
    ) -> None:
        self._words = words
        self._strings = strings
        self._starts = starts  # word index of each type record; index 0 is a placeholder for void
        self._kinds = kinds  # kind of each type; index 0 is UNKN (void)
        self._names: dict[int, str] = {}
        self._by_name: dict[tuple[int, str], int] | None = None
        self.source = source

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] = DEFAULT_BTF_PATH) -> Btf:
        """Read and parse a raw BTF file such as ``/sys/kernel/btf/vmlinux``."""
        source = os.fspath(path)
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise BtfError(f"cannot read BTF: {exc.strerror or exc}", path=source) from exc
        return cls.from_bytes(data, source=source)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> Btf:
        """Parse a raw BTF blob held in memory."""
        return _parse(bytes(data), source)

    # -- basic accessors ----------------------------------------------------------------------------------

    @property
    def type_count(self) -> int:
        """Number of type records; valid type ids are 1..type_count (0 is void)."""
        return len(self._starts) - 1

    def _fail(self, message: str) -> BtfError:
        return BtfError(message, path=self.source)

    def _lookup_fail(self, message: str) -> BtfLookupError:
        return BtfLookupError(message, path=self.source)

    def _check_id(self, type_id: int) -> None:
        if not 0 <= type_id < len(self._starts):
            raise self._lookup_fail(f"no type id {type_id} in BTF (ids are 0..{self.type_count})")

    def _kind(self, type_id: int) -> BtfKind:
        return _KIND_BY_VALUE[self._kinds[type_id]]

    def _vlen(self, type_id: int) -> int:
        return self._words[self._starts[type_id] + 1] & 0xFFFF

    def _kflag(self, type_id: int) -> bool:
        return bool(self._words[self._starts[type_id] + 1] >> 31)

    def _size_or_type(self, type_id: int) -> int:
        return self._words[self._starts[type_id] + 2]

    def _extra(self, type_id: int) -> int:
        return self._starts[type_id] + 3

    def _string(self, offset: int) -> str:
        name = self._names.get(offset)
        if name is None:
            end = self._strings.find(b"\0", offset)
            if offset >= len(self._strings) or end < 0:
                raise self._fail(
                    f"string offset {offset} out of range (string section is {len(self._strings)} bytes)"
                )
            try:
                name = self._strings[offset:end].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._fail(f"string at offset {offset} is not valid UTF-8") from exc
            self._names[offset] = name
        return name

    def kind_of(self, type_id: int) -> BtfKind:
        """Return the kind of a type id (``BtfKind.UNKN`` for 0, void)."""
        self._check_id(type_id)
        return self._kind(type_id)

    def name_of(self, type_id: int) -> str:
        """Return the name of a type id; empty for anonymous types, ``"void"`` for 0."""
        self._check_id(type_id)
        if type_id == 0:
            return "void"
        return self._string(self._words[self._starts[type_id]])

    # -- name lookup --------------------------------------------------------------------------------------

    def _index(self) -> dict[tuple[int, str], int]:
        index = self._by_name
        if index is None:
            index = {}
            words, starts, kinds, string = self._words, self._starts, self._kinds, self._string
            for type_id in range(1, len(starts)):
                name_off = words[starts[type_id]]
                if name_off:
                    index.setdefault((kinds[type_id], string(name_off)), type_id)
            self._by_name = index
        return index

    def _find(self, name: str, kind: BtfKind) -> int | None:
        return self._index().get((int(kind), name))

    def find(self, name: str, kind: BtfKind) -> int:
        """Return the id of the first type of ``kind`` named ``name``."""
        type_id = self._find(name, kind)
        if type_id is None:
            raise self._lookup_fail(f"no {_label(kind)} '{name}' in BTF")
        return type_id

    def _named(self, name: str, default_kinds: tuple[BtfKind, ...], what: str) -> int:
        """Resolve "struct x", "union x", "enum x" or a bare name tried against ``default_kinds``."""
        name = " ".join(name.split())
        prefix, _, rest = name.partition(" ")
        kinds = _PREFIXES.get(prefix)
        if kinds is not None and rest:
            name, what = rest, prefix
        else:
            kinds = default_kinds
        for kind in kinds:
            type_id = self._find(name, kind)
            if type_id is not None:
                return type_id
        raise self._lookup_fail(f"no {what} '{name}' in BTF")

    # -- resolution ---------------------------------------------------------------------------------------

    def _skip_modifiers(self, type_id: int) -> int:
        for _ in range(_MAX_DEPTH):
            if self._kind(type_id) not in _MODIFIERS:
                return type_id
            type_id = self._size_or_type(type_id)
        raise self._fail(f"type chain too deep at type id {type_id} (cycle?)")

    def _size_of(self, type_id: int, depth: int = 0) -> int:
        if depth > _MAX_DEPTH:
            raise self._fail(f"type chain too deep at type id {type_id} (cycle?)")
        type_id = self._skip_modifiers(type_id)
        kind = self._kind(type_id)
        if kind in (
            BtfKind.INT,
            BtfKind.STRUCT,
            BtfKind.UNION,
            BtfKind.ENUM,
            BtfKind.ENUM64,
            BtfKind.FLOAT,
            BtfKind.DATASEC,
        ):
            return self._size_or_type(type_id)
        if kind is BtfKind.PTR:
            return _POINTER_SIZE
        if kind is BtfKind.ARRAY:
            extra = self._extra(type_id)
            return self._words[extra + 2] * self._size_of(self._words[extra], depth + 1)
        if kind is BtfKind.VAR:
            return self._size_of(self._size_or_type(type_id), depth + 1)
        raise self._lookup_fail(f"{self.render_type(type_id)} (type id {type_id}) has no size")

    def type_size(self, name: str) -> int:
        """Return the size in bytes of a named type ("struct file", "file", "u32", "struct file *")."""
        stripped = name.strip()
        if stripped.endswith("*"):
            return _POINTER_SIZE
        return self._size_of(self._named(stripped, _BARE_SIZE_KINDS, "type"))

    # -- members ------------------------------------------------------------------------------------------

    def _members(self, type_id: int) -> tuple[Member, ...]:
        words = self._words
        kflag = self._kflag(type_id)
        first = self._extra(type_id)
        result = []
        for pos in range(first, first + 3 * self._vlen(type_id), 3):
            name_off, member_type, offset = words[pos], words[pos + 1], words[pos + 2]
            if kflag:
                bit_offset, bitfield_size = offset & 0xFFFFFF, offset >> 24
            else:
                bit_offset, bitfield_size = offset, 0
                # Old-style bitfield: the member's INT type carries bit size and offset.
                base = self._skip_modifiers(member_type)
                if self._kind(base) is BtfKind.INT:
                    encoding = words[self._extra(base)]
                    nr_bits, int_offset = encoding & 0xFF, (encoding >> 16) & 0xFF
                    if int_offset or nr_bits != 8 * self._size_or_type(base):
                        bit_offset += int_offset
                        bitfield_size = nr_bits
            result.append(Member(self._string(name_off), member_type, bit_offset, bitfield_size))
        return tuple(result)

    def _composite(self, struct: str) -> int:
        type_id = self._named(struct, (BtfKind.STRUCT, BtfKind.UNION, BtfKind.TYPEDEF), "struct or union")
        resolved = self._skip_modifiers(type_id)
        if self._kind(resolved) not in _COMPOSITES:
            raise self._lookup_fail(f"'{struct}' is not a struct or union ({self.render_type(type_id)})")
        return resolved

    def members(self, struct: str) -> tuple[Member, ...]:
        """Return the direct members of a struct or union ("file", "struct file", "union x")."""
        return self._members(self._composite(struct))

    def members_of(self, type_id: int) -> tuple[Member, ...]:
        """Return the direct members of the struct or union with this type id."""
        self._check_id(type_id)
        if self._kind(type_id) not in _COMPOSITES:
            raise self._lookup_fail(
                f"type id {type_id} is not a struct or union ({self.render_type(type_id)})"
            )
        return self._members(type_id)

    def _find_member(self, type_id: int, name: str, depth: int = 0) -> tuple[Member, int] | None:
        """Find ``name`` among the members of ``type_id``, looking into anonymous members."""
        if depth > _MAX_DEPTH:
            raise self._fail(f"anonymous members nested too deep at type id {type_id} (cycle?)")
        members = self._members(type_id)
        for member in members:
            if member.name == name:
                return member, member.bit_offset
        for member in members:
            if member.name:
                continue
            inner = self._skip_modifiers(member.type_id)
            if self._kind(inner) in _COMPOSITES:
                found = self._find_member(inner, name, depth + 1)
                if found is not None:
                    return found[0], member.bit_offset + found[1]
        return None

    def member_offset(self, struct: str, path: str) -> MemberOffset:
        """Locate the member at dotted ``path`` (e.g. "f_path.dentry") inside ``struct``."""
        outer = self._composite(struct)
        steps = path.split(".")
        if not path or any(not step.strip() for step in steps):
            raise self._lookup_fail(f"bad member path '{path}'")
        current = outer
        bits = 0
        member: Member | None = None
        walked: list[str] = []
        for step in (s.strip() for s in steps):
            if member is not None:
                current = self._skip_modifiers(member.type_id)
                kind = self._kind(current)
                where = ".".join(walked)
                if kind is BtfKind.PTR:
                    raise self._lookup_fail(
                        f"cannot reach '{path}' in {self.render_type(outer)}: '{where}' is a pointer "
                        f"({self.render_type(member.type_id)}); offsets do not follow pointers"
                    )
                if kind not in _COMPOSITES:
                    raise self._lookup_fail(
                        f"cannot reach '{path}' in {self.render_type(outer)}: '{where}' is not a struct or "
                        f"union ({self.render_type(member.type_id)})"
                    )
            found = self._find_member(current, step)
            if found is None:
                raise self._lookup_fail(f"{self.render_type(current)} has no member '{step}'")
            member, offset = found
            bits += offset
            walked.append(step)
        assert member is not None  # noqa: S101 - path has at least one step
        return MemberOffset(
            struct=self.name_of(outer),
            path=".".join(walked),
            offset=bits // 8,
            bit_offset=bits,
            bitfield_size=member.bitfield_size,
            size=self._size_of(member.type_id),
            type=self.render_type(member.type_id),
        )

    def offsetof(self, struct: str, path: str) -> int:
        """Return the byte offset of a member; a bitfield that is not byte aligned is an error."""
        located = self.member_offset(struct, path)
        if located.bit_offset % 8:
            raise self._lookup_fail(
                f"{struct}.{path} is a bitfield at bit {located.bit_offset} (not byte aligned); "
                "use member_offset() for its bit offset"
            )
        return located.offset

    # -- rendering ----------------------------------------------------------------------------------------

    def render_type(self, type_id: int) -> str:
        """Render a type id as C ("struct file *", "const char *", "char[16]", "void (*)(int)")."""
        self._check_id(type_id)
        return self._declarator(type_id, "", 0)

    def _declarator(self, type_id: int, inner: str, depth: int) -> str:
        if depth > _MAX_DEPTH:
            raise self._fail(f"type chain too deep at type id {type_id} (cycle?)")
        depth += 1
        kind = self._kind(type_id)
        if kind is BtfKind.UNKN:
            return _join("void", inner)
        name = self._string(self._words[self._starts[type_id]])
        if kind in (BtfKind.INT, BtfKind.FLOAT, BtfKind.TYPEDEF):
            return _join(name, inner)
        if kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FWD):
            if kind is BtfKind.FWD:
                keyword = "union" if self._kflag(type_id) else "struct"
            else:
                keyword = "enum" if kind is BtfKind.ENUM64 else kind.name.lower()
            return _join(f"{keyword} {name or '{...}'}", inner)
        target = self._size_or_type(type_id)
        if kind is BtfKind.PTR:
            if self._kind(self._skip_tags(target)) in (BtfKind.ARRAY, BtfKind.FUNC_PROTO):
                return self._declarator(target, f"(*{inner})", depth)
            return self._declarator(target, f"*{inner}", depth)
        if kind in _QUALIFIERS:
            qualifier = _QUALIFIERS[kind]
            if self._kind(self._skip_tags(target)) is BtfKind.PTR:
                return self._declarator(target, f"{qualifier} {inner}" if inner else qualifier, depth)
            return f"{qualifier} {self._declarator(target, inner, depth)}"
        if kind is BtfKind.TYPE_TAG:  # e.g. __rcu, __user: not part of the C type
            return self._declarator(target, inner, depth)
        if kind is BtfKind.ARRAY:
            extra = self._extra(type_id)
            return self._declarator(self._words[extra], f"{inner}[{self._words[extra + 2]}]", depth)
        if kind is BtfKind.FUNC_PROTO:
            params = ", ".join(p.type for p in self._params(type_id, depth)) or "void"
            return self._declarator(target, f"{inner}({params})", depth)
        if kind is BtfKind.FUNC:
            return self._declarator(target, f"{name}{inner}", depth)
        # VAR, DATASEC, DECL_TAG: no C type of their own; show the name.
        return _join(name, inner)

    def _skip_tags(self, type_id: int) -> int:
        for _ in range(_MAX_DEPTH):
            if self._kind(type_id) is not BtfKind.TYPE_TAG:
                return type_id
            type_id = self._size_or_type(type_id)
        raise self._fail(f"type chain too deep at type id {type_id} (cycle?)")

    def _params(self, proto_id: int, depth: int = 0) -> tuple[Param, ...]:
        words = self._words
        first = self._extra(proto_id)
        vlen = self._vlen(proto_id)
        params = []
        for index, pos in enumerate(range(first, first + 2 * vlen, 2)):
            name_off, param_type = words[pos], words[pos + 1]
            if param_type == 0 and index == vlen - 1:  # variadic tail: name 0, type 0
                params.append(Param("", "..."))
            else:
                params.append(Param(self._string(name_off), self._declarator(param_type, "", depth + 1)))
        return tuple(params)

    # -- functions ----------------------------------------------------------------------------------------

    def func_id(self, func_name: str) -> int:
        """Return the BTF id of the FUNC ``func_name`` (the ``attach_btf_id`` of an LSM program)."""
        return self.find(func_name, BtfKind.FUNC)

    def func_proto(self, func_name: str) -> FuncProto:
        """Return the prototype of the FUNC ``func_name``."""
        func = self.func_id(func_name)
        proto = self._size_or_type(func)
        if self._kind(proto) is not BtfKind.FUNC_PROTO:
            raise self._fail(
                f"function '{func_name}' (type id {func}) points at a {_label(self._kind(proto))}, "
                "not a function prototype"
            )
        return FuncProto(
            name=func_name,
            return_type=self._declarator(self._size_or_type(proto), "", 0),
            params=self._params(proto),
        )

    def lsm_hook(self, hook: str) -> FuncProto:
        """Return the prototype of the BPF-LSM hook ``hook`` (the FUNC ``bpf_lsm_<hook>``)."""
        func_name = f"bpf_lsm_{hook}"
        if self._find(func_name, BtfKind.FUNC) is None:
            raise self._lookup_fail(f"no LSM hook '{hook}' ({func_name} not in BTF)")
        return self.func_proto(func_name)

    def __repr__(self) -> str:
        return f"<Btf {self.source} types={self.type_count}>"


def _parse(data: bytes, source: str) -> Btf:
    def fail(message: str) -> BtfError:
        return BtfError(message, path=source)

    if len(data) < _HEADER_LEN:
        what = "empty" if not data else f"only {len(data)} bytes"
        raise fail(f"not a BTF blob: {what}, shorter than the {_HEADER_LEN}-byte header")
    magic_bytes = data[:2]
    if magic_bytes == b"\x9f\xeb":
        order = "<"
    elif magic_bytes == b"\xeb\x9f":
        order = ">"
    else:
        raise fail(f"not a BTF blob: bad magic 0x{magic_bytes.hex()} (want 0xeb9f)")
    _magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        order + "HBBIIIII", data
    )
    if version != _VERSION:
        raise fail(f"unsupported BTF version {version} (only version {_VERSION} is understood)")
    if hdr_len < _HEADER_LEN or hdr_len > len(data):
        raise fail(f"header length {hdr_len} out of bounds (blob is {len(data)} bytes)")
    body = len(data) - hdr_len
    if type_off + type_len > body:
        raise fail(f"type section [{type_off}, +{type_len}) out of bounds ({body} bytes after the header)")
    if str_off + str_len > body:
        raise fail(f"string section [{str_off}, +{str_len}) out of bounds ({body} bytes after the header)")
    if type_len % 4:
        raise fail(f"truncated type record: type section length {type_len} is not a multiple of 4")
    strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
    if not strings or strings[0] != 0 or strings[-1] != 0:
        raise fail("string section must start with an empty string and end with a NUL byte")

    words: array[int] = array(_WORD)
    words.frombytes(data[hdr_len + type_off : hdr_len + type_off + type_len])
    if (order == "<") != (sys.byteorder == "little"):
        words.byteswap()
    starts, kinds = _scan(words, str_len, fail)
    return Btf(words, strings, starts, kinds, source)


def _scan(words: array[int], str_len: int, fail: Callable[[str], BtfError]) -> tuple[array[int], bytes]:
    """One pass over the type section: record each type's start and kind, and check its references."""
    layout = _LAYOUT
    ref_kinds = _REF_KINDS
    starts: array[int] = array(_WORD, [0])
    kinds = bytearray(1)
    total = len(words)
    max_ref = 0
    max_ref_id = 0
    pos = 0
    type_id = 0
    while pos < total:
        type_id += 1
        if pos + 3 > total:
            raise fail(f"truncated type record at type id {type_id}")
        name_off = words[pos]
        info = words[pos + 1]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        shape = layout.get(kind)
        if shape is None:
            raise fail(f"unknown kind {kind} at type id {type_id}")
        fixed, per_item, has_vlen = shape
        if vlen and not has_vlen:
            raise fail(f"{BtfKind(kind).name} type id {type_id} has vlen {vlen} (must be 0)")
        if name_off >= str_len:
            raise fail(
                f"string offset {name_off} out of range at type id {type_id} "
                f"(string section is {str_len} bytes)"
            )
        first = pos + 3
        end = first + fixed + per_item * vlen
        if end > total:
            raise fail(f"truncated type record at type id {type_id} ({BtfKind(kind).name}, vlen {vlen})")
        if kind in ref_kinds:
            ref = words[pos + 2]
            if ref > max_ref:
                max_ref, max_ref_id = ref, type_id
        if vlen:
            if kind == BtfKind.STRUCT or kind == BtfKind.UNION or kind == BtfKind.FUNC_PROTO:
                if max(words[first:end:per_item]) >= str_len:
                    raise fail(f"string offset out of range in a member of type id {type_id}")
                ref = max(words[first + 1 : end : per_item])
                if ref > max_ref:
                    max_ref, max_ref_id = ref, type_id
            elif kind == BtfKind.ENUM or kind == BtfKind.ENUM64:
                if max(words[first:end:per_item]) >= str_len:
                    raise fail(f"string offset out of range in an enumerator of type id {type_id}")
            elif kind == BtfKind.DATASEC:
                ref = max(words[first:end:3])
                if ref > max_ref:
                    max_ref, max_ref_id = ref, type_id
        elif kind == BtfKind.ARRAY:
            ref = max(words[first], words[first + 1])
            if ref > max_ref:
                max_ref, max_ref_id = ref, type_id
        starts.append(pos)
        kinds.append(kind)
        pos = end
    if max_ref > type_id:
        raise fail(f"type id {max_ref_id} refers to type id {max_ref}, but there are only {type_id} types")
    return starts, bytes(kinds)
