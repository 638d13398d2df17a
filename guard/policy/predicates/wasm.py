"""The Wasm predicate runtime: a lowered condition compiled to one WAT module, run by wasmtime.

:class:`WasmBackend` turns a :data:`~guard.policy.predicates.abi.PExpr` into the text of one
WebAssembly module (kept as :attr:`WasmPredicate.source`), compiled once. A batch is decided by
one call of its exported ``run(n)``: the host packs the batch into linear memory with bulk
byte operations and a single write, the module walks the ``n`` events and sets bit ``i`` of a
result bitmap when the condition is True for event ``i`` (truth is three-valued inside: an i32
0 false, 1 true, 2 null), and the host reads the bitmap back as one Python int. Every leaf is
decided inside the module: strings are UTF-8 (``surrogatepass``, so a lone surrogate is one code
point too), whose byte order is code-point order; ``?`` in a wildcard skips one whole code point;
case-insensitive leaves fold ASCII ``A-Z`` only (their columns are ASCII, see :mod:`.abi`).

Memory layout (one memory, created by the host and imported as ``env.memory``; little-endian)::

    [0, 65536)            reserved for user modules (their data segments, stack, scratch)
    [65536, HDR)          the generated module's literals (an active data segment)
    HDR = align8(65536 + len(literals)), the batch, written by the host in one write:
      header              u32 per slot: result, then per column tags, nums, offsets, data,
                          then per host column its tri-state bytes (absent buffers: 0)
      result bitmap       ceil(n / 64) * 8 bytes, zero; bit i (byte i >> 3, bit i & 7)
      per column          tags    n bytes: 0 null, 1 str, 2 int, 3 float, 4 bool
                          nums    n * 8 bytes, when the column has a numeric kind: i64 for int
                                  and bool (0/1), the f64 bits for float, 0 otherwise
                          offsets (n + 1) u32, when the column has the str kind: value i is
                                  data[offsets[i]:offsets[i + 1]] (null and non-str: empty)
                          data    the UTF-8 bytes of the column's strings, concatenated
      per host column     n bytes: 0 false, 1 true, 2 null
    every buffer starts on an 8-byte boundary; memory grows (up to the budget) to fit a batch.

User modules (``wasm:fn(...)`` in a rule; ``.wat`` text or ``.wasm`` binary beside the policy):

- The only import a module may declare is ``env.memory`` (the memory above, shared, so a string
  argument is read in place); it must not define a memory of its own (the memory cap is for the
  whole predicate). Its data and scratch belong in ``[0, 65536)``.
- ``fn`` is the export of that name; exactly one wasm module beside the policy may export it.
- Arguments map in order onto the declared parameters: a string (a str literal, or a column whose
  kinds include str) takes two, ``(i32 ptr, i32 len)`` of its UTF-8 bytes; any other argument
  takes one, whose declared type says what it accepts: ``i64`` an int, ``f64`` a float or an int
  (converted), ``i32`` a bool (0/1). A null argument is passed as the zero of its parameters
  (``ptr 0, len 0``, ``0``, ``0.0``); a column value of a kind the parameter does not accept
  makes the call's truth null without calling. A literal the parameter cannot take, a count of
  parameters that differs, or a result other than one ``i32``/``i64``/``f64`` is a ``PolicyError``.
- The result: an ``i32`` is a boolean (non-zero true); it is the truth when the rule has no
  comparison. An ``i64`` or ``f64`` is a number compared with ``op value`` (i64 with an int value
  exactly, otherwise as f64). A boolean compared, a number without a comparison, or a comparison
  with null is null (the function is still called).
- Calls run inside the batch call: the same fuel, stack and memory budget.

Wildcards: a pattern without wildcards is an equality; otherwise its literal head (before the
first ``*``) and tail (after the last) are checked as prefix and suffix first, ``*lit*`` between
them is a substring search, and what remains goes to a two-pointer glob whose only backtrack point
is the last ``*`` (O(len(value) * len(pattern)), never exponential).

Budgets and traps: fuel is set to :meth:`Budget.for_batch` before each call, plus
:data:`SCAN_FUEL` per (value byte + 1) x (pattern byte + 1) of every string leaf: the generated code
burns fuel too (a glob or a substring search up to ~46 units per such pair), and a value of many KiB
must be decided, not trapped into the rule's fail mode by its own length; the native stack is
``budget.max_stack``; the memory is capped at ``budget.memory_bytes`` (``memory.grow`` past it
returns -1). A trap is raised as
:class:`PredicateTrap` with kind ``fuel`` (fuel exhausted), ``stack`` (stack overflow),
``memory`` (an access out of bounds, an allocation too large, a batch that does not fit the cap)
or ``error`` (anything else); the predicate is re-instantiated before its next batch.

Exactness: an int column value compares with an int literal exactly (i64); a float value with an
int literal, and a user ``f64`` result with an int value, as f64 (inexact past 2**53).

Size: over 700 lines on purpose: one runtime — the WAT generator with its string, wildcard and
folding routines, the batch packer that lays out the memory those routines read, and the module
limits — which share one memory layout.
"""

from __future__ import annotations

import atexit
import re
import struct
import weakref
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final, TypeVar, cast

import wasmtime

from guard.errors import PolicyError, PredicateTrap
from guard.policy.predicates.abi import (
    Budget,
    ColumnSpec,
    HostColumn,
    NativeValue,
    PAffix,
    PAnd,
    PCompare,
    PConst,
    PExpr,
    PHost,
    PIn,
    PNot,
    POr,
    PUser,
    PWildcard,
    UserModule,
)

__all__ = ["WasmBackend", "WasmPredicate"]

_Owned = TypeVar("_Owned", wasmtime.Store, wasmtime.Linker, wasmtime.Module, wasmtime.Engine)
#: every wasmtime object this module created and that is still alive, closed at exit (stores and
#: linkers first) while wasmtime's FFI still exists: its finalizers cannot run after that
_LIVE: Final[weakref.WeakValueDictionary[int, Any]] = weakref.WeakValueDictionary()
_ORDER: Final = {wasmtime.Store: 0, wasmtime.Linker: 1, wasmtime.Module: 2, wasmtime.Engine: 3}


