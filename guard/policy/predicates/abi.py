"""The one predicate ABI every runtime implements: a lowered condition, a batch of columns, a bitmap.

A rule's condition is *lowered* (:mod:`guard.policy.predicates.lowering`) to a small tree of
:data:`PExpr` nodes over numbered *columns* (one per field the leaves read) and numbered *host
leaves* (nodes only the reference evaluator decides; their truth arrives as a tri-state column).
A runtime compiles that tree once (:class:`Backend`), then decides a whole batch per call:

    run(columns, host, n) -> bitmask      # bit i set: the condition is True for event i

Column values are only the *native* types: ``None`` (null), ``str``, ``int`` (within the
backend's :attr:`Backend.int_bits`), ``float``, ``bool``; the host packer (:mod:`.batch`) never
hands a backend anything else. An event whose value a column cannot carry natively (a list, an
object, a type the column's leaves do not test natively, a non-ASCII string under case folding
where the column says ``ascii_only``) *escapes*: the Python predicate decides it, and the escape
is counted. Truth is three-valued inside a runtime (true, false, null) exactly as in
:mod:`guard.policy.evaluator`; only "is True" leaves it.

Native leaf semantics (the only value types a leaf sees are ``None`` and its column's kinds):

- :class:`PCompare` ``col OP literal`` on a str or int column: null gives False for ``==``, True for
  ``!=`` and null for ordering; strings compare by code point, case-sensitively.
- :class:`PIn`: null is not in the set (``not in`` is True).
- :class:`PWildcard` (``:``, ``like``, ``like~``): ``*`` any run of code points, ``?`` one code
  point, the whole value must match one pattern; null gives null.
- :class:`PAffix` (startsWith, endsWith, stringContains): null gives null; ``contains`` with an
  empty literal is False.
- ``case_insensitive`` (``in~``, ``:``, ``like~``, ``~`` functions): the lowering makes such a leaf
  native only when its literals are ASCII, and its column is ``ascii_only``, so a backend folds
  ASCII ``A-Z`` to ``a-z`` and nothing else; the literals and patterns arrive already lowered.
- :class:`PUser`: a user function from a module beside the policy, called with the argument
  values (null as the runtime's nil/0-length); its result compared with ``op value`` (numbers),
  or, with ``op`` None, taken as a boolean. A result of another type is null.

Budgets: a backend runs each batch under :class:`Budget` (fuel or instructions per event, a
memory cap) and raises :class:`~guard.errors.PredicateTrap` when user code exceeds it or fails; the runtime
must stay usable after a trap. The host (:mod:`.batch`) isolates the trapping events and gives
them the rule's fail mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

__all__ = [
    "COMPARE_OPS",
    "RUNTIMES",
    "USER_LANGS",
    "Backend",
    "Budget",
    "ColumnSpec",
    "CompiledBatch",
    "HostColumn",
    "NativeValue",
    "PAffix",
    "PAnd",
    "PCompare",
    "PConst",
    "PExpr",
    "PHost",
    "PIn",
    "PNot",
    "POr",
    "PUser",
    "PWildcard",
    "UserModule",
]

RUNTIMES: Final = ("python", "wasm", "lua")
#: the module languages a rule may call into: ``lua:entropy(...)``, ``wasm:entropy(...)``
USER_LANGS: Final = ("lua", "wasm")
COMPARE_OPS: Final = ("==", "!=", "<", "<=", ">", ">=")

NativeValue = str | int | float | bool | None
#: a host leaf's truth per event: True, False or None (null)
HostColumn = Sequence[bool | None]


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One field the native leaves read: which value kinds they test natively."""

    field: str
    kinds: frozenset[str]  # subset of {"str", "int", "float", "bool"}; None (null) is always native
    ascii_only: bool = False  # a case-folding leaf reads it: non-ASCII strings escape


# ---- the lowered condition


@dataclass(frozen=True, slots=True)
class PConst:
    """A constant truth (True, False or None for null)."""

    value: bool | None


