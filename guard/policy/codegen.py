"""Predicates compiled to Python source: one function per event filter, ``compile()``d once.

:func:`compile_predicate` turns an IR condition into the source of ``def pred(ev) -> bool`` (True
exactly when the offline evaluator's three-valued truth is True), compiles it and returns a
:class:`Predicate` holding both. The shapes rules are made of get inline code on the common value
type (a string or an integer field against literals): ``==``/``!=``/ordering against a literal,
``in``/``in~`` over literals, ``:``/``like``/``regex`` (one combined, anchored regex per wildcard test,
linear in the value: :mod:`guard.policy.wildcard`, :mod:`guard.policy.regex`),
``startsWith``/``endsWith``/``stringContains``; any other value type, and every other node, goes
through the offline evaluator's compiled closure for that node, so the semantics (Elastic's nulls,
multi-valued fields, coercions) are the evaluator's by construction. ``and``/``or``/``not`` become
Python's short-circuit operators over two views of each node: "is True" and "is False" (a null
is neither), which is three-valued logic without materialising the null.

A lineage test or an alias field is a generic leaf reading the :class:`~guard.policy.evaluator.EvalContext`
given to :func:`compile_predicate`.

Each field a predicate reads is fetched once per call by a generated getter: the flat dotted key,
then the nested objects, falling back to :func:`~guard.policy.semantics.field_getter` for lists and
odd shapes. Values are decided by :mod:`guard.policy.semantics`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from guard.policy import functions
from guard.policy.ast import And, Call, Comparison, Expr, Field, InSet, Literal, Not, Or, StringMatch
from guard.policy.evaluator import EvalContext, compile_expr
from guard.policy.schema import ECS, Schema
from guard.policy.semantics import (
    Event,
    Getter,
    as_value,
    compare,
    compile_regex,
    field_getter,
    field_vs_literal,
    plain_field,
    truth,
)
from guard.policy.walker import Node, Walker
from guard.policy.wildcard import compile_wildcards

__all__ = ["Predicate", "compile_predicate", "fast_getter"]

_CIDR_MATCH: Final = functions.FUNCTIONS["cidrmatch"].impl
_AFFIX: Final = {"startswith": "startswith", "endswith": "endswith"}
_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def fast_getter(name: str, path: tuple[str, ...], null_value: object = None) -> Getter:
    """Return a getter equal to :func:`~guard.policy.semantics.field_getter`, faster on plain events.

    Flat dotted key first, then the nested objects level by level (a level that lacks the next
    part answers with its dotted remainder, as the shared lookup does); a list on the way, or any
    other shape, is the shared lookup itself. Lists of strings are returned as they are.
    """
    slow = field_getter(name, path, null_value)
    if null_value is not None:
        return slow
    lines = [
        "def get(ev):",
        f"    if {name!r} in ev:",
        f"        v = ev[{name!r}]",
        "    else:",
        f"        c = ev.get({path[0]!r})",
    ]
    for i, part in enumerate(path[1:], 1):
        rest = ".".join(path[i:])
        lines += [
            "        if c is None:",
            "            return None",
            "        if type(c) is not dict:",
            "            return slow(ev)",
            f"        if {part!r} not in c:",
            f"            return as_value(c.get({rest!r}))",
            f"        c = c[{part!r}]",
        ]
    lines += [
        "        v = c",
        "    t = type(v)",
        "    if t is str or t is int or v is None or t is float or t is bool:",
        "        return v",
        "    if t is list and all(type(x) is str for x in v):",
        "        return v",
        "    return as_value(v)",
    ]
    source = "\n".join(lines) + "\n"
    namespace: dict[str, object] = {"slow": slow, "as_value": as_value}
    exec(compile(source, f"<getter {name}>", "exec"), namespace)  # noqa: S102 - our own generated source
    getter: Getter = namespace["get"]  # type: ignore[assignment]
    return getter


@dataclass(frozen=True, slots=True)
class _Fast:
    """A leaf's inline test, valid when ``var`` holds a ``kind`` (str or int) value."""

    var: str
    kind: str
    yes: str
    no: str | None = None  # None: the test is two-valued on that type, so "is False" is "not yes"


