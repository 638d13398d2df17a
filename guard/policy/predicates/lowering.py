"""Lower an IR condition to the runtimes' tree (:mod:`.abi`): native leaves over columns, host leaves.

The leaves a runtime decides natively are the shapes :mod:`guard.policy.codegen` inlines, on the
same value types: a str or int field against literals (``==``, ordering, ``in``/``in~``),
``:``/``like``/``like~`` wildcards, startsWith/endsWith/stringContains (and their ``~`` forms)
against a literal. Every other node (regex, cidrMatch, arithmetic, dates, versions, functions of
functions) becomes a *host leaf*: the offline evaluator's closure decides it and its truth enters
the batch as a tri-state column, as codegen's generic path does. A case-insensitive leaf is native
only when its literals are ASCII; its column is then ``ascii_only`` (a non-ASCII value escapes),
so the runtimes fold ASCII and nothing else, and Unicode folding stays the evaluator's.

A field read by leaves of different kinds (a str test and an int test, or a typed test and a user
function argument) keeps only the user argument native: the typed leaves become host leaves, so a
column has one meaning. Each native leaf keeps its evaluator closure (:attr:`Lowered.fallback`):
an event whose value a column cannot carry natively (a list, another type, a wide int) is decided
by the tree with those leaves evaluated by the host.

User functions: ``lua:name(args)`` / ``wasm:name(args)`` with fields and literals as arguments,
compared with a number (``lua:entropy(process.command_line) > 4.5``) or used as a boolean term.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from guard.errors import PolicyError
from guard.policy.ast import And, Call, Comparison, Expr, Field, InSet, Literal, Not, Or, StringMatch
from guard.policy.codegen import fast_getter
from guard.policy.evaluator import compile_expr
from guard.policy.predicates.abi import (
    COMPARE_OPS,
    USER_LANGS,
    ColumnSpec,
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
)
from guard.policy.schema import ECS, Schema
from guard.policy.semantics import FLIPPED_OPS, Event, Getter, field_vs_literal, plain_field, truth
from guard.policy.walker import Node, Walker, iter_nodes

__all__ = ["ANY_KINDS", "Lowered", "fits", "int_range", "lower", "user_calls"]

#: the kinds a user function argument column carries natively
ANY_KINDS: Final = frozenset({"str", "int", "float", "bool"})
_AFFIX: Final = {"startswith": "startswith", "endswith": "endswith", "stringcontains": "contains"}

Truth = bool | None


@dataclass(frozen=True, slots=True)
class Lowered:
    """A condition ready for a runtime, and what the host computes around it."""

    expr: PExpr
    columns: tuple[ColumnSpec, ...]
    getters: tuple[Getter, ...]  # one per column
    host: tuple[Callable[[Event], Truth], ...]  # one per host leaf
    host_exprs: tuple[Expr, ...]
    #: each native leaf's truth by the evaluator, for events whose values escape
    fallback: Mapping[PExpr, Callable[[Event], Truth]]
    user_langs: frozenset[str]

    @property
    def native_leaves(self) -> int:
        """How many leaves the runtime decides (user calls included)."""
        return len(self.fallback) + _count_users(self.expr)


def int_range(int_bits: int) -> tuple[int, int]:
    """Return the inclusive range of ints an ``int_bits``-bit column carries exactly (53: a double's)."""
    if int_bits >= 64:
        return -(1 << 63), (1 << 63) - 1
    return -(1 << int_bits), 1 << int_bits


def fits(v: int, int_bits: int) -> bool:
    """Whether a column of ``int_bits``-bit ints carries ``v`` exactly."""
    lo, hi = int_range(int_bits)
    return lo <= v <= hi


def _count_users(e: PExpr) -> int:
    if isinstance(e, PUser):
        return 1
    if isinstance(e, PAnd | POr):
        return sum(_count_users(t) for t in e.terms)
    if isinstance(e, PNot):
        return _count_users(e.expr)
    return 0


def _truth_of(getter: Getter) -> Callable[[Event], Truth]:
    def truth_of(ev: Event) -> Truth:
        return truth(getter(ev))

    return truth_of


def _user_name(e: Expr) -> tuple[str, str] | None:
    """Return (lang, function) when ``e`` calls a user function."""
    if isinstance(e, Call) and ":" in e.name:
        lang, _, fn = e.name.partition(":")
        return lang.lower(), fn
    return None


def user_calls(e: Expr) -> list[Call]:
    """Every user-function call in an expression, outermost first."""
    return [node for node in iter_nodes(e) if isinstance(node, Call) and _user_name(node) is not None]


@dataclass(slots=True)
class _Leaf:
    """A native leaf before columns are numbered."""

    field: str
    path: tuple[str, ...]
    kind: str  # "str" | "int" | "any" (user argument)
    ascii_only: bool
    make: Callable[[int], PExpr]
    origin: Expr
    node: PExpr | None = None


@dataclass(slots=True)
class _User:
    """A user call before columns are numbered."""

    lang: str
    function: str
    args: list[tuple[str, object]]  # ("field", Field) | ("lit", value)
    op: str | None
    value: int | float | None


_Tree = tuple[str, object]  # ("and"|"or", list) | ("not", tree) | ("const", truth) | ("leaf", _Leaf) | ...


@dataclass
class _Lowerer(Walker[_Tree]):
    """An IR condition to a plan tree: and/or/not and constants kept, every other node a leaf."""

    schema: Schema
    int_bits: int
    host_exprs: list[Expr] = field(default_factory=list)
    langs: set[str] = field(default_factory=set)

    def visit_Not(self, e: Not) -> _Tree:
        return ("not", self.visit(e.expr))

    def visit_And(self, e: And) -> _Tree:
        return ("and", self.visit_children(e))

    def visit_Or(self, e: Or) -> _Tree:
        return ("or", self.visit_children(e))

    def visit_Literal(self, e: Literal) -> _Tree:
        return ("const", truth(e.value))

    def generic_visit(self, node: Node, *args: object) -> _Tree:
        """Return a user call, else a native leaf, else a host leaf."""
        assert isinstance(node, Expr)  # noqa: S101 - conditions hold only expressions
        user = self._user(node)
        if user is not None:
            return ("user", user)
        method = self.handler(node, "leaf_")
        leaf: _Leaf | None = None if method is None else method(node)
        if leaf is not None:
            return ("leaf", leaf)
        return self.host(node)

    def host(self, e: Expr) -> _Tree:
        calls = user_calls(e)
        if calls:
            raise PolicyError(
                f"{calls[0].render()}: a user function must be compared with a number literal or used as a "
                "condition, with fields and literals as arguments"
            )
        self.host_exprs.append(e)
        return ("host", len(self.host_exprs) - 1)

    # ---- user calls
    def _user(self, e: Expr) -> _User | None:
        call: Expr = e
        op: str | None = None
        value: int | float | None = None
        if isinstance(e, Comparison):
            left, right, op = e.left, e.right, e.op
            if isinstance(left, Literal) and _user_name(right) is not None:
                left, right, op = right, left, FLIPPED_OPS[op]
            if _user_name(left) is None:
                return None
            if (
                not isinstance(right, Literal)
                or type(right.value) not in (int, float)
                or op not in COMPARE_OPS
            ):
                raise PolicyError(f"{e.render()}: a user function result is compared with a number literal")
            call, value = left, right.value  # type: ignore[assignment]
        name = _user_name(call)
        if name is None or not isinstance(call, Call):
            return None
        lang, function = name
        if lang not in USER_LANGS:
            raise PolicyError(f"{call.render()}: unknown module language '{lang}' (expected lua: or wasm:)")
        args: list[tuple[str, object]] = []
        for arg in call.args:
            if isinstance(arg, Field):
                args.append(("field", arg))
            elif isinstance(arg, Literal):
                args.append(("lit", arg.value))
            else:
                raise PolicyError(f"{call.render()}: arguments of a user function are fields or literals")
        self.langs.add(lang)
        return _User(lang, function, args, op, value)

    # ---- native leaves
    def leaf_Comparison(self, e: Comparison) -> _Leaf | None:
        found = field_vs_literal(e, self.schema)
        if found is None:
            return None
        op, f, lit = found
        if isinstance(lit, str):
            text: str = lit
            return _Leaf(f.name, f.path, "str", False, lambda c: PCompare(c, op, text), e)
        if isinstance(lit, int) and not isinstance(lit, bool) and fits(lit, self.int_bits):
            number: int = lit
            return _Leaf(f.name, f.path, "int", False, lambda c: PCompare(c, op, number), e)
        return None

    def leaf_StringMatch(self, e: StringMatch) -> _Leaf | None:
        f = plain_field(e.value, self.schema)
        if f is None or e.op == "regex":
            return None
        ci = e.op == ":" or e.case_insensitive
        if ci and not all(p.isascii() for p in e.patterns):
            return None
        patterns = tuple(p.lower() for p in e.patterns) if ci else e.patterns
        return _Leaf(f.name, f.path, "str", ci, lambda c: PWildcard(c, patterns, ci), e)

    def leaf_Call(self, e: Call) -> _Leaf | None:
        kind = _AFFIX.get(e.name.lower())
        if kind is None or len(e.args) != 2:
            return None
        f = plain_field(e.args[0], self.schema)
        arg = e.args[1]
        if f is None or not isinstance(arg, Literal) or not isinstance(arg.value, str):
            return None
        ci = e.case_insensitive
        if ci and not arg.value.isascii():
            return None
        text = arg.value.lower() if ci else arg.value
        return _Leaf(f.name, f.path, "str", ci, lambda c: PAffix(c, kind, text, ci), e)

    def leaf_InSet(self, e: InSet) -> _Leaf | None:
        f = plain_field(e.value, self.schema)
        if f is None or not e.items or not all(isinstance(i, Literal) for i in e.items):
            return None
        values = [i.value for i in e.items if isinstance(i, Literal)]
        neg, ci = e.negated, e.case_insensitive
        if all(isinstance(v, str) for v in values):
            strs = [str(v) for v in values]
            if ci and not all(s.isascii() for s in strs):
                return None
            items = tuple(sorted({s.lower() for s in strs} if ci else set(strs)))
            return _Leaf(f.name, f.path, "str", ci, lambda c: PIn(c, items, ci, neg), e)
        ints = [v for v in values if type(v) is int]
        if len(ints) == len(values) and not ci and all(fits(v, self.int_bits) for v in ints):
            nums = tuple(sorted(set(ints)))
            return _Leaf(f.name, f.path, "int", False, lambda c: PIn(c, nums, False, neg), e)
        return None


def lower(condition: Expr, schema: Schema = ECS, *, int_bits: int = 64) -> Lowered:
    """Lower a condition for a runtime whose columns carry ints of ``int_bits`` bits."""
    lw = _Lowerer(schema, int_bits)
    tree = lw.visit(condition)
    leaves: list[_Leaf] = []
    users: list[_User] = []
    _collect(tree, leaves, users)
    kinds: dict[str, set[str]] = {}
    for leaf in leaves:
        kinds.setdefault(leaf.field, set()).add(leaf.kind)
    for u in users:
        for tag, arg in u.args:
            if tag == "field" and isinstance(arg, Field):
                kinds.setdefault(arg.name, set()).add("any")
    demoted = {name for name, ks in kinds.items() if len(ks) > 1}
    columns: dict[str, int] = {}
    specs: list[ColumnSpec] = []
    getters: list[Getter] = []

    def column(name: str, path: tuple[str, ...], kind: str, ascii_only: bool) -> int:
        if name not in columns:
            columns[name] = len(specs)
            specs.append(ColumnSpec(name, ANY_KINDS if kind == "any" else frozenset({kind}), ascii_only))
            getters.append(fast_getter(name, path, schema.null_values.get(name)))
        index = columns[name]
        if ascii_only and not specs[index].ascii_only:
            old = specs[index]
            specs[index] = ColumnSpec(old.field, old.kinds, True)
        return index

    fallback: dict[PExpr, Callable[[Event], Truth]] = {}

    def build(t: _Tree) -> PExpr:
        tag, body = t
        if tag in ("and", "or"):
            terms = tuple(build(x) for x in body)  # type: ignore[attr-defined]
            return PAnd(terms) if tag == "and" else POr(terms)
        if tag == "not":
            return PNot(build(body))  # type: ignore[arg-type]
        if tag == "const":
            return PConst(body)  # type: ignore[arg-type]
        if tag == "host":
            return PHost(body)  # type: ignore[arg-type]
        if tag == "user":
            u: _User = body  # type: ignore[assignment]
            args: list[tuple[str, object]] = []
            for kind, arg in u.args:
                if kind == "field" and isinstance(arg, Field):
                    args.append(("col", column(arg.name, arg.path, "any", False)))
                else:
                    args.append(("lit", arg))
            return PUser(u.lang, u.function, tuple(args), u.op, u.value)  # type: ignore[arg-type]
        leaf: _Leaf = body  # type: ignore[assignment]
        if leaf.field in demoted:
            _tag, index = lw.host(leaf.origin)
            return PHost(index)  # type: ignore[arg-type]
        node = leaf.make(column(leaf.field, leaf.path, leaf.kind, leaf.ascii_only))
        fallback.setdefault(node, _truth_of(compile_expr(leaf.origin, schema)))
        return node

    expr = build(tree)
    host = tuple(_truth_of(compile_expr(e, schema)) for e in lw.host_exprs)
    return Lowered(
        expr, tuple(specs), tuple(getters), host, tuple(lw.host_exprs), fallback, frozenset(lw.langs)
    )


def _collect(t: _Tree, leaves: list[_Leaf], users: list[_User]) -> None:
    tag, body = t
    if tag in ("and", "or"):
        for x in body:  # type: ignore[attr-defined]
            _collect(x, leaves, users)
    elif tag == "not":
        _collect(body, leaves, users)  # type: ignore[arg-type]
    elif tag == "leaf":
        leaves.append(body)  # type: ignore[arg-type]
    elif tag == "user":
        users.append(body)  # type: ignore[arg-type]