def _track(obj: _Owned) -> _Owned:
    _LIVE[id(obj)] = obj
    return obj


@atexit.register
def _close_all() -> None:
    for obj in sorted(list(_LIVE.values()), key=lambda o: _ORDER.get(type(o), 9)):
        obj.close()


PAGE: Final = 65536
USER_AREA: Final = 65536  # [0, USER_AREA) belongs to user modules
LIT_BASE: Final = USER_AREA
I64_MIN: Final = -(2**63)
I64_MAX: Final = 2**63 - 1

T_NULL, T_STR, T_INT, T_FLOAT, T_BOOL = 0, 1, 2, 3, 4
_TAG: Final[dict[type, int]] = {type(None): T_NULL, str: T_STR, int: T_INT, float: T_FLOAT, bool: T_BOOL}
_KIND_TAG: Final = {"str": T_STR, "int": T_INT, "float": T_FLOAT, "bool": T_BOOL}
_NUMFMT: Final[dict[type, str]] = {type(None): "q", str: "q", int: "q", float: "d", bool: "q"}
_HOST: Final[dict[bool | None, int]] = {False: 0, True: 1, None: 2}
_NUM_KINDS: Final = frozenset({"int", "float", "bool"})
#: fuel per step of the built-in string routines: one (value byte, pattern byte) pair of a glob or a
#: substring search costs at most ~46 units (measured on their worst cases); the margin covers the rest
SCAN_FUEL: Final = 64


def _utf8_bound(s: str) -> int:
    """Return an upper bound of ``s``'s UTF-8 size (exact for ASCII; surrogates count too)."""
    return len(s) if s.isascii() else 4 * len(s)


def _scan_weights(e: PExpr, weights: dict[int, int]) -> None:
    """Add, per column, the pattern bytes (+1 each) the condition's string leaves match it against."""
    if isinstance(e, PAnd | POr):
        for term in e.terms:
            _scan_weights(term, weights)
    elif isinstance(e, PNot):
        _scan_weights(e.expr, weights)
    elif isinstance(e, PWildcard):
        weights[e.col] = weights.get(e.col, 0) + sum(_utf8_bound(p) + 1 for p in e.patterns)
    elif isinstance(e, PAffix) or (isinstance(e, PCompare) and isinstance(e.value, str)):
        weights[e.col] = weights.get(e.col, 0) + _utf8_bound(str(e.value)) + 1
    elif isinstance(e, PIn):
        texts = [v for v in e.values if isinstance(v, str)]
        weights[e.col] = weights.get(e.col, 0) + sum(_utf8_bound(v) + 1 for v in texts)


def _scan_fuel(columns: Sequence[Sequence[NativeValue]], weights: Mapping[int, int]) -> int:
    """Return the fuel the built-in string routines may need on these values: O(bytes x pattern)."""
    total = 0
    for col, weight in weights.items():
        size = 0
        for v in columns[col]:
            if type(v) is str:
                size += _utf8_bound(v) + 1
        total += size * weight
    return SCAN_FUEL * total


_I64_OP: Final = {"==": "eq", "!=": "ne", "<": "lt_s", "<=": "le_s", ">": "gt_s", ">=": "ge_s"}
_F64_OP: Final = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_CMP_OP: Final = {"<": "i32.lt_s", "<=": "i32.le_s", ">": "i32.gt_s", ">=": "i32.ge_s"}
_NAME: Final = re.compile(r"[^A-Za-z0-9_.]")

TRUE, FALSE, NULL = "(i32.const 1)", "(i32.const 0)", "(i32.const 2)"