@dataclass(frozen=True, slots=True)
class Predicate:
    """A compiled condition: ``fn(event)`` is True when the condition holds; ``source`` is its code."""

    fn: Callable[[Event], bool]
    source: str
    fields: tuple[str, ...]


class _Gen(Walker[str]):
    """Emits Python expressions for a node's "is True" (``visit(e, True)``) and "is False" views."""

    def __init__(self, schema: Schema, context: EvalContext | None = None) -> None:
        self.schema = schema
        self.context = context
        self.namespace: dict[str, object] = {"_truth": truth, "_compare": compare, "_cidr_is": _cidr_is}
        self.fields: dict[str, str] = {}  # field name -> local variable
        self.getters: dict[str, Getter] = {}
        self._ids = itertools.count()

    def const(self, value: object, prefix: str = "K") -> str:
        name = f"{prefix}{next(self._ids)}"
        self.namespace[name] = value
        return name

    def var(self, f: Field) -> str:
        if f.name not in self.fields:
            self.fields[f.name] = f"f{len(self.fields)}"
            self.getters[f.name] = fast_getter(f.name, f.path, self.schema.null_values.get(f.name))
        return self.fields[f.name]

    def generic(self, e: Expr) -> str:
        """Return the node's truth through the offline evaluator's closure."""
        return f"_truth({self.const(compile_expr(e, self.schema, self.context), 'C')}(ev))"

    # ---- the two views: and/or/not swap under "is False" (De Morgan); other nodes are leaves
    def visit_Not(self, e: Not, want: bool) -> str:
        return self.visit(e.expr, not want)

    def visit_And(self, e: And, want: bool) -> str:
        return "(" + (" and " if want else " or ").join(self.visit(t, want) for t in e.terms) + ")"

    def visit_Or(self, e: Or, want: bool) -> str:
        return "(" + (" or " if want else " and ").join(self.visit(t, want) for t in e.terms) + ")"

    def generic_visit(self, node: Node, *args: object) -> str:
        """Return a leaf's "is True" or "is False" test: inline on the fast type, else the evaluator's."""
        assert isinstance(node, Expr)  # noqa: S101 - conditions hold only expressions
        want = args[0]
        slow = f"{self.generic(node)} is {want}"
        method = self.handler(node, "leaf_")
        fast: _Fast | None = None if method is None else method(node)
        if fast is None:
            return f"({slow})"
        test = fast.yes if want else (fast.no or f"not {fast.yes}")
        return f"({test} if type({fast.var}) is {fast.kind} else {slow})"

    # ---- leaves with a fast path (``leaf_<Node>``)
    def leaf_Comparison(self, e: Comparison) -> _Fast | None:
        found = field_vs_literal(e, self.schema)
        if found is None:
            return None
        op, f, lit = found
        if not (isinstance(lit, str) or type(lit) is int):
            return None
        var = self.var(f)
        return _Fast(var, "str" if isinstance(lit, str) else "int", f"({var} {op} {self.const(lit)})")

    def leaf_InSet(self, e: InSet) -> _Fast | None:
        f = plain_field(e.value, self.schema)
        if f is None or not e.items or not all(isinstance(i, Literal) for i in e.items):
            return None
        values = [i.value for i in e.items if isinstance(i, Literal)]
        if all(isinstance(v, str) for v in values):
            items = frozenset(str(v).casefold() if e.case_insensitive else v for v in values)
            kind = "str"
        elif all(type(v) is int for v in values) and not e.case_insensitive:
            items = frozenset(values)
            kind = "int"
        else:
            return None
        var = self.var(f)
        probe = f"{var}.casefold()" if e.case_insensitive else var
        test = f"({probe} {'not in' if e.negated else 'in'} {self.const(items, 'S')})"
        return _Fast(var, kind, test)

    def leaf_StringMatch(self, e: StringMatch) -> _Fast | None:
        f = plain_field(e.value, self.schema)
        if f is None:
            return None
        var = self.var(f)
        if e.op == "regex":
            regexes = tuple(compile_regex(p, e.case_insensitive) for p in e.patterns)
            if len(regexes) == 1:
                return _Fast(var, "str", f"({self.const(regexes[0], 'R')}.fullmatch({var}) is not None)")
            rs = self.const(regexes, "R")
            return _Fast(var, "str", f"any(r.fullmatch({var}) is not None for r in {rs})")
        ci = e.op == ":" or e.case_insensitive
        combined = compile_wildcards(tuple(e.patterns), case_insensitive=ci)
        return _Fast(var, "str", f"({self.const(combined, 'R')}.fullmatch({var}) is not None)")

    def leaf_Call(self, e: Call) -> _Fast | None:
        name = e.name.lower()
        if name == "cidrmatch":
            return self._cidr(e)
        if name not in ("startswith", "endswith", "stringcontains") or len(e.args) != 2:
            return None
        f = plain_field(e.args[0], self.schema)
        lit = e.args[1]
        if f is None or not isinstance(lit, Literal) or not isinstance(lit.value, str):
            return None
        var = self.var(f)
        text = lit.value.lower() if e.case_insensitive else lit.value
        probe = f"{var}.lower()" if e.case_insensitive else var
        k = self.const(text)
        if name == "stringcontains":
            if not text:
                return _Fast(var, "str", "False")
            return _Fast(var, "str", f"({k} in {probe})")
        return _Fast(var, "str", f"{probe}.{_AFFIX[name]}({k})")

    def _cidr(self, e: Call) -> _Fast | None:
        f = plain_field(e.args[0], self.schema) if e.args else None
        cidrs = e.args[1:]
        if (
            f is None
            or not cidrs
            or not all(isinstance(c, Literal) and isinstance(c.value, str) for c in cidrs)
        ):
            return None
        var = self.var(f)
        args = self.const(tuple(c.value for c in cidrs if isinstance(c, Literal)), "A")
        # a string address against literal CIDRs: the function itself, without the generic call wrapper;
        # an address that is not one makes it null, so both views are spelled out
        return _Fast(var, "str", f"(_cidr_is({var}, {args}) is True)", f"(_cidr_is({var}, {args}) is False)")