@dataclass(frozen=True, slots=True)
class PAnd:
    """Three-valued conjunction: false if any term is false, else null if any is null, else true."""

    terms: tuple[PExpr, ...]


@dataclass(frozen=True, slots=True)
class POr:
    """Three-valued disjunction: true if any term is true, else null if any is null, else false."""

    terms: tuple[PExpr, ...]


@dataclass(frozen=True, slots=True)
class PNot:
    """Three-valued negation: null stays null."""

    expr: PExpr


@dataclass(frozen=True, slots=True)
class PCompare:
    """``column OP value`` where the column is str-kind (value str) or int-kind (value int)."""

    col: int
    op: str  # one of COMPARE_OPS
    value: str | int


@dataclass(frozen=True, slots=True)
class PIn:
    """``column in (values)`` / ``not in`` / ``in~`` (values casefolded when case_insensitive)."""

    col: int
    values: tuple[str, ...] | tuple[int, ...]
    case_insensitive: bool = False
    negated: bool = False


@dataclass(frozen=True, slots=True)
class PWildcard:
    """``column : patterns`` / ``like`` / ``like~``: true when the value matches any pattern."""

    col: int
    patterns: tuple[str, ...]
    case_insensitive: bool


@dataclass(frozen=True, slots=True)
class PAffix:
    """startsWith / endsWith / stringContains against a literal (lowered when case_insensitive)."""

    col: int
    kind: str  # "startswith" | "endswith" | "contains"
    value: str
    case_insensitive: bool = False


@dataclass(frozen=True, slots=True)
class PHost:
    """A node the reference evaluator decides on the host; its truth is host column ``index``."""

    index: int


@dataclass(frozen=True, slots=True)
class PUser:
    """A call of a user function shipped beside the policy, compared with a literal.

    ``args`` are column indexes (the column's value, any native kind) or literal values.
    """

    lang: str  # "lua" | "wasm"
    function: str
    args: tuple[tuple[str, int | NativeValue], ...]  # ("col", index) | ("lit", value)
    op: str | None  # one of COMPARE_OPS, or None: the result is a boolean
    value: int | float | None = None


PExpr = PConst | PAnd | POr | PNot | PCompare | PIn | PWildcard | PAffix | PHost | PUser


# ---- user modules and budgets


@dataclass(frozen=True, slots=True)
class UserModule:
    """A Lua (``.lua``) or Wasm (``.wat``/``.wasm``) module shipped beside a policy."""

    lang: str
    path: Path
    source: bytes


@dataclass(frozen=True, slots=True)
class Budget:
    """What one batch may spend: ``per_event`` fuel (Wasm) or VM instructions (Lua) per event, memory."""

    per_event: int = 200_000
    base: int = 100_000  # added once per batch call
    memory_bytes: int = 32 * 1024 * 1024
    max_stack: int = 512 * 1024  # bytes of native stack (Wasm); Lua uses its own stack limit

    def for_batch(self, n: int) -> int:
        """Return the fuel or instruction allowance of a batch of ``n`` events."""
        return self.base + self.per_event * n


class CompiledBatch(Protocol):
    """A condition compiled by one backend."""

    #: the generated source (WAT or Lua), for ``policy explain`` and debugging
    source: str

    def run(self, columns: Sequence[Sequence[NativeValue]], host: Sequence[HostColumn], n: int) -> int:
        """Decide ``n`` events; return a bitmask, bit i set when the condition is True for event i.

        Raises :class:`~guard.errors.PredicateTrap` when user code exceeds the budget or fails.
        """
        ...


class Backend(Protocol):
    """A predicate runtime."""

    name: str
    #: the widest int a column carries natively (Lua numbers are doubles: 53)
    int_bits: int

    def compile(
        self,
        expr: PExpr,
        columns: Sequence[ColumnSpec],
        host_count: int,
        *,
        budget: Budget,
        modules: Sequence[UserModule] = (),
        name: str = "pred",
    ) -> CompiledBatch:
        """Compile a lowered condition; raise ``PolicyError`` naming the module for a bad user module."""
        ...