# Byte-level helpers every generated module carries. Strings are (ptr, len) in linear memory.
_HELPERS: Final = """
  (func $fold (param $b i32) (result i32)
    (select (i32.or (local.get $b) (i32.const 32)) (local.get $b)
            (i32.lt_u (i32.sub (local.get $b) (i32.const 65)) (i32.const 26))))
  (func $not (param $t i32) (result i32)
    (select (i32.const 2) (i32.xor (local.get $t) (i32.const 1)) (i32.eq (local.get $t) (i32.const 2))))
  ;; the first n bytes at a (folded when ci) equal the n bytes at b
  (func $memeq (param $a i32) (param $b i32) (param $n i32) (param $ci i32) (result i32)
    (local $k i32) (local $x i32)
    (if (i32.eqz (local.get $ci)) (then
      (block $done8 (loop $l8
        (br_if $done8 (i32.gt_u (i32.add (local.get $k) (i32.const 8)) (local.get $n)))
        (if (i64.ne (i64.load (i32.add (local.get $a) (local.get $k)))
                    (i64.load (i32.add (local.get $b) (local.get $k))))
          (then (return (i32.const 0))))
        (local.set $k (i32.add (local.get $k) (i32.const 8)))
        (br $l8)))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $k) (local.get $n)))
      (local.set $x (i32.load8_u (i32.add (local.get $a) (local.get $k))))
      (if (local.get $ci) (then (local.set $x (call $fold (local.get $x)))))
      (if (i32.ne (local.get $x) (i32.load8_u (i32.add (local.get $b) (local.get $k))))
        (then (return (i32.const 0))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $l)))
    (i32.const 1))
  (func $eq (param $v i32) (param $vl i32) (param $s i32) (param $sl i32) (param $ci i32) (result i32)
    (if (result i32) (i32.ne (local.get $vl) (local.get $sl))
      (then (i32.const 0))
      (else (call $memeq (local.get $v) (local.get $s) (local.get $sl) (local.get $ci)))))
  ;; -1, 0, 1: the byte strings compared (UTF-8: code-point order)
  (func $cmp (param $a i32) (param $al i32) (param $b i32) (param $bl i32) (result i32)
    (local $k i32) (local $m i32) (local $x i32) (local $y i32)
    (local.set $m (select (local.get $al) (local.get $bl) (i32.lt_u (local.get $al) (local.get $bl))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $k) (local.get $m)))
      (local.set $x (i32.load8_u (i32.add (local.get $a) (local.get $k))))
      (local.set $y (i32.load8_u (i32.add (local.get $b) (local.get $k))))
      (if (i32.ne (local.get $x) (local.get $y))
        (then (return (select (i32.const -1) (i32.const 1) (i32.lt_u (local.get $x) (local.get $y))))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $l)))
    (i32.sub (i32.gt_u (local.get $al) (local.get $bl)) (i32.lt_u (local.get $al) (local.get $bl))))
  (func $starts (param $v i32) (param $vl i32) (param $s i32) (param $sl i32) (param $ci i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $sl) (local.get $vl))
      (then (i32.const 0))
      (else (call $memeq (local.get $v) (local.get $s) (local.get $sl) (local.get $ci)))))
  (func $ends (param $v i32) (param $vl i32) (param $s i32) (param $sl i32) (param $ci i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $sl) (local.get $vl))
      (then (i32.const 0))
      (else (call $memeq (i32.sub (i32.add (local.get $v) (local.get $vl)) (local.get $sl))
                         (local.get $s) (local.get $sl) (local.get $ci)))))
  (func $contains (param $v i32) (param $vl i32) (param $s i32) (param $sl i32) (param $ci i32) (result i32)
    (local $j i32) (local $last i32) (local $first i32) (local $x i32)
    (if (i32.or (i32.eqz (local.get $sl)) (i32.gt_u (local.get $sl) (local.get $vl)))
      (then (return (i32.const 0))))
    (local.set $last (i32.sub (local.get $vl) (local.get $sl)))
    (local.set $first (i32.load8_u (local.get $s)))
    (block $done (loop $l
      (br_if $done (i32.gt_u (local.get $j) (local.get $last)))
      ;; the first byte inline, the rest only where it matches
      (local.set $x (i32.load8_u (i32.add (local.get $v) (local.get $j))))
      (if (local.get $ci) (then (local.set $x (call $fold (local.get $x)))))
      (if (i32.eq (local.get $x) (local.get $first))
        (then (if (call $memeq (i32.add (local.get $v) (local.get $j))
                               (local.get $s) (local.get $sl) (local.get $ci))
          (then (return (i32.const 1))))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $l)))
    (i32.const 0))
  ;; the index after the code point starting at i (UTF-8: skip continuation bytes)
  (func $next (param $v i32) (param $i i32) (param $vl i32) (result i32)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $vl)))
      (br_if $done (i32.ne (i32.and (i32.load8_u (i32.add (local.get $v) (local.get $i))) (i32.const 192))
                           (i32.const 128)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $i))
  ;; EQL wildcard, anchored: '*' any run of code points, '?' one code point. Two pointers with
  ;; the last star as the only backtrack point: O(len(v) * len(p)), never exponential.
  (func $glob (param $v i32) (param $vl i32) (param $p i32) (param $pl i32) (param $ci i32) (result i32)
    (local $vi i32) (local $pi i32) (local $star i32) (local $mark i32) (local $c i32) (local $x i32)
    (local.set $star (i32.const -1))
    (loop $l
      (block $mismatch
        (if (i32.lt_u (local.get $pi) (local.get $pl))
          (then
            (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $pi))))
            (if (i32.eq (local.get $c) (i32.const 42))
              (then
                (local.set $star (local.get $pi))
                (local.set $pi (i32.add (local.get $pi) (i32.const 1)))
                (if (i32.eq (local.get $pi) (local.get $pl)) (then (return (i32.const 1))))
                (local.set $mark (local.get $vi))
                (br $l)))
            (br_if $mismatch (i32.ge_u (local.get $vi) (local.get $vl)))
            (if (i32.eq (local.get $c) (i32.const 63))
              (then
                (local.set $vi (call $next (local.get $v) (local.get $vi) (local.get $vl)))
                (local.set $pi (i32.add (local.get $pi) (i32.const 1)))
                (br $l)))
            (local.set $x (i32.load8_u (i32.add (local.get $v) (local.get $vi))))
            (if (local.get $ci) (then (local.set $x (call $fold (local.get $x)))))
            (br_if $mismatch (i32.ne (local.get $x) (local.get $c)))
            (local.set $vi (i32.add (local.get $vi) (i32.const 1)))
            (local.set $pi (i32.add (local.get $pi) (i32.const 1)))
            (br $l))
          (else
            (if (i32.eq (local.get $vi) (local.get $vl)) (then (return (i32.const 1)))))))
      ;; mismatch: let the last star take one more code point, or fail
      (if (i32.lt_s (local.get $star) (i32.const 0)) (then (return (i32.const 0))))
      (if (i32.ge_u (local.get $mark) (local.get $vl)) (then (return (i32.const 0))))
      (local.set $mark (call $next (local.get $v) (local.get $mark) (local.get $vl)))
      (local.set $vi (local.get $mark))
      (local.set $pi (i32.add (local.get $star) (i32.const 1)))
      (br $l))
    (i32.const 0))
"""


def _f64(x: float) -> str:
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x.hex()


def _fold_ascii(s: str) -> str:
    return "".join(chr(ord(c) | 32) if "A" <= c <= "Z" else c for c in s)


def _if(cond: str, then: str, other: str) -> str:
    return f"(if (result i32) {cond} (then {then}) (else {other}))"


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


@dataclass(frozen=True, slots=True)
class _UserFunc:
    """A resolved user function: where it lives and its declared signature."""

    module: UserModule
    slot: int  # which user instance ("u<slot>") exports it
    params: tuple[str, ...]
    result: str


