"""Semantic analysis: fields, types, functions and query shape checked against a schema; AST to IR.

Errors are :class:`~guard.errors.PolicySemanticError` naming the field, function or operator, e.g.
``unknown field 'proces.name'``, ``type mismatch: process.pid (number) == "x" (string)``,
``unknown function 'startswit'``, ``startsWith takes 2 arguments, got 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guard.errors import PolicySemanticError
from guard.policy import functions
from guard.policy.ast import (
    And,
    Arithmetic,
    Call,
    Comparison,
    EventFilter,
    Expr,
    Field,
    InSet,
    Literal,
    Negate,
    Not,
    Or,
    Query,
    Sequence,
    SequenceStep,
    StringMatch,
)
from guard.policy.ir import QueryIR, StepIR
from guard.policy.parser import parse_query
from guard.policy.regex import RegexError, compile_regex
from guard.policy.schema import ECS, Kind, Schema
from guard.policy.walker import Walker

__all__ = ["analyze", "compile_query"]

_STRINGY = frozenset({Kind.STRING, Kind.IP, Kind.DATE, Kind.VERSION})
_LOOSE = frozenset({Kind.ANY, Kind.NULL})
_PIPES = ("head", "tail")


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

    def fail(self, message: str) -> PolicySemanticError:
        return PolicySemanticError(message)

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
        if not _compatible(left, right):
            raise self.fail(
                f"type mismatch: {e.left.render()} ({left.value}) {e.op} {e.right.render()} ({right.value})"
            )
        return Kind.BOOLEAN

    def visit_InSet(self, e: InSet) -> Kind:
        value = self.visit(e.value)
        for item in e.items:
            kind = self.visit(item)
            if not _compatible(value, kind):
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


def _step(checker: _Checker, filt: EventFilter, keys: tuple[Expr, ...], missing: bool) -> StepIR:
    checker.condition(filt.condition)
    for key in keys:
        checker.visit(key)
    return StepIR(filt.category, filt.condition, keys, missing)


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


def _expand(steps: tuple[SequenceStep, ...]) -> list[SequenceStep]:
    out: list[SequenceStep] = []
    for s in steps:
        out.extend([s] * (s.runs or 1))
    return out


def analyze(query: Query, schema: Schema = ECS) -> QueryIR:
    """Check ``query`` against ``schema`` and lower it to the IR."""
    checker = _Checker(schema)
    head, tail = _limits(query)
    body = query.body
    if isinstance(body, EventFilter):
        step = _step(checker, body, (), False)
        return QueryIR(query, (step,), False, None, None, head, tail, dict(checker.kinds), schema.name)
    if not isinstance(body, Sequence):  # pragma: no cover - the parser builds only these two
        raise PolicySemanticError(f"unsupported query body {type(body).__name__}")
    steps = _expand(body.steps)
    if len(steps) < 2:
        raise PolicySemanticError("a sequence needs at least two steps")
    if all(s.missing for s in steps):
        raise PolicySemanticError("a sequence needs at least one step that is not a missing event (![...])")
    irs = [_step(checker, s.filter, body.keys + s.keys, s.missing) for s in steps]
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
    return QueryIR(query, tuple(irs), True, until, span, head, tail, dict(checker.kinds), schema.name)


def compile_query(source: str, schema: Schema = ECS, *, path: str | None = None) -> QueryIR:
    """Parse and analyze; semantic errors carry the path when given."""
    query = parse_query(source, path=path)
    try:
        return analyze(query, schema)
    except PolicySemanticError as exc:
        if path:
            raise PolicySemanticError(f"{path}: {exc}") from None
        raise