def _cidr_is(address: str, cidrs: tuple[str, ...]) -> bool | None:
    """Return cidrMatch(address, cidrs...) for one string address (None where the function is null)."""
    try:
        result = _CIDR_MATCH([address, *cidrs], False)
    except functions.FunctionError:
        return None
    return result if isinstance(result, bool) else None


def compile_predicate(
    condition: Expr, schema: Schema = ECS, *, name: str = "pred", context: EvalContext | None = None
) -> Predicate:
    """Compile a condition to Python source and a function; True iff the condition is True.

    Lineage tests and alias fields read ``context`` (see :func:`~guard.policy.evaluator.compile_expr`).
    """
    if not _IDENT.fullmatch(name):
        raise ValueError(f"not a Python identifier: {name!r}")
    gen = _Gen(schema, context)
    body = gen.visit(condition, True)
    lines = [f"def {name}(ev):"]
    for field_name, var in gen.fields.items():
        getter = gen.const(gen.getters[field_name], "G")
        lines.append(f"    {var} = {getter}(ev)  # {field_name}")
    lines.append(f"    return {body}")
    source = "\n".join(lines) + "\n"
    namespace = gen.namespace
    exec(compile(source, f"<predicate {name}>", "exec"), namespace)  # noqa: S102 - our own generated source
    fn: Callable[[Event], bool] = namespace[name]  # type: ignore[assignment]
    return Predicate(fn, source, tuple(gen.fields))
