"""The EQL abstract syntax tree: frozen, hashable nodes that render back to canonical EQL.

``parse(render(node)) == node`` holds for every node the parser produces: rendering inserts the
parentheses precedence needs, writes strings with escapes and fields with backquotes where a
part is not a plain name, and the parser normalises what rendering cannot show (nested and/or
are flattened, a minus sign on a number literal is folded into the literal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Final

__all__ = [
    "DURATION_UNITS",
    "LINEAGE_RELATIONS",
    "AliasField",
    "And",
    "Arithmetic",
    "Call",
    "Comparison",
    "Duration",
    "EventFilter",
    "Expr",
    "Field",
    "InSet",
    "Lineage",
    "Literal",
    "LiteralValue",
    "Negate",
    "Not",
    "Or",
    "Pipe",
    "Query",
    "Sample",
    "Sequence",
    "SequenceStep",
    "StringMatch",
    "render_string",
]

LiteralValue = str | int | float | bool | None

_PLAIN_NAME: Final = re.compile(r"[A-Za-z_@][A-Za-z0-9_@]*")
_KEYWORDS: Final = frozenset(
    {"and", "or", "not", "in", "like", "regex", "where", "sequence", "by", "with", "maxspan", "runs", "until",
     "any", "true", "false", "null", "sample", "as", "of"}
)  # fmt: skip

# Binding strength, loosest first.
_OR, _AND, _NOT, _PRED, _ADD, _MUL, _UNARY, _ATOM = range(8)
#: maxspan units in milliseconds ("" = milliseconds).
DURATION_UNITS: Final = {"": 1, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: ``<relation> of [filter]``: the process itself, its parent, or any ancestor matched the filter
LINEAGE_RELATIONS: Final = ("descendant", "child", "event")


def render_string(value: str) -> str:
    """Render a string literal with the escapes the parser understands."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def _render_number(value: int | float) -> str:
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text or "inf" in text or "nan" in text) else text + ".0"
    return str(value)


class Expr:
    """Base class of expression nodes."""

    __slots__ = ()

    def render(self) -> str:
        """Render as EQL."""
        return self._render(_OR)

    def _render(self, context: int) -> str:  # pragma: no cover - every node overrides
        raise NotImplementedError

    @staticmethod
    def _wrap(text: str, own: int, context: int) -> str:
        return f"({text})" if own < context else text


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    """A string, number, boolean or null constant."""

    value: LiteralValue

    def _render(self, context: int) -> str:
        v = self.value
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return render_string(v)
        text = _render_number(v)
        return self._wrap(text, _UNARY, context) if text.startswith("-") else text


@dataclass(frozen=True, slots=True)
class Field(Expr):
    """A field reference (``process.name``); ``optional`` for ``?field`` (may be absent from the schema)."""

    path: tuple[str, ...]
    optional: bool = False

    @property
    def name(self) -> str:
        """The dotted field name."""
        return ".".join(self.path)

    def _render(self, context: int) -> str:
        return ("?" if self.optional else "") + _render_path(self.path)


def _render_path(path: tuple[str, ...]) -> str:
    parts = [
        p if _PLAIN_NAME.fullmatch(p) and p not in _KEYWORDS else "`" + p.replace("`", "``") + "`"
        for p in path
    ]
    return ".".join(parts)


