"""Process lineage from the events themselves: the state behind ``descendant of``, ``child of``, ``event of``.

Elastic Endpoint's lineage tests ask about the process tree. Here the tree is learnt from the event
stream, so the offline evaluator and the streaming engine decide it the same way:

- a **process start** event (``event.category`` holds ``process``, ``event.type`` holds ``start``: an
  exec or a fork) records ``process.entity_id`` → ``process.parent.entity_id``;
- every event that matches a lineage filter ``F`` (its category and condition) marks its
  ``process.entity_id`` as having matched ``F``;
- for the event being matched, ``event of [F]`` holds when its process matched ``F``; ``child of [F]``
  when its parent did (the event's own ``process.parent.entity_id``, else the recorded parent);
  ``descendant of [F]`` when any ancestor did, walking recorded parents up to :data:`MAX_DEPTH`
  levels (a cycle in bad data ends the walk).

An event is observed (:meth:`LineageState.note_start`, then :meth:`LineageState.mark` for each filter
it matches, inner filters first) before any condition is decided on it, so ``event of`` sees the
event's own match. Entity ids are strings or integers; another value (a list, null) relates nothing.

Bounded: the engine gives capacities; the recorded parents and each filter's marks then keep the
most recently recorded entries, and every entry forgotten is reported to ``on_evict`` (a process
whose parent was forgotten has no ancestry beyond it). The offline evaluator keeps everything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from guard.errors import PolicyError
from guard.policy.ast import EventFilter, Lineage
from guard.policy.schema import Schema
from guard.policy.semantics import Event, Value, field_getter, values_equal

__all__ = ["MAX_DEPTH", "LineageState", "filter_key"]

#: ancestors walked at most for ``descendant of`` (process trees are far shallower)
MAX_DEPTH: Final = 512
_ENTITY, _PARENT = Lineage.READS


def filter_key(f: EventFilter) -> tuple[str | None, str]:
    """Return a lineage filter's identity: the same category and condition text share their marks."""
    return (f.category, f.condition.render())


def _entity(v: Value) -> str | int | None:
    return v if type(v) is str or type(v) is int else None


class LineageState:
    """What the stream has said about processes: parents, and which processes matched which filter."""

    def __init__(
        self,
        filters: Sequence[EventFilter],
        schema: Schema,
        *,
        max_processes: int | None = None,
        max_marks: int | None = None,
        on_evict: Callable[[int | None], None] | None = None,
    ) -> None:
        self.filters = tuple(filters)
        self.ids = {filter_key(f): n for n, f in enumerate(self.filters)}
        self.parents: dict[str | int, str | int] = {}
        self.marks: list[dict[str | int, None]] = [{} for _ in self.filters]
        self.max_processes = max_processes
        self.max_marks = max_marks
        self.on_evict = on_evict
        cat = schema.category_fields[0]
        self._category = field_getter(cat, tuple(cat.split(".")))
        self._type = field_getter("event.type", ("event", "type"))
        self._entity = field_getter(_ENTITY, tuple(_ENTITY.split(".")))
        self._parent = field_getter(_PARENT, tuple(_PARENT.split(".")))

    def id_of(self, f: EventFilter) -> int:
        """Return a filter's number (its marks)."""
        try:
            return self.ids[filter_key(f)]
        except KeyError:
            raise PolicyError(f"lineage filter [{f.render()}] is not tracked") from None

    def note_start(self, ev: Event) -> None:
        """Record the parent of the process a process start event names."""
        if not values_equal(self._category(ev), "process") or not values_equal(self._type(ev), "start"):
            return
        entity, parent = _entity(self._entity(ev)), _entity(self._parent(ev))
        if entity is None or parent is None:
            return
        parents = self.parents
        parents.pop(entity, None)
        parents[entity] = parent
        if self.max_processes is not None and len(parents) > self.max_processes:
            del parents[next(iter(parents))]
            if self.on_evict is not None:
                self.on_evict(None)

    def mark(self, fid: int, ev: Event) -> None:
        """Record that the event's process matched filter ``fid``."""
        entity = _entity(self._entity(ev))
        if entity is None:
            return
        marks = self.marks[fid]
        marks.pop(entity, None)
        marks[entity] = None
        if self.max_marks is not None and len(marks) > self.max_marks:
            del marks[next(iter(marks))]
            if self.on_evict is not None:
                self.on_evict(fid)

    def parent_of(self, ev: Event) -> str | int | None:
        """Return the parent of the event's process: its own parent field, else the recorded one."""
        parent = _entity(self._parent(ev))
        if parent is not None:
            return parent
        entity = _entity(self._entity(ev))
        return None if entity is None else self.parents.get(entity)

    def holds(self, relation: str, fid: int, ev: Event) -> bool:
        """Whether ``relation of [filter fid]`` holds for the event (see the module docstring)."""
        marks = self.marks[fid]
        if not marks:
            return False
        if relation == "event":
            entity = _entity(self._entity(ev))
            return entity is not None and entity in marks
        node = self.parent_of(ev)
        if relation == "child":
            return node is not None and node in marks
        seen: set[str | int] = set()
        while node is not None and node not in seen and len(seen) < MAX_DEPTH:
            if node in marks:
                return True
            seen.add(node)
            node = self.parents.get(node)
        return False

    def size(self) -> int:
        """Entries held: recorded parents plus marks."""
        return len(self.parents) + sum(len(m) for m in self.marks)
