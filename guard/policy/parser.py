"""EQL text to :mod:`guard.policy.ast`: the only module that imports lark.

Every lark error is converted here, once, into :class:`~guard.errors.PolicySyntaxError` carrying
the line, the column and the source, so a caret line can be shown; no lark traceback reaches a user.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Final

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from guard.errors import PolicySyntaxError
from guard.policy.ast import (
    DURATION_UNITS,
    LINEAGE_RELATIONS,
    And,
    Arithmetic,
    Call,
    Comparison,
    Duration,
    EventFilter,
    Expr,
    Field,
    InSet,
    Lineage,
    Literal,
    Negate,
    Not,
    Or,
    Pipe,
    Query,
    Sample,
    Sequence,
    SequenceStep,
    StringMatch,
)
from guard.policy.limits import MAX_QUERY_CHARS, MAX_QUERY_DEPTH, MAX_RUNS

__all__ = ["parse_expression", "parse_query"]

_GRAMMAR: Final = Path(__file__).with_name("grammar.lark")
_TOKEN_NAMES: Final = {
    "COMPARE": "a comparison",
    "ADD_OP": "+ or -",
    "MUL_OP": "*, / or %",
    "DOT": "'.'",
    "VBAR": "'|'",
    "SEQ": "':'",
    "IN": "in",
    "LIKE": "like",
    "REGEX": "regex",
    "STRING": "a string",
    "NUMBER": "a number",
    "NAME": "a name",
    "FUNCTION": "a function",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "$END": "the end of the query",
}
_SIMPLE_ESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "'": "'", "0": "\0"}


def _unescape(text: str, line: int, column: int, source: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and text[i + 2 : i + 3] == "{":
            end = text.find("}", i + 3)
            try:
                out.append(chr(int(text[i + 3 : end], 16)))
            except (ValueError, OverflowError):
                raise PolicySyntaxError(
                    "invalid unicode escape in string", line=line, column=column + i, source=source
                ) from None
            i = end + 1
        else:
            raise PolicySyntaxError(
                f"invalid escape sequence '\\{nxt}' in string", line=line, column=column + i, source=source
            )
    return "".join(out)


def _string_value(token: Token, source: str) -> str:
    text = str(token)
    if text.startswith('"""'):
        return text[3:-3]  # raw: no escapes
    return _unescape(text[1:-1], token.line or 1, (token.column or 1) + 1, source)


def _number_value(text: str) -> int | float:
    if re.fullmatch(r"\d+", text):
        return int(text)
    return float(text)


class _Alias(str):
    """A step's ``as name``, told apart from the other parts of a step."""

    __slots__ = ()


def _flatten(cls: type[And] | type[Or], items: list[Expr]) -> Expr:
    terms: list[Expr] = []
    for item in items:
        terms.extend(item.terms if isinstance(item, cls) else (item,))
    return cls(tuple(terms))


