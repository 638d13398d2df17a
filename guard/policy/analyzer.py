"""Semantic analysis: fields, types, functions and query shape checked against a schema; AST to IR.

Errors are :class:`~guard.errors.PolicySemanticError` naming the field, function or operator, e.g.
``unknown field 'proces.name'``, ``type mismatch: process.pid (number) == "x" (string)``,
``unknown function 'startswit'``, ``startsWith takes 2 arguments, got 1``.

Elastic Endpoint's dialect: a step's alias (``[...] as event0``) may be read by the conditions of
later steps (``event0.process.name``, typed as the schema types ``process.name``); lineage filters
(``descendant of [...]``) are checked like any filter; a string field compared with an integer
literal (``user.id == 0``, ``user.id in (0, 1)``) compares with its string form, and may be ordered
against a number (``user.id >= 1000``: the value read as a number). A ``sample`` has 2 to 5 filters
and at least one join key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Final

from guard.errors import PolicySemanticError
from guard.policy import functions
from guard.policy.ast import (
    AliasField,
    And,
    Arithmetic,
    Call,
    Comparison,
    EventFilter,
    Expr,
    Field,
    InSet,
    Lineage,
    Literal,
    Negate,
    Not,
    Or,
    Query,
    Sample,
    Sequence,
    SequenceStep,
    StringMatch,
)
from guard.policy.ir import QueryIR, StepIR
from guard.policy.parser import parse_query
from guard.policy.regex import RegexError, compile_regex
from guard.policy.schema import ECS, Kind, Schema
from guard.policy.walker import Node, Walker, iter_nodes, rebuild, stateful

__all__ = ["analyze", "compile_query"]

_STRINGY = frozenset({Kind.STRING, Kind.IP, Kind.DATE, Kind.VERSION})
_LOOSE = frozenset({Kind.ANY, Kind.NULL})
_PIPES = ("head", "tail")
#: a sample's filters, as Elasticsearch allows them
_SAMPLE_FILTERS: Final = (2, 5)


def _compatible(a: Kind, b: Kind) -> bool:
    if a in _LOOSE or b in _LOOSE or a == b:
        return True
    pair = {a, b}
    return pair <= _STRINGY or pair == {Kind.NUMBER, Kind.DATE}


def _kind_of_spec(text: str) -> Kind:
    return {
        "string": Kind.STRING,
        "number": Kind.NUMBER,
        "boolean": Kind.BOOLEAN,
        "ip": Kind.IP,
    }.get(text, Kind.ANY)


@dataclass
class _Checker(Walker[Kind]):
    """Infers each node's kind (``visit``), raising on unknown names and mismatched types."""

    schema: Schema
    kinds: dict[str, Kind] = field(default_factory=dict)
    #: every alias the query declares (a field starting with one, where it is not visible, is refused)
    aliases: frozenset[str] = frozenset()

    def fail(self, message: str) -> PolicySemanticError:
        return PolicySemanticError(message)

    def visit_AliasField(self, e: AliasField) -> Kind:
        kind = self.schema.kind(e.name)
        if kind is None:
            raise self.fail(f"unknown field '{e.name}' (read through alias '{e.alias}'; not in the "
                            f"{self.schema.name} schema)")  # fmt: skip
        self.kinds[e.name] = kind
        return kind

    def visit_Lineage(self, e: Lineage) -> Kind:
        self.condition(e.filter.condition)
        for name in Lineage.READS:
            self.kinds.setdefault(name, self.schema.kind(name) or Kind.STRING)
        return Kind.BOOLEAN

    def visit_Literal(self, e: Literal) -> Kind:
        v = e.value
        if v is None:
            return Kind.NULL
        if isinstance(v, bool):
            return Kind.BOOLEAN
        if isinstance(v, str):
            return Kind.STRING
        return Kind.NUMBER

    def visit_Field(self, e: Field) -> Kind:
        kind = self.schema.kind(e.name)
        if kind is None and len(e.path) > 1 and e.path[0] in self.aliases:
            raise self.fail(
                f"alias '{e.path[0]}' cannot be read here ({e.render()}): only the conditions of later "
                "steps read a step's alias, not its own step, keys, missing steps, until or lineage filters"
            )
        if kind is None:
            if not e.optional:
                raise self.fail(
                    f"unknown field '{e.name}' (not in the {self.schema.name} schema; ?{e.name} allows it)"
                )
            kind = Kind.NULL
        self.kinds[e.name] = kind
        # An optional field may be absent or typed differently where the rule runs: not type-checked.
        return Kind.ANY if e.optional else kind

    def visit_Call(self, e: Call) -> Kind:
        if ":" in e.name:  # lua:name / wasm:name: a user function; its module is resolved when compiled
            for arg in e.args:
                self.visit(arg)
            return Kind.ANY
        spec = functions.lookup(e.name)
        if spec is None:
            raise self.fail(f"unknown function '{e.name}'")
        n = len(e.args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            if spec.max_args is None:
                want = f"at least {spec.min_args}"
            elif spec.min_args == spec.max_args:
                want = str(spec.min_args)
            else:
                want = f"{spec.min_args} to {spec.max_args}"
            raise self.fail(f"{spec.name} takes {want} argument{'s' if want != '1' else ''}, got {n}")
        if e.case_insensitive and not spec.case_insensitive_ok:
            raise self.fail(f"{spec.name} has no case-insensitive form ({spec.name}~)")
        for i, arg in enumerate(e.args):
            got = self.visit(arg)
            if not spec.arg_kinds:
                continue
            want_kind = _kind_of_spec(spec.arg_kinds[min(i, len(spec.arg_kinds) - 1)])
            if want_kind is not Kind.ANY and not _compatible(got, want_kind):
                raise self.fail(
                    f"type mismatch: argument {i + 1} of {spec.name} must be {want_kind.value}, "
                    f"{arg.render()} is {got.value}"
                )
        return _kind_of_spec(spec.returns)

    def visit_Comparison(self, e: Comparison) -> Kind:
        left, right = self.visit(e.left), self.visit(e.right)
        if not _compatible(left, right) and not _keyword_vs_number(e.left, left, e.right, right):
            raise self.fail(
                f"type mismatch: {e.left.render()} ({left.value}) {e.op} {e.right.render()} ({right.value})"
            )
        return Kind.BOOLEAN

    def visit_InSet(self, e: InSet) -> Kind:
        value = self.visit(e.value)
        for item in e.items:
            kind = self.visit(item)
            if not _compatible(value, kind) and not _keyword_vs_number(e.value, value, item, kind):
                raise self.fail(
                    f"type mismatch: {e.value.render()} ({value.value}) in "
                    f"(... {item.render()} ({kind.value}))"
                )
        return Kind.BOOLEAN

    def visit_StringMatch(self, e: StringMatch) -> Kind:
        kind = self.visit(e.value)
        if kind not in _STRINGY and kind not in _LOOSE:
            raise self.fail(f"{e.op} needs a string: {e.value.render()} is {kind.value}")
        if e.op == "regex":
            for pattern in e.patterns:
                try:
                    compile_regex(pattern, e.case_insensitive)
                except RegexError as exc:
                    raise self.fail(f"invalid regex {pattern!r}: {exc}") from None
        return Kind.BOOLEAN

    def visit_Arithmetic(self, e: Arithmetic) -> Kind:
        for side in (e.left, e.right):
            kind = self.visit(side)
            if kind not in (Kind.NUMBER, *_LOOSE):
                raise self.fail(f"type mismatch: {e.op} needs numbers, {side.render()} is {kind.value}")
        return Kind.NUMBER

    def visit_Negate(self, e: Negate) -> Kind:
        kind = self.visit(e.expr)
        if kind not in (Kind.NUMBER, *_LOOSE):
            raise self.fail(f"type mismatch: unary minus needs a number, {e.expr.render()} is {kind.value}")
        return Kind.NUMBER

    def condition(self, e: Expr) -> None:
        kind = self.visit(e)
        if kind not in (Kind.BOOLEAN, *_LOOSE):
            raise self.fail(f"a condition must be boolean: {e.render()} is {kind.value}")

    def visit_Not(self, e: Not) -> Kind:
        self.condition(e.expr)
        return Kind.BOOLEAN

    def visit_And(self, e: And) -> Kind:
        for t in e.terms:
            self.condition(t)
        return Kind.BOOLEAN

    def visit_Or(self, e: Or) -> Kind:
        for t in e.terms:
            self.condition(t)
        return Kind.BOOLEAN


def _keyword_vs_number(a: Expr, kind_a: Kind, b: Expr, kind_b: Kind) -> bool:
    """Tell whether one side is a string field and the other a number literal (Endpoint compares those)."""
    for f, kf, lit, kl in ((a, kind_a, b, kind_b), (b, kind_b, a, kind_a)):
        if (
            kf is Kind.STRING
            and kl is Kind.NUMBER
            and isinstance(f, Field | AliasField)
            and isinstance(lit, Literal)
        ):
            return True
    return False


class _Normalize:
    """The analyzer's rewrites of a condition: alias fields, and integers compared with string fields."""

    def __init__(self, schema: Schema, visible: Collection[str]) -> None:
        self.schema = schema
        self.visible = visible

    def kind(self, e: Expr) -> Kind | None:
        if (isinstance(e, Field) and not e.optional) or isinstance(e, AliasField):
            return self.schema.kind(e.name)
        return None

    def string_form(self, e: Expr) -> Expr:
        if isinstance(e, Literal) and type(e.value) is int:
            return Literal(str(e.value))
        return e

    def __call__(self, node: Node) -> Node:
        if isinstance(node, Lineage):  # its filter matches other events: no alias is visible there
            inner = _Normalize(self.schema, ())
            return Lineage(
                node.relation, EventFilter(node.filter.category, inner.expr(node.filter.condition))
            )
        if (
            isinstance(node, Field)
            and not node.optional
            and len(node.path) > 1
            and node.path[0] in self.visible
        ):
            return AliasField(node.path[0], node.path[1:])
        node = rebuild(node, self)
        if isinstance(node, Comparison) and node.op in ("==", "!="):
            if self.kind(node.left) is Kind.STRING:
                return Comparison(node.op, node.left, self.string_form(node.right))
            if self.kind(node.right) is Kind.STRING:
                return Comparison(node.op, self.string_form(node.left), node.right)
        if isinstance(node, InSet) and self.kind(node.value) is Kind.STRING:
            items = tuple(self.string_form(i) for i in node.items)
            if any(a is not b for a, b in zip(items, node.items, strict=True)):
                return InSet(node.value, items, negated=node.negated, case_insensitive=node.case_insensitive)
        return node

    def expr(self, e: Expr) -> Expr:
        out = self(e)
        assert isinstance(out, Expr)  # noqa: S101 - a rewrite keeps expressions expressions
        return out


def _step(
    checker: _Checker,
    filt: EventFilter,
    keys: tuple[Expr, ...],
    missing: bool,
    *,
    visible: Collection[str] = (),
    alias: str | None = None,
) -> StepIR:
    norm = _Normalize(checker.schema, visible)
    condition = norm.expr(filt.condition)
    checker.condition(condition)
    keys = tuple(_Normalize(checker.schema, ()).expr(k) for k in keys)
    for key in keys:
        checker.visit(key)
    if stateful(condition) and any(isinstance(n, Call) and ":" in n.name for n in iter_nodes(condition)):
        raise PolicySemanticError(
            "a condition with a lineage test or an alias runs in Python: "
            "it cannot call lua: or wasm: functions"
        )
    return StepIR(filt.category, condition, keys, missing, alias)


def _lineage_filters(exprs: Iterable[Expr]) -> tuple[EventFilter, ...]:
    """Every distinct lineage filter, inner ones first (their matches are known before the outer ones')."""
    out: dict[tuple[str | None, str], EventFilter] = {}

    def walk(node: Node) -> None:
        for n in iter_nodes(node):
            if isinstance(n, Lineage):
                walk(n.filter.condition)
                out.setdefault((n.filter.category, n.filter.condition.render()), n.filter)

    for e in exprs:
        walk(e)
    return tuple(out.values())


def _limits(query: Query) -> tuple[int | None, int | None]:
    head: int | None = None
    tail: int | None = None
    for pipe in query.pipes:
        if pipe.name not in _PIPES:
            raise PolicySemanticError(f"unknown pipe '{pipe.name}' (supported: {', '.join(_PIPES)})")
        if (
            len(pipe.args) != 1
            or not isinstance(pipe.args[0], Literal)
            or type(pipe.args[0].value) is not int
        ):
            raise PolicySemanticError(f"| {pipe.name} takes one non-negative integer")
        n = pipe.args[0].value
        if not isinstance(n, int) or n < 0:
            raise PolicySemanticError(f"| {pipe.name} takes one non-negative integer, got {n}")
        if pipe.name == "head":
            head = n if head is None else min(head, n)
        else:
            tail = n if tail is None else min(tail, n)
    return head, tail


def _expand(steps: tuple[SequenceStep, ...]) -> list[tuple[int, SequenceStep]]:
    """Each step ``runs`` times, with its position in the query; its alias names the last run."""
    out: list[tuple[int, SequenceStep]] = []
    for n, s in enumerate(steps):
        runs = s.runs or 1
        out.extend(
            (n, s if i == runs - 1 else SequenceStep(s.filter, s.keys, s.missing)) for i in range(runs)
        )
    return out


def _check_aliases(
    steps: Iterable[SequenceStep], until: SequenceStep | None, schema: Schema
) -> frozenset[str]:
    roots = {name.split(".", 1)[0] for name in schema}
    seen: set[str] = set()
    for s in steps:
        if s.alias is None:
            continue
        if s.missing:
            raise PolicySemanticError(
                f"a missing step (![...]) matches no event: it cannot be named ('as {s.alias}')"
            )
        if s.alias in seen:
            raise PolicySemanticError(f"alias '{s.alias}' names two steps")
        if s.alias in roots:
            raise PolicySemanticError(f"alias '{s.alias}' is also a field name in the {schema.name} schema")
        seen.add(s.alias)
    if until is not None and until.alias is not None:
        raise PolicySemanticError(
            f"an until step matches no part of the result: it cannot be named ('as {until.alias}')"
        )
    return frozenset(seen)


def _sample(checker: _Checker, body: Sample, head: int | None, tail: int | None, query: Query) -> QueryIR:
    lo, hi = _SAMPLE_FILTERS
    if not lo <= len(body.filters) <= hi:
        raise PolicySemanticError(f"a sample needs {lo} to {hi} filters, got {len(body.filters)}")
    if query.pipes:
        raise PolicySemanticError("pipes are not supported for sample queries")
    for f in body.filters:
        if f.missing or f.runs is not None or f.alias is not None:
            raise PolicySemanticError("a sample's filters are unordered: no missing (![...]), runs or alias")
    irs = [_step(checker, f.filter, body.keys + f.keys, False) for f in body.filters]
    counts = {len(s.keys) for s in irs}
    if len(counts) > 1:
        raise PolicySemanticError(
            f"inconsistent number of join keys: every filter needs the same number, found {sorted(counts)}"
        )
    if not irs[0].keys:
        raise PolicySemanticError("a sample needs at least one join key (sample by ...)")
    conditions = [s.condition for s in irs]
    return QueryIR(query, tuple(irs), True, None, None, head, tail, dict(checker.kinds), checker.schema.name,
                   is_sample=True, lineage=_lineage_filters(conditions))  # fmt: skip


def analyze(query: Query, schema: Schema = ECS) -> QueryIR:
    """Check ``query`` against ``schema`` and lower it to the IR."""
    checker = _Checker(schema)
    head, tail = _limits(query)
    body = query.body
    if isinstance(body, EventFilter):
        step = _step(checker, body, (), False)
        return QueryIR(query, (step,), False, None, None, head, tail, dict(checker.kinds), schema.name,
                       lineage=_lineage_filters([step.condition]))  # fmt: skip
    if isinstance(body, Sample):
        return _sample(checker, body, head, tail, query)
    if not isinstance(body, Sequence):  # pragma: no cover - the parser builds only these three
        raise PolicySemanticError(f"unsupported query body {type(body).__name__}")
    checker.aliases = _check_aliases(body.steps, body.until, schema)
    expanded = _expand(body.steps)
    if len(expanded) < 2:
        raise PolicySemanticError("a sequence needs at least two steps")
    if all(s.missing for _, s in expanded):
        raise PolicySemanticError("a sequence needs at least one step that is not a missing event (![...])")
    irs = []
    for n, s in expanded:
        visible = () if s.missing else {a for a in (t.alias for t in body.steps[:n]) if a is not None}
        irs.append(_step(checker, s.filter, body.keys + s.keys, s.missing, visible=visible, alias=s.alias))
    counts = {len(s.keys) for s in irs}
    until = None
    if body.until is not None:
        until = _step(checker, body.until.filter, body.keys + body.until.keys, False)
        counts.add(len(until.keys))
    if len(counts) > 1:
        raise PolicySemanticError(
            f"inconsistent number of join keys: every step needs the same number, found {sorted(counts)}"
        )
    span = body.maxspan.milliseconds if body.maxspan is not None else None
    if span is not None and span <= 0:
        raise PolicySemanticError("maxspan must be positive")
    conditions = [s.condition for s in [*irs, *([until] if until else [])]]
    return QueryIR(query, tuple(irs), True, until, span, head, tail, dict(checker.kinds), schema.name,
                   lineage=_lineage_filters(conditions))  # fmt: skip


def compile_query(source: str, schema: Schema = ECS, *, path: str | None = None) -> QueryIR:
    """Parse and analyze; semantic errors carry the path when given."""
    query = parse_query(source, path=path)
    try:
        return analyze(query, schema)
    except PolicySemanticError as exc:
        if path:
            raise PolicySemanticError(f"{path}: {exc}") from None
        raise