@dataclass(frozen=True, slots=True)
class AliasField(Expr):
    """A field of an earlier sequence step's event, through the step's alias (``event0.process.name``).

    The parser reads ``event0.process.name`` as a :class:`Field`; the analyzer turns it into this node
    when ``event0`` names an earlier step (``[...] as event0``). It is not a :class:`Field`: it reads
    no field of the event being matched.
    """

    alias: str
    path: tuple[str, ...]

    @property
    def name(self) -> str:
        """The dotted field name in the aliased event (without the alias)."""
        return ".".join(self.path)

    def _render(self, context: int) -> str:
        return _render_path((self.alias, *self.path))


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A function call; ``case_insensitive`` for ``name~(...)``."""

    name: str
    args: tuple[Expr, ...]
    case_insensitive: bool = False

    def _render(self, context: int) -> str:
        tilde = "~" if self.case_insensitive else ""
        return f"{self.name}{tilde}(" + ", ".join(a._render(_OR) for a in self.args) + ")"


@dataclass(frozen=True, slots=True)
class Not(Expr):
    """Logical negation."""

    expr: Expr

    def _render(self, context: int) -> str:
        return self._wrap("not " + self.expr._render(_NOT), _NOT, context)


@dataclass(frozen=True, slots=True)
class And(Expr):
    """Conjunction of two or more terms."""

    terms: tuple[Expr, ...]

    def _render(self, context: int) -> str:
        return self._wrap(" and ".join(t._render(_NOT) for t in self.terms), _AND, context)


@dataclass(frozen=True, slots=True)
class Or(Expr):
    """Disjunction of two or more terms."""

    terms: tuple[Expr, ...]

    def _render(self, context: int) -> str:
        return self._wrap(" or ".join(t._render(_AND) for t in self.terms), _OR, context)


@dataclass(frozen=True, slots=True)
class Comparison(Expr):
    """``left op right`` with op one of == != < <= > >=."""

    op: str
    left: Expr
    right: Expr

    def _render(self, context: int) -> str:
        text = f"{self.left._render(_ADD)} {self.op} {self.right._render(_ADD)}"
        return self._wrap(text, _PRED, context)


@dataclass(frozen=True, slots=True)
class InSet(Expr):
    """``value [not] in[~] (items...)``."""

    value: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    case_insensitive: bool = False

    def _render(self, context: int) -> str:
        op = ("not " if self.negated else "") + ("in~" if self.case_insensitive else "in")
        text = f"{self.value._render(_ADD)} {op} (" + ", ".join(i._render(_OR) for i in self.items) + ")"
        return self._wrap(text, _PRED, context)


@dataclass(frozen=True, slots=True)
class StringMatch(Expr):
    """``value : patterns`` (always case-insensitive), ``like[~]`` or ``regex[~]``."""

    op: str  # ":" | "like" | "regex"
    value: Expr
    patterns: tuple[str, ...]
    case_insensitive: bool = False

    def _render(self, context: int) -> str:
        op = self.op if self.op == ":" else self.op + ("~" if self.case_insensitive else "")
        pats = ", ".join(render_string(p) for p in self.patterns)
        rhs = pats if len(self.patterns) == 1 else f"({pats})"
        return self._wrap(f"{self.value._render(_ADD)} {op} {rhs}", _PRED, context)


@dataclass(frozen=True, slots=True)
class Arithmetic(Expr):
    """``left op right`` with op one of + - * / %."""

    op: str
    left: Expr
    right: Expr

    def _render(self, context: int) -> str:
        own = _ADD if self.op in "+-" else _MUL
        text = f"{self.left._render(own)} {self.op} {self.right._render(own + 1)}"
        return self._wrap(text, own, context)


@dataclass(frozen=True, slots=True)
class Negate(Expr):
    """Unary minus on a non-literal."""

    expr: Expr

    def _render(self, context: int) -> str:
        return self._wrap("-" + self.expr._render(_UNARY), _UNARY, context)


@dataclass(frozen=True, slots=True)
class Lineage(Expr):
    """``descendant of [filter]``, ``child of [filter]`` or ``event of [filter]`` (Elastic Endpoint).

    True when an ancestor process (any, for ``descendant``; the parent, for ``child``; the process
    itself, for ``event``) of the event's process matched ``filter`` at one of its own events. The
    process tree comes from the events: :data:`READS` of process start events.
    """

    relation: str  # one of LINEAGE_RELATIONS
    filter: EventFilter

    #: the fields of the event being matched that a lineage test reads: its process and parent
    READS: ClassVar[tuple[str, str]] = ("process.entity_id", "process.parent.entity_id")

    def _render(self, context: int) -> str:
        return self._wrap(f"{self.relation} of [{self.filter.render()}]", _NOT, context)


@dataclass(frozen=True, slots=True)
class Duration:
    """A maxspan: a number and a unit (ms, s, m, h, d; none means milliseconds)."""

    value: int | float
    unit: str

    @property
    def milliseconds(self) -> float:
        """The span in milliseconds."""
        return self.value * DURATION_UNITS[self.unit]

    def render(self) -> str:
        """Render as EQL (``5s``)."""
        return f"{_render_number(self.value)}{self.unit}"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """``category where condition``; category None is ``any``."""

    category: str | None
    condition: Expr

    def render(self) -> str:
        """Render as EQL."""
        if self.category is None:
            cat = "any"
        elif _PLAIN_NAME.fullmatch(self.category) and self.category not in _KEYWORDS:
            cat = self.category
        else:
            cat = render_string(self.category)
        return f"{cat} where {self.condition.render()}"


@dataclass(frozen=True, slots=True)
class SequenceStep:
    """One ``[filter] by keys`` step; ``missing`` for ``![...]``; ``runs`` for ``with runs=N``.

    ``alias`` names the step's event for later steps (``[...] as event0``, Elastic Endpoint).
    """

    filter: EventFilter
    keys: tuple[Expr, ...] = ()
    missing: bool = False
    runs: int | None = None
    alias: str | None = None

    def render(self) -> str:
        """Render as EQL."""
        text = ("!" if self.missing else "") + f"[{self.filter.render()}]"
        if self.keys:
            text += " by " + ", ".join(k.render() for k in self.keys)
        if self.runs is not None:
            text += f" with runs={self.runs}"
        if self.alias is not None:
            text += f" as {self.alias}"
        return text


@dataclass(frozen=True, slots=True)
class Sequence:
    """``sequence [by keys] [with maxspan=D] steps... [until step]``."""

    steps: tuple[SequenceStep, ...]
    keys: tuple[Expr, ...] = ()
    maxspan: Duration | None = None
    until: SequenceStep | None = None

    def render(self) -> str:
        """Render as EQL."""
        head = "sequence"
        if self.keys:
            head += " by " + ", ".join(k.render() for k in self.keys)
        if self.maxspan is not None:
            head += f" with maxspan={self.maxspan.render()}"
        lines = [head, *("  " + s.render() for s in self.steps)]
        if self.until is not None:
            lines.append("until " + self.until.render())
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Sample:
    """``sample [by keys] filters...``: unordered events, one per filter, sharing the join keys."""

    filters: tuple[SequenceStep, ...]
    keys: tuple[Expr, ...] = ()

    def render(self) -> str:
        """Render as EQL."""
        head = "sample"
        if self.keys:
            head += " by " + ", ".join(k.render() for k in self.keys)
        return "\n".join([head, *("  " + s.render() for s in self.filters)])


@dataclass(frozen=True, slots=True)
class Pipe:
    """``| name args`` (``head N``, ``tail N``)."""

    name: str
    args: tuple[Expr, ...]

    def render(self) -> str:
        """Render as EQL."""
        return f"| {self.name}" + ("" if not self.args else " " + ", ".join(a.render() for a in self.args))


@dataclass(frozen=True, slots=True)
class Query:
    """A whole EQL query: an event filter, a sequence or a sample, then pipes."""

    body: EventFilter | Sequence | Sample
    pipes: tuple[Pipe, ...] = ()

    def render(self) -> str:
        """Render as EQL."""
        return "\n".join([self.body.render(), *(p.render() for p in self.pipes)])
