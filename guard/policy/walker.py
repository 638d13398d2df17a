"""One traversal of the EQL syntax tree: type dispatch for the passes over it, and the children of a node.

A pass subclasses :class:`Walker` and defines ``visit_<Node>`` methods (``visit_Comparison``,
``visit_And``); :meth:`Walker.visit` calls the method for the node's class (or its nearest base
class that has one), else :meth:`Walker.generic_visit`. Methods are found once per walker class and
node class and cached. A pass may dispatch on other prefixes too (``leaf_Comparison``) through
:meth:`Walker.handler`. Extra arguments given to :meth:`~Walker.visit` are passed on.

:func:`children` is a node's sub-nodes in source order, derived from the node's dataclass fields
(a node, or a tuple of nodes); :func:`iter_nodes` walks a tree outermost first; :func:`rebuild`
returns a node with its children replaced (the one way passes rewrite a tree).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Final, Generic, TypeVar

from guard.policy.ast import (
    AliasField,
    Duration,
    EventFilter,
    Expr,
    Field,
    Lineage,
    Pipe,
    Query,
    Sample,
    Sequence,
    SequenceStep,
)

__all__ = ["Node", "Walker", "children", "fields_read", "iter_nodes", "rebuild", "stateful"]

Node = Expr | EventFilter | Sequence | Sample | SequenceStep | Pipe | Query | Duration
T = TypeVar("T")

_NODE_TYPES: Final = (Expr, EventFilter, Sequence, Sample, SequenceStep, Pipe, Query, Duration)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def children(node: Node) -> tuple[Node, ...]:
    """Return a node's direct sub-nodes in field order (``value`` before ``items``, terms in order)."""
    names = _FIELD_NAMES.get(type(node))
    if names is None:
        names = _FIELD_NAMES[type(node)] = tuple(f.name for f in dataclasses.fields(node))  # type: ignore[arg-type]
    out: list[Node] = []
    for name in names:
        value = getattr(node, name)
        if isinstance(value, _NODE_TYPES):
            out.append(value)
        elif type(value) is tuple:
            out.extend(x for x in value if isinstance(x, _NODE_TYPES))
    return tuple(out)


def iter_nodes(node: Node) -> Iterator[Node]:
    """Yield a node and every node below it, outermost first (pre-order, children in field order)."""
    yield node
    for child in children(node):
        yield from iter_nodes(child)


def rebuild(node: Node, fn: Callable[[Node], Node]) -> Node:
    """Return ``node`` with each direct sub-node replaced by ``fn(sub-node)`` (``node`` when none changes)."""
    names = _FIELD_NAMES.get(type(node))
    if names is None:
        names = _FIELD_NAMES[type(node)] = tuple(f.name for f in dataclasses.fields(node))  # type: ignore[arg-type]
    changes: dict[str, object] = {}
    for name in names:
        value = getattr(node, name)
        if isinstance(value, _NODE_TYPES):
            new = fn(value)
            if new is not value:  # identity: Literal(1) == Literal(True) as dataclasses
                changes[name] = new
        elif type(value) is tuple and any(isinstance(x, _NODE_TYPES) for x in value):
            items = tuple(fn(x) if isinstance(x, _NODE_TYPES) else x for x in value)
            if any(a is not b for a, b in zip(items, value, strict=True)):
                changes[name] = items
    return dataclasses.replace(node, **changes) if changes else node  # type: ignore[type-var]


def fields_read(node: Node) -> dict[str, Field]:
    """Every field of the matched event a node reads, by dotted name (the first occurrence, outermost first).

    A lineage test reads the event's process and parent entity ids (:attr:`Lineage.READS`), not the
    fields of its filter (those are read from other events); an alias field reads another event.
    """
    out: dict[str, Field] = {}
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Field):
            out.setdefault(n.name, n)
        elif isinstance(n, Lineage):
            for name in Lineage.READS:
                out.setdefault(name, Field(tuple(name.split("."))))
            continue
        stack.extend(reversed(children(n)))
    return out


def stateful(node: Node) -> bool:
    """Whether an expression depends on more than the event: a lineage test or an earlier step's alias."""
    return any(isinstance(n, Lineage | AliasField) for n in iter_nodes(node))


class Walker(Generic[T]):
    """A pass over the syntax tree: ``visit(node)`` dispatches to ``visit_<NodeClass>(node, ...)``."""

    #: (prefix, node class) -> the method, or None; one cache per walker class
    _handlers: ClassVar[dict[tuple[str, type], Callable[..., Any] | None]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give every walker class its own method cache."""
        super().__init_subclass__(**kwargs)
        cls._handlers = {}

    @classmethod
    def _resolve(cls, prefix: str, node_type: type) -> Callable[..., Any] | None:
        key = (prefix, node_type)
        try:
            return cls._handlers[key]
        except KeyError:
            pass
        method: Callable[..., Any] | None = None
        for klass in node_type.__mro__:
            method = getattr(cls, prefix + klass.__name__, None)
            if method is not None:
                break
        cls._handlers[key] = method
        return method

    def handler(self, node: Node, prefix: str) -> Callable[..., Any] | None:
        """Return the bound ``<prefix><NodeClass>`` method for a node, or None when the walker has none."""
        method = self._resolve(prefix, type(node))
        return None if method is None else types.MethodType(method, self)

    def visit(self, node: Node, *args: Any) -> T:
        """Return the result of the node's ``visit_<NodeClass>`` method (else :meth:`generic_visit`)."""
        method = self._resolve("visit_", type(node))
        if method is None:
            return self.generic_visit(node, *args)
        result: T = method(self, node, *args)
        return result

    def visit_children(self, node: Node, *args: Any) -> list[T]:
        """Visit a node's children in order; return their results."""
        return [self.visit(child, *args) for child in children(node)]

    def generic_visit(self, node: Node, *args: Any) -> T:
        """Handle a node the walker has no method for; by default, refuse it."""
        raise TypeError(f"{type(self).__name__} cannot visit {type(node).__name__}")