class _Gen:
    """The WAT text of one lowered condition."""

    def __init__(self, columns: Sequence[ColumnSpec], host_count: int, users: dict[str, _UserFunc]) -> None:
        self.columns = columns
        self.host_count = host_count
        self.users = users
        self.literals = bytearray()
        self.lit_index: dict[bytes, int] = {}
        self.locals: list[str] = []
        self.used: set[int] = set()
        self.imports: dict[str, str] = {}
        self.counter = 0

    # -- helpers

    def lit(self, s: str) -> tuple[int, int]:
        """Return (address, length) of the UTF-8 bytes of a literal in the data segment."""
        data = s.encode("utf-8", "surrogatepass")
        if data not in self.lit_index:
            self.lit_index[data] = LIT_BASE + len(self.literals)
            self.literals += data
        return self.lit_index[data], len(data)

    def fresh(self, ty: str) -> str:
        self.counter += 1
        name = f"$x{self.counter}"
        self.locals.append(f"(local {name} {ty})")
        return name

    def has_str(self, col: int) -> bool:
        return "str" in self.columns[col].kinds

    def has_num(self, col: int) -> bool:
        return bool(self.columns[col].kinds & _NUM_KINDS)

    def tag(self, col: int) -> str:
        self.used.add(col)
        return f"(local.get $tag{col})"

    def is_tag(self, col: int, tag: int) -> str:
        return f"(i32.eq {self.tag(col)} (i32.const {tag}))"

    def dispatch(self, col: int, cases: list[tuple[int, str]], null: str, other: str) -> str:
        """Branch on the column's tag: one code per kind the column carries, null, the rest."""
        kinds = {_KIND_TAG[k] for k in self.columns[col].kinds}
        out = other
        for tag, code in reversed([(t, c) for t, c in cases if t in kinds]):
            out = _if(self.is_tag(col, tag), code, out)
        return _if(f"(i32.eqz {self.tag(col)})", null, out)

    # -- nodes

    def expr(self, e: PExpr) -> str:
        if isinstance(e, PConst):
            return {True: TRUE, False: FALSE, None: NULL}[e.value]
        if isinstance(e, PAnd | POr):
            return self.junction(e)
        if isinstance(e, PNot):
            return f"(call $not {self.expr(e.expr)})"
        if isinstance(e, PHost):
            if not 0 <= e.index < self.host_count:
                raise PolicyError(f"host leaf {e.index} is out of range (host_count {self.host_count})")
            return f"(i32.load8_u (i32.add (local.get $host{e.index}) (local.get $i)))"
        if isinstance(e, PUser):
            return self.user(e)
        if not 0 <= e.col < len(self.columns):
            raise PolicyError(f"column {e.col} is out of range ({len(self.columns)} columns)")
        if isinstance(e, PCompare):
            return self.compare(e)
        if isinstance(e, PIn):
            return self.in_set(e)
        if isinstance(e, PWildcard):
            pats = [_fold_ascii(p) if e.case_insensitive else p for p in e.patterns]
            ci = int(e.case_insensitive)
            calls = [self.glob(e.col, p, ci) for p in pats]
            return self.str_leaf(e.col, self.any_of(calls), NULL, NULL)
        if isinstance(e, PAffix):
            fn = {"startswith": "starts", "endswith": "ends", "contains": "contains"}[e.kind]
            call = self.str_call(fn, e.col, e.value, int(e.case_insensitive))
            return self.str_leaf(e.col, call, NULL, NULL)
        raise PolicyError(f"not a lowered node: {e!r}")

    def junction(self, e: PAnd | POr) -> str:
        if not e.terms:
            return TRUE if isinstance(e, PAnd) else FALSE
        stop = 0 if isinstance(e, PAnd) else 1  # the truth that decides the junction at once
        done = 1 - stop
        seen, t = self.fresh("i32"), self.fresh("i32")
        label = f"$j{self.counter}"
        body = [f"(local.set {seen} (i32.const 0))"]
        for term in e.terms:
            body.append(f"(local.set {t} {self.expr(term)})")
            body.append(
                f"(drop (br_if {label} (i32.const {stop}) (i32.eq (local.get {t}) (i32.const {stop}))))"
            )
            body.append(
                f"(local.set {seen} (i32.or (local.get {seen}) (i32.eq (local.get {t}) (i32.const 2))))"
            )
        body.append(f"(select (i32.const 2) (i32.const {done}) (local.get {seen}))")
        return f"(block {label} (result i32) {' '.join(body)})"

    @staticmethod
    def any_of(calls: list[str]) -> str:
        """0/1: any of the 0/1 calls, short-circuit."""
        if not calls:
            return FALSE
        out = calls[-1]
        for call in reversed(calls[:-1]):
            out = _if(call, TRUE, out)
        return out

    def glob(self, col: int, pattern: str, ci: int) -> str:
        """0/1: the value matches the pattern; literal head and tail are checked first, in O(1)."""
        if "*" not in pattern and "?" not in pattern:
            return self.str_call("eq", col, pattern, ci)
        if "*" not in pattern:
            return self.str_call("glob", col, pattern, ci)
        head, tail = pattern[: pattern.index("*")], pattern[pattern.rindex("*") + 1 :]
        if "?" in head or "?" in tail:
            return self.str_call("glob", col, pattern, ci)
        mid = pattern[len(head) : len(pattern) - len(tail)]  # starts and ends with '*'
        hb, tb = len(head.encode("utf-8", "surrogatepass")), len(tail.encode("utf-8", "surrogatepass"))
        conds = [f"(i32.ge_u (local.get $l{col}) (i32.const {hb + tb}))"]
        conds += [self.str_call("starts", col, head, ci)] if head else []
        conds += [self.str_call("ends", col, tail, ci)] if tail else []
        inner = mid.strip("*")
        if inner:
            plain = "*" not in inner and "?" not in inner  # '*lit*': a substring
            fn, literal = ("contains", inner) if plain else ("glob", mid)
            addr, size = self.lit(literal)
            rest = (
                f"(call ${fn} (i32.add (local.get $p{col}) (i32.const {hb})) "
                f"(i32.sub (local.get $l{col}) (i32.const {hb + tb})) "
                f"(i32.const {addr}) (i32.const {size}) (i32.const {ci}))"
            )
            conds.append(rest)
        out = conds[-1]
        for cond in reversed(conds[:-1]):
            out = _if(cond, out, FALSE)
        return out

    def str_call(self, fn: str, col: int, literal: str, ci: int) -> str:
        addr, size = self.lit(literal)
        return (
            f"(call ${fn} (local.get $p{col}) (local.get $l{col}) "
            f"(i32.const {addr}) (i32.const {size}) (i32.const {ci}))"
        )

    def str_leaf(self, col: int, main: str, null: str, other: str) -> str:
        return self.dispatch(col, [(T_STR, main)], null, other)

    def compare(self, e: PCompare) -> str:
        if e.op not in _I64_OP:
            raise PolicyError(f"unknown comparison {e.op!r}")
        null = {"==": FALSE, "!=": TRUE}.get(e.op, NULL)
        if isinstance(e.value, str):
            if e.op in ("==", "!="):
                main = self.str_call("eq", e.col, e.value, 0)
                if e.op == "!=":
                    main = f"(i32.eqz {main})"
            else:
                addr, size = self.lit(e.value)
                value = f"(local.get $p{e.col}) (local.get $l{e.col})"
                cmp = f"(call $cmp {value} (i32.const {addr}) (i32.const {size}))"
                main = f"({_CMP_OP[e.op]} {cmp} (i32.const 0))"
            return self.str_leaf(e.col, main, null, null)
        lit = int(e.value)
        v = f"(local.get $v{e.col})"
        if lit > I64_MAX or lit < I64_MIN:  # no i64 equals it; its side decides the order
            above = lit > I64_MAX
            holds = e.op == "!=" or (e.op in ("<", "<=") if above else e.op in (">", ">="))
            as_int = TRUE if holds else FALSE
        else:
            as_int = f"(i64.{_I64_OP[e.op]} {v} (i64.const {lit}))"
        as_float = f"(f64.{_F64_OP[e.op]} (f64.reinterpret_i64 {v}) (f64.const {_f64(float(lit))}))"
        return self.dispatch(e.col, [(T_INT, as_int), (T_BOOL, as_int), (T_FLOAT, as_float)], null, null)

    def in_set(self, e: PIn) -> str:
        strs = [x for x in e.values if isinstance(x, str)]
        ints = [x for x in e.values if isinstance(x, int)]
        hit, miss = (FALSE, TRUE) if e.negated else (TRUE, FALSE)
        ci = int(e.case_insensitive)
        s_any = self.any_of([self.str_call("eq", e.col, s, ci) for s in strs])
        v = f"(local.get $v{e.col})"
        i_any = self.any_of([f"(i64.eq {v} (i64.const {x}))" for x in ints if I64_MIN <= x <= I64_MAX])
        f_any = self.any_of(
            [f"(f64.eq (f64.reinterpret_i64 {v}) (f64.const {_f64(float(x))}))" for x in ints]
        )
        cases = [(T_STR, _if(s_any, hit, miss)), (T_INT, _if(i_any, hit, miss))]
        cases += [(T_BOOL, _if(i_any, hit, miss)), (T_FLOAT, _if(f_any, hit, miss))]
        return self.dispatch(e.col, cases, miss, miss)

    def user(self, e: PUser) -> str:
        if e.lang != "wasm":
            raise PolicyError(f"{e.lang}:{e.function}: the wasm runtime calls only wasm functions")
        fn = self.users[e.function]
        where = f"{fn.module.path}: wasm:{e.function}"
        label = f"$u{self.counter}"
        self.counter += 1
        checks: list[str] = []
        argv: list[str] = []
        j = 0
        for k, (what, arg) in enumerate(e.args, 1):
            if what == "col":
                if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg < len(self.columns):
                    raise PolicyError(f"{where}: argument {k} names no column ({arg!r})")
                kinds = self.columns[arg].kinds
                if "str" in kinds:
                    self.need_params(fn, j, ("i32", "i32"), k, "a string column", where)
                    ptr = f"(select (i32.const 0) (local.get $p{arg}) (i32.eqz {self.tag(arg)}))"
                    argv += [ptr, f"(local.get $l{arg})"]
                    accepted = {T_STR}
                    j += 2
                else:
                    self.need_params(fn, j, None, k, "a column", where)
                    ty = fn.params[j]
                    accepted = {"i64": {T_INT}, "f64": {T_FLOAT, T_INT}, "i32": {T_BOOL}}.get(ty, set())
                    if not accepted:
                        raise PolicyError(f"{where}: parameter {j + 1} is {ty}, not i32, i64 or f64")
                    argv.append(self.num_arg(arg, ty))
                    j += 1
                tag = self.tag(arg)
                cond = f"(i32.ne {tag} (i32.const 0))"  # neither null nor a kind it accepts
                for t in sorted(accepted):
                    cond = f"(i32.and {cond} (i32.ne {tag} (i32.const {t})))"
                checks.append(f"(drop (br_if {label} (i32.const 2) {cond}))")
                continue
            if isinstance(arg, str):
                self.need_params(fn, j, ("i32", "i32"), k, "a string", where)
                addr, size = self.lit(arg)
                argv += [f"(i32.const {addr})", f"(i32.const {size})"]
                j += 2
                continue
            self.need_params(fn, j, None, k, "a literal", where)
            ty = fn.params[j]
            argv.append(self.lit_arg(arg, ty, k, where))
            j += 1
        if j != len(fn.params):
            raise PolicyError(
                f"{where}: takes {len(fn.params)} parameters, the call passes {j} "
                "(a string takes two: ptr, len)"
            )
        call = f"(call $fn_{e.function} {' '.join(argv)})"
        if e.op is None:
            result = f"(i32.ne {call} (i32.const 0))" if fn.result == "i32" else f"(drop {call}) {NULL}"
        elif e.op not in _I64_OP:
            raise PolicyError(f"{where}: unknown comparison {e.op!r}")
        elif fn.result == "i32" or e.value is None:
            result = f"(drop {call}) {NULL}"
        elif fn.result == "i64" and isinstance(e.value, int) and I64_MIN <= e.value <= I64_MAX:
            result = f"(i64.{_I64_OP[e.op]} {call} (i64.const {int(e.value)}))"
        elif fn.result == "i64":
            result = f"(f64.{_F64_OP[e.op]} (f64.convert_i64_s {call}) (f64.const {_f64(float(e.value))}))"
        else:
            result = f"(f64.{_F64_OP[e.op]} {call} (f64.const {_f64(float(e.value))}))"
        params = " ".join(fn.params)
        self.imports[e.function] = (
            f'(import "u{fn.slot}" "{e.function}" (func $fn_{e.function} '
            f"(param {params}) (result {fn.result})))"
        )
        return f"(block {label} (result i32) {' '.join(checks)} {result})"

    @staticmethod
    def need_params(
        fn: _UserFunc, j: int, types: tuple[str, ...] | None, k: int, what: str, where: str
    ) -> None:
        want = len(types) if types else 1
        got = fn.params[j : j + want]
        if len(got) < want:
            raise PolicyError(
                f"{where}: argument {k} ({what}) has no parameter left (takes {len(fn.params)})"
            )
        if types is not None and got != types:
            raise PolicyError(
                f"{where}: argument {k} ({what}) needs parameters {' '.join(types)}, "
                f"the function declares {' '.join(got)}"
            )

    def num_arg(self, col: int, ty: str) -> str:
        if not self.has_num(col):
            return {"i64": "(i64.const 0)", "f64": "(f64.const 0)", "i32": "(i32.const 0)"}[ty]
        v = f"(local.get $v{col})"
        if ty == "i64":
            return v
        if ty == "i32":
            return f"(i32.wrap_i64 {v})"
        return (
            f"(if (result f64) {self.is_tag(col, T_INT)} (then (f64.convert_i64_s {v})) "
            f"(else (f64.reinterpret_i64 {v})))"
        )

    @staticmethod
    def lit_arg(arg: object, ty: str, k: int, where: str) -> str:
        if arg is None:
            return {"i64": "(i64.const 0)", "f64": "(f64.const 0)", "i32": "(i32.const 0)"}.get(ty, "")
        if ty == "i32" and isinstance(arg, bool):
            return f"(i32.const {int(arg)})"
        if ty == "i64" and isinstance(arg, int) and not isinstance(arg, bool) and I64_MIN <= arg <= I64_MAX:
            return f"(i64.const {arg})"
        if ty == "f64" and isinstance(arg, int | float) and not isinstance(arg, bool):
            return f"(f64.const {_f64(float(arg))})"
        raise PolicyError(f"{where}: argument {k} ({arg!r}) does not fit parameter type {ty}")

    # -- the module

    def module(self, expr: PExpr, name: str) -> tuple[str, int]:
        """Return the WAT text and the header address."""
        body = self.expr(expr)
        pad = (-len(self.literals)) & 7
        hdr = LIT_BASE + len(self.literals) + pad
        slots = ["(local $res i32)"]
        loads = [f"(local.set $res (i32.load (i32.const {hdr})))"]
        per_event: list[str] = []
        for c in range(len(self.columns)):
            base = hdr + 4 + 16 * c
            if c not in self.used:
                continue
            slots.append(f"(local $tags{c} i32) (local $tag{c} i32)")
            loads.append(f"(local.set $tags{c} (i32.load (i32.const {base})))")
            per_event.append(
                f"(local.set $tag{c} (i32.load8_u (i32.add (local.get $tags{c}) (local.get $i))))"
            )
            if self.has_num(c):
                slots.append(f"(local $nums{c} i32) (local $v{c} i64)")
                loads.append(f"(local.set $nums{c} (i32.load (i32.const {base + 4})))")
                per_event.append(
                    f"(local.set $v{c} (i64.load (i32.add (local.get $nums{c}) "
                    "(i32.shl (local.get $i) (i32.const 3)))))"
                )
            if self.has_str(c):
                slots.append(
                    f"(local $offs{c} i32) (local $data{c} i32) "
                    f"(local $o{c} i32) (local $p{c} i32) (local $l{c} i32)"
                )
                loads.append(f"(local.set $offs{c} (i32.load (i32.const {base + 8})))")
                loads.append(f"(local.set $data{c} (i32.load (i32.const {base + 12})))")
                per_event += [
                    f"(local.set $o{c} (i32.add (local.get $offs{c}) "
                    "(i32.shl (local.get $i) (i32.const 2))))",
                    f"(local.set $p{c} (i32.add (local.get $data{c}) (i32.load (local.get $o{c}))))",
                    f"(local.set $l{c} (i32.sub (i32.load offset=4 (local.get $o{c})) "
                    f"(i32.load (local.get $o{c}))))",
                ]
        for h in range(self.host_count):
            slots.append(f"(local $host{h} i32)")
            loads.append(
                f"(local.set $host{h} (i32.load (i32.const {hdr + 4 + 16 * len(self.columns) + 4 * h})))"
            )
        data = "".join(f"\\{b:02x}" for b in self.literals)
        segment = f'  (data (i32.const {LIT_BASE}) "{data}")\n' if self.literals else ""
        wat = "\n".join(
            [
                f"(module ${_NAME.sub('_', name) or 'pred'}",
                '  (import "env" "memory" (memory 1))',
                *(f"  {imp}" for imp in self.imports.values()),
                _HELPERS,
                segment,
                '  (func (export "run") (param $n i32) (result i32)',
                "    (local $i i32)",
                *(f"    {s}" for s in slots + self.locals),
                *(f"    {s}" for s in loads),
                "    (block $exit (loop $event",
                "      (br_if $exit (i32.ge_u (local.get $i) (local.get $n)))",
                *(f"      {s}" for s in per_event),
                f"      (if (i32.eq {body} (i32.const 1)) (then",
                "        (i32.store8 (i32.add (local.get $res) (i32.shr_u (local.get $i) (i32.const 3)))",
                "          (i32.or (i32.load8_u",
                "                    (i32.add (local.get $res) (i32.shr_u (local.get $i) (i32.const 3))))",
                "                  (i32.shl (i32.const 1) (i32.and (local.get $i) (i32.const 7)))))))",
                "      (local.set $i (i32.add (local.get $i) (i32.const 1)))",
                "      (br $event)))",
                "    (i32.const 0)))",
                "",
            ]
        )
        return wat, hdr