@v_args(inline=True)
class _ToAst(Transformer[Token, Query]):
    """Build AST nodes bottom-up."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    # literals and fields
    def string(self, tok: Token) -> Literal:
        return Literal(_string_value(tok, self.source))

    def number(self, tok: Token) -> Literal:
        return Literal(_number_value(str(tok)))

    def true(self) -> Literal:
        return Literal(True)

    def false(self) -> Literal:
        return Literal(False)

    def null(self) -> Literal:
        return Literal(None)

    def field_part(self, tok: Token) -> str:
        text = str(tok)
        return text[1:-1].replace("``", "`") if text.startswith("`") else text

    def field_path(self, *parts: str) -> tuple[str, ...]:
        return tuple(parts)

    def field(self, *items: Token | tuple[str, ...]) -> Field:
        path = items[-1]
        if not isinstance(path, tuple):  # pragma: no cover - the grammar puts the path last
            raise PolicySyntaxError("malformed field", source=self.source)
        return Field(path, optional=len(items) == 2)

    def call(self, name: Token, *args: Expr) -> Call:
        text = str(name)
        return Call(text.rstrip("~"), tuple(args), case_insensitive=text.endswith("~"))

    # operators
    def unary_op(self, op: Token, expr: Expr) -> Expr:
        if str(op) == "+":
            return expr
        if (
            isinstance(expr, Literal)
            and isinstance(expr.value, int | float)
            and not isinstance(expr.value, bool)
        ):
            return Literal(-expr.value)
        return Negate(expr)

    def binary(self, left: Expr, op: Token, right: Expr) -> Arithmetic:
        return Arithmetic(str(op), left, right)

    def comparison(self, left: Expr, op: Token, right: Expr) -> Comparison:
        return Comparison(str(op), left, right)

    def in_set(self, value: Expr, *rest: Token | Expr) -> InSet:
        negated = isinstance(rest[0], Token) and rest[0].type == "NOT"
        if negated:
            rest = rest[1:]
        op = rest[0]
        items = tuple(r for r in rest[1:] if isinstance(r, Expr))
        return InSet(value, items, negated=negated, case_insensitive=str(op).endswith("~"))

    def patterns(self, *tokens: Token) -> tuple[str, ...]:
        return tuple(_string_value(t, self.source) for t in tokens)

    def string_match(self, value: Expr, op: Token, patterns: tuple[str, ...]) -> StringMatch:
        text = str(op)
        if text == ":":
            return StringMatch(":", value, patterns, case_insensitive=True)
        return StringMatch(text.rstrip("~"), value, patterns, case_insensitive=text.endswith("~"))

    def not_(self, _tok: Token, expr: Expr) -> Not:
        return Not(expr)

    def lineage(self, relation: Token, filt: EventFilter) -> Lineage:
        text = str(relation)
        if text not in LINEAGE_RELATIONS:
            raise PolicySyntaxError(
                f"unknown relation {text!r} in '{text} of [...]' (use descendant, child or event)",
                line=relation.line, column=relation.column, source=self.source,
            )  # fmt: skip
        return Lineage(text, filt)

    def and_expr(self, *items: Expr) -> Expr:
        return _flatten(And, list(items))

    def or_expr(self, *items: Expr) -> Expr:
        return _flatten(Or, list(items))

    # queries
    def event_category(self, tok: Token) -> str:
        return _string_value(tok, self.source) if tok.type == "STRING" else str(tok)

    def event_filter(self, category: Token | str, condition: Expr) -> EventFilter:
        if isinstance(category, Token) and category.type == "ANY":
            return EventFilter(None, condition)
        return EventFilter(str(category), condition)

    def by_keys(self, *keys: Expr) -> tuple[Expr, ...]:
        return tuple(keys)

    def maxspan(self, number: Token, unit: Token | None = None) -> Duration:
        unit_text = str(unit) if unit is not None else ""
        if unit_text not in DURATION_UNITS:
            raise PolicySyntaxError(
                f"unknown time unit {unit_text!r} in maxspan (use ms, s, m, h or d)",
                line=unit.line if unit is not None else None,
                column=unit.column if unit is not None else None,
                source=self.source,
            )
        return Duration(_number_value(str(number)), unit_text)

    def runs(self, number: Token) -> int:
        value = _number_value(str(number))
        if not isinstance(value, int) or not 1 <= value <= MAX_RUNS:
            raise PolicySyntaxError(
                f"runs must be a positive integer, at most {MAX_RUNS}, got {number}", line=number.line,
                column=number.column, source=self.source,
            )  # fmt: skip
        return value

    def step_alias(self, name: Token) -> _Alias:
        return _Alias(str(name))

    def seq_term(self, *items: Token | EventFilter | tuple[Expr, ...] | int | _Alias) -> SequenceStep:
        missing = isinstance(items[0], Token) and items[0].type == "MISSING"
        filt = next(i for i in items if isinstance(i, EventFilter))
        keys = next((i for i in items if isinstance(i, tuple)), ())
        runs = next((i for i in items if isinstance(i, int) and not isinstance(i, bool)), None)
        alias = next((str(i) for i in items if isinstance(i, _Alias)), None)
        return SequenceStep(filt, keys, missing=missing, runs=runs, alias=alias)

    def seq_params(self, *items: tuple[Expr, ...] | Duration) -> tuple[tuple[Expr, ...], Duration | None]:
        keys = next((i for i in items if isinstance(i, tuple)), ())
        span = next((i for i in items if isinstance(i, Duration)), None)
        return keys, span

    def until(self, step: SequenceStep) -> tuple[str, SequenceStep]:
        return ("until", step)

    def sequence(self, *items: object) -> Sequence:
        keys: tuple[Expr, ...] = ()
        span: Duration | None = None
        steps: list[SequenceStep] = []
        until: SequenceStep | None = None
        for item in items:
            if isinstance(item, SequenceStep):
                steps.append(item)
            elif isinstance(item, tuple) and len(item) == 2 and item[0] == "until":
                until = item[1]
            elif isinstance(item, tuple):
                keys, span = item
        return Sequence(tuple(steps), keys, span, until)

    def sample(self, *items: tuple[Expr, ...] | SequenceStep) -> Sample:
        keys = next((i for i in items if isinstance(i, tuple)), ())
        return Sample(tuple(i for i in items if isinstance(i, SequenceStep)), keys)

    def pipe(self, name: Token, *args: Expr) -> Pipe:
        return Pipe(str(name), tuple(args))

    def start(self, body: EventFilter | Sequence | Sample, *pipes: Pipe) -> Query:
        return Query(body, tuple(pipes))


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(_GRAMMAR.read_text(), parser="lalr", propagate_positions=False, maybe_placeholders=False)


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of the query"
    if token.type == "BAD_STRING":
        return "a single-quoted string (EQL strings use double quotes)"
    return repr(str(token))


def _expected(names: set[str]) -> str:
    shown = sorted(_TOKEN_NAMES.get(n, n.lower().strip("_")) for n in names if not n.startswith("__"))
    return ", ".join(shown[:8]) + (" ..." if len(shown) > 8 else "")


def _syntax_error(exc: UnexpectedInput, source: str) -> PolicySyntaxError:
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        message = f"unexpected {_describe(tok)}"
        if tok.type == "$END":
            lines = source.splitlines() or [""]
            line, column = len(lines), len(lines[-1]) + 1
        elif str(tok) == "=":
            message += " (use == to compare)"
        elif tok.type != "BAD_STRING" and exc.expected:
            message += f", expected {_expected(set(exc.expected))}"
    elif isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = source[pos] if pos < len(source) else ""
        message = (
            "single-quoted strings are not EQL: use double quotes"
            if ch == "'"
            else f"unexpected character {ch!r}"
        )
        if ch == '"':
            message = "unterminated string"
    elif isinstance(exc, UnexpectedEOF):
        lines = source.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        message = "unexpected end of the query"
    else:  # pragma: no cover - lark has no other UnexpectedInput kinds
        message = str(exc).splitlines()[0]
    return PolicySyntaxError(message, line=line, column=column, source=source)


def _first_token(tree: Tree[Token]) -> Token | None:
    stack: list[Tree[Token] | Token] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            return node
        stack.extend(reversed(node.children))
    return None


def _check_depth(tree: Tree[Token], source: str) -> None:
    """Refuse a tree deeper than :data:`MAX_QUERY_DEPTH` (walked without recursion, before any pass)."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_QUERY_DEPTH:
            tok = _first_token(node)
            raise PolicySyntaxError(
                f"the query nests deeper than {MAX_QUERY_DEPTH} levels",
                line=tok.line if tok is not None else None,
                column=tok.column if tok is not None else None,
                source=source,
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _check_size(source: str, path: str | None) -> None:
    if len(source) > MAX_QUERY_CHARS:
        raise PolicySyntaxError(
            f"the query is {len(source)} characters long, over the limit of {MAX_QUERY_CHARS}", path=path
        )


def parse_query(source: str, *, path: str | None = None) -> Query:
    """Parse an EQL query; raise :class:`PolicySyntaxError` with position and caret source.

    Its size and nesting are checked first (:mod:`guard.policy.limits`), before any recursive pass.
    """
    _check_size(source, path)
    try:
        tree = _parser().parse(source)
        _check_depth(tree, source)
        query = _ToAst(source).transform(tree)
    except UnexpectedInput as exc:
        err = _syntax_error(exc, source)
        err.path = path
        raise PolicySyntaxError(
            err.message, path=path, line=err.line, column=err.column, source=source
        ) from None
    except PolicySyntaxError as exc:
        raise PolicySyntaxError(
            exc.message, path=path, line=exc.line, column=exc.column, source=source
        ) from None
    except LarkError as exc:  # a transformer error wraps ours
        inner = exc.__context__
        if isinstance(inner, PolicySyntaxError):
            raise PolicySyntaxError(
                inner.message, path=path, line=inner.line, column=inner.column, source=source
            ) from None
        raise PolicySyntaxError(str(exc).splitlines()[0], path=path, source=source) from None
    if not isinstance(query, Query):  # pragma: no cover - the grammar's start rule builds a Query
        raise PolicySyntaxError("not a query", path=path, source=source)
    return query


def parse_expression(source: str) -> Expr:
    """Parse a bare condition (``process.name == "sh"``), for tests and tools."""
    query = parse_query(f"any where {source}")
    if not isinstance(query.body, EventFilter) or query.pipes:
        raise PolicySyntaxError("not a bare condition", source=source)
    return query.body.condition