def _user_calls(e: PExpr) -> list[PUser]:
    if isinstance(e, PUser):
        return [e]
    if isinstance(e, PAnd | POr):
        return [u for t in e.terms for u in _user_calls(t)]
    if isinstance(e, PNot):
        return _user_calls(e.expr)
    return []


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    """Return an unsigned LEB128 number at ``pos`` and the position after it."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _defines_memory(binary: bytes) -> bool:
    """Whether a (valid) Wasm binary has a memory section with a memory in it."""
    pos = 8  # magic and version
    while pos < len(binary):
        section = binary[pos]
        size, pos = _leb128(binary, pos + 1)
        if section == 5:
            return _leb128(binary, pos)[0] > 0
        pos += size
    return False


def _align8(x: int) -> int:
    return (x + 7) & ~7


@dataclass(frozen=True, slots=True)
class _Column:
    """How one column is packed: its buffers and the tags it may carry."""

    index: int
    field: str
    has_str: bool
    has_num: bool
    has_float: bool
    only_str: bool
    allowed: bytes  # the tag bytes the spec allows (null always)


class WasmPredicate:
    """A condition compiled to one Wasm module, with its own store and instance."""

    def __init__(
        self,
        expr: PExpr,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        users: Sequence[tuple[UserModule, wasmtime.Module]],
        source: str,
        header: int,
        columns: Sequence[ColumnSpec],
        used: set[int],
        host_count: int,
        budget: Budget,
        name: str,
    ) -> None:
        self.source = source
        self.name = name
        self._engine = engine
        self._module = module
        self._users = tuple(users)
        self._budget = budget
        #: per column, the pattern bytes its string leaves scan it with (the built-in matching's fuel)
        self._weights: dict[int, int] = {}
        _scan_weights(expr, self._weights)
        self._header = header
        self._host_count = host_count
        self._ncols = len(columns)
        self._header_size = _align8(4 + 16 * len(columns) + 4 * host_count)
        self._columns = tuple(
            _Column(
                index=c,
                field=spec.field,
                has_str="str" in spec.kinds,
                has_num=bool(spec.kinds & _NUM_KINDS),
                has_float="float" in spec.kinds,
                only_str=spec.kinds == frozenset({"str"}),
                allowed=bytes(sorted({T_NULL} | {_KIND_TAG[k] for k in spec.kinds if k in _KIND_TAG})),
            )
            for c, spec in enumerate(columns)
            if c in used
        )
        self._broken = False
        self._instantiate()

    def _instantiate(self) -> None:
        """Create the store, the memory and the instances (user modules first)."""
        store = _track(wasmtime.Store(self._engine))
        store.set_limits(memory_size=self._budget.memory_bytes)
        store.set_fuel(self._budget.base)  # start functions of user modules
        pages = max(2, -(-(self._header + self._header_size) // PAGE))
        memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(pages, None)))
        linker = _track(wasmtime.Linker(self._engine))
        linker.define(store, "env", "memory", memory)
        for slot, (user, module) in enumerate(self._users):
            try:
                instance = linker.instantiate(store, module)
            except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
                raise PolicyError(f"{user.path}: cannot instantiate: {_first_line(exc)}") from exc
            linker.define_instance(store, f"u{slot}", instance)
        instance = linker.instantiate(store, self._module)
        run = instance.exports(store)["run"]
        if not isinstance(run, wasmtime.Func):
            raise PolicyError(f"{self.name}: the generated module exports no run function")
        self._store, self._memory, self._run = store, memory, run
        self._broken = False

    def _pack(
        self, columns: Sequence[Sequence[NativeValue]], host: Sequence[HostColumn], n: int
    ) -> bytearray:
        """Return the header and the batch buffers, laid out from the header address."""
        header = [0] * (1 + 4 * self._ncols + self._host_count)
        parts: list[bytes] = [b""]
        off = self._header + self._header_size

        def add(slot: int, data: bytes) -> None:
            nonlocal off
            header[slot] = off
            parts.append(data)
            pad = (-len(data)) & 7
            if pad:
                parts.append(bytes(pad))
            off += len(data) + pad

        add(0, bytes(((n + 63) >> 6) << 3))
        for col in self._columns:
            values = columns[col.index]
            if len(values) != n:
                values = values[:n]
            try:
                tags = bytes(map(_TAG.__getitem__, map(type, values)))
            except KeyError as exc:
                raise TypeError(
                    f"{self.name}: column {col.index} ({col.field}) carries a {exc} value"
                ) from exc
            if tags.translate(None, col.allowed):
                odd = tags.translate(None, col.allowed)[0]
                raise TypeError(
                    f"{self.name}: column {col.index} ({col.field}) carries tag {odd} outside its kinds"
                )
            slot = 1 + 4 * col.index
            add(slot, tags)
            if col.has_num:
                if not col.has_float and not col.has_str:  # int, bool or None: None is 0
                    nums = array("q", cast("list[int]", [v or 0 for v in values]))
                    add(slot + 1, nums.tobytes())
                elif not col.has_float:
                    nums = array("q", [v if type(v) is int or type(v) is bool else 0 for v in values])
                    add(slot + 1, nums.tobytes())
                else:
                    fmt = "<" + "".join(map(_NUMFMT.__getitem__, map(type, values)))
                    vals = [v if type(v) in (int, float, bool) else 0 for v in values]
                    add(slot + 1, struct.pack(fmt, *vals))
            if col.has_str:
                if col.only_str:  # str or None: the common case, one comprehension
                    strs = cast("list[str]", [v or "" for v in values])
                else:
                    strs = [v if type(v) is str else "" for v in values]
                text = "".join(strs)
                lengths: Iterable[int]
                if text.isascii():  # a byte per character
                    data = text.encode("ascii")
                    lengths = map(len, strs)
                else:
                    try:
                        encoded = list(map(str.encode, strs))
                    except UnicodeEncodeError:  # a lone surrogate: one code point, three bytes
                        encoded = [s.encode("utf-8", "surrogatepass") for s in strs]
                    data = b"".join(encoded)
                    lengths = map(len, encoded)
                add(slot + 2, array("I", accumulate(lengths, initial=0)).tobytes())
                add(slot + 3, data)
        for h in range(self._host_count):
            states = host[h]
            if len(states) != n:
                states = states[:n]
            add(1 + 4 * self._ncols + h, bytes(map(_HOST.__getitem__, states)))
        parts[0] = struct.pack(f"<{len(header)}I", *header).ljust(self._header_size, b"\0")
        return bytearray().join(parts)

    def run(self, columns: Sequence[Sequence[NativeValue]], host: Sequence[HostColumn], n: int) -> int:
        """Decide ``n`` events in one call; return the bitmask of the True ones."""
        if n <= 0:
            return 0
        if self._broken:
            try:
                self._instantiate()
            except PolicyError as exc:
                raise PredicateTrap("error", str(exc)) from exc
        data = self._pack(columns, host, n)
        store, memory = self._store, self._memory
        end = self._header + len(data)
        have = memory.data_len(store)
        if end > have:
            try:
                memory.grow(store, -(-(end - have) // PAGE))
            except wasmtime.WasmtimeError as exc:
                raise PredicateTrap(
                    "memory",
                    f"{self.name}: a batch of {n} needs {end} bytes, the cap is {self._budget.memory_bytes}",
                ) from exc
        memory.write(store, data, self._header)
        store.set_fuel(self._budget.for_batch(n) + _scan_fuel(columns, self._weights))
        try:
            self._run(store, n)
        except wasmtime.Trap as exc:
            self._broken = True
            raise PredicateTrap(_trap_kind(exc), f"{self.name}: {_first_line(exc)}") from exc
        except wasmtime.WasmtimeError as exc:
            self._broken = True
            raise PredicateTrap("error", f"{self.name}: {_first_line(exc)}") from exc
        result = self._header + self._header_size
        return int.from_bytes(memory.read(store, result, result + ((n + 7) >> 3)), "little")


def _trap_kind(trap: wasmtime.Trap) -> str:
    code = trap.trap_code
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return "fuel"
    if code == wasmtime.TrapCode.STACK_OVERFLOW:
        return "stack"
    if code in (wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS, wasmtime.TrapCode.ALLOCATION_TOO_LARGE):
        return "memory"
    return "error"


class WasmBackend:
    """The Wasm runtime: one wasmtime engine per stack size, user modules compiled once."""

    name = "wasm"
    int_bits = 64

    def __init__(self) -> None:
        self._engines: dict[int, wasmtime.Engine] = {}
        self._user_modules: dict[tuple[int, str, bytes], wasmtime.Module] = {}

    def _engine(self, budget: Budget) -> wasmtime.Engine:
        engine = self._engines.get(budget.max_stack)
        if engine is None:
            config = wasmtime.Config()
            config.consume_fuel = True
            config.max_wasm_stack = budget.max_stack
            config.cranelift_opt_level = "speed"
            engine = self._engines[budget.max_stack] = _track(wasmtime.Engine(config))
        return engine

    def _load(self, engine: wasmtime.Engine, user: UserModule, function: str) -> wasmtime.Module:
        key = (id(engine), str(user.path), user.source)
        module = self._user_modules.get(key)
        if module is not None:
            return module
        try:
            if user.source.startswith(b"\0asm"):
                binary = user.source
            else:
                binary = bytes(wasmtime.wat2wasm(user.source.decode("utf-8")))
            module = _track(wasmtime.Module(engine, binary))
        except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
            raise PolicyError(
                f"{user.path}: does not compile (needed for wasm:{function}): {_first_line(exc)}"
            ) from exc
        if _defines_memory(binary):
            raise PolicyError(
                f"{user.path}: defines its own memory (needed for wasm:{function}); import env.memory instead"
            )
        for imp in module.imports:
            if (imp.module, imp.name) != ("env", "memory") or not isinstance(imp.type, wasmtime.MemoryType):
                raise PolicyError(
                    f"{user.path}: imports {imp.module}.{imp.name} (needed for wasm:{function}); "
                    "only env.memory is provided"
                )
        self._user_modules[key] = module
        return module

    def _resolve(
        self, engine: wasmtime.Engine, expr: PExpr, modules: Sequence[UserModule]
    ) -> tuple[dict[str, _UserFunc], list[tuple[UserModule, wasmtime.Module]]]:
        """Find the module exporting each user function a wasm call names."""
        wasm_modules = [m for m in modules if m.lang == "wasm"]
        funcs: dict[str, _UserFunc] = {}
        used: list[tuple[UserModule, wasmtime.Module]] = []
        for call in _user_calls(expr):
            if call.lang != "wasm" or call.function in funcs:
                continue
            found: list[tuple[UserModule, wasmtime.Module, wasmtime.FuncType]] = []
            for user in wasm_modules:
                module = self._load(engine, user, call.function)
                for export in module.exports:
                    ty = export.type
                    if export.name == call.function and isinstance(ty, wasmtime.FuncType):
                        found.append((user, module, ty))
            if not found:
                looked = ", ".join(str(m.path) for m in wasm_modules) or "no wasm modules"
                raise PolicyError(f"wasm:{call.function}: no module beside the policy exports it ({looked})")
            if len(found) > 1:
                both = ", ".join(str(u.path) for u, _, _ in found)
                raise PolicyError(f"wasm:{call.function}: exported by more than one module ({both})")
            user, module, ty = found[0]
            results = [str(r) for r in ty.results]
            if len(results) != 1 or results[0] not in ("i32", "i64", "f64"):
                raise PolicyError(
                    f"{user.path}: wasm:{call.function} returns ({' '.join(results)}); "
                    "one i32, i64 or f64 expected"
                )
            slots = [u for u, _ in used]
            if user not in slots:
                used.append((user, module))
                slots.append(user)
            funcs[call.function] = _UserFunc(
                user, slots.index(user), tuple(str(p) for p in ty.params), results[0]
            )
        return funcs, used

    def compile(
        self,
        expr: PExpr,
        columns: Sequence[ColumnSpec],
        host_count: int,
        *,
        budget: Budget,
        modules: Sequence[UserModule] = (),
        name: str = "pred",
    ) -> WasmPredicate:
        """Compile a lowered condition to one Wasm module; ``PolicyError`` names a bad user module."""
        engine = self._engine(budget)
        funcs, users = self._resolve(engine, expr, modules)
        gen = _Gen(columns, host_count, funcs)
        source, header = gen.module(expr, name)
        try:
            module = _track(wasmtime.Module(engine, source))
        except wasmtime.WasmtimeError as exc:  # a bug here, not in the rule
            raise PolicyError(f"{name}: the generated module does not compile: {_first_line(exc)}") from exc
        return WasmPredicate(
            expr, engine, module, users, source, header, columns, gen.used, host_count, budget, name
        )
